package sandbox

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxBody bounds request bodies; a template send is a few hundred bytes.
const maxBody = 1 << 20

// Server simulates one 1MSG channel. It is an http.Handler; create it with
// New and stop its goroutines with Close.
type Server struct {
	cfg           Config
	log           *slog.Logger
	wabaID        string // raw hooks' entry id
	phoneNumberID string // raw hooks' metadata.phone_number_id

	routes map[string]route // by method name, e.g. "hookInfo"
	sched  *scheduler
	push   *pusher
	ctx    context.Context // cancelled by Close; bounds pushes and held requests
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	moreMu sync.RWMutex
	others map[string]*Server // the extra channels, by id

	// mu guards everything below. Handlers hold it only to read or change
	// state, never while sleeping or doing I/O.
	mu            sync.Mutex
	rng           *rand.Rand
	faults        Faults
	limiter       *rate.Limiter // nil when RatePerSecond is 0
	lastByPhone   map[string]time.Time
	settings      Settings
	messages      []*message // in acceptance order
	byID          map[string]*message
	conversations map[string]conversation // by phone
	requests      []Request
	stats         Stats
	gen           uint64 // bumped by Reset so stale scheduled work is ignored
	reqSeq        int64
	msgNumber     int64
	idSeq         uint64
	account       account // what the channel's owner changes at run time (account.go)
	calls         []Call
}

// route is a channel method other than sendTemplate. Its handler gets the
// decoded body of a POST (nil for GET) after the token was checked.
type route struct {
	verbs []string
	h     func(http.ResponseWriter, *http.Request, map[string]json.RawMessage)
}

// message is a Message plus what only hookInfo and raw hooks need.
type message struct {
	Message
	conv conversation
}

// conversation is Meta's 24-hour conversation window with one recipient.
type conversation struct {
	id      string
	origin  string
	expires time.Time
}

// New returns a Server for cfg and starts its scheduler, ack batcher and
// webhook workers.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	ctx, cancel := context.WithCancel(context.Background())
	sum := fnvSum(cfg.Channel)
	s := &Server{
		cfg:           cfg,
		log:           cfg.Logger,
		wabaID:        fmt.Sprintf("1%014d", sum%1e14),
		phoneNumberID: fmt.Sprintf("1%014d", (sum/1e14)%1e14),
		ctx:           ctx,
		cancel:        cancel,
		rng:           rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		settings:      cfg.Settings.clone(),
	}
	s.routes = map[string]route{
		"hookInfo":  {[]string{http.MethodGet}, s.handleHookInfo},
		"messages":  {[]string{http.MethodGet}, s.handleMessages},
		"webhook":   {[]string{http.MethodGet, http.MethodPost}, s.handleWebhook},
		"settings":  {[]string{http.MethodGet, http.MethodPost}, s.handleSettings},
		"templates": {[]string{http.MethodGet}, s.handleTemplates},
		"status":    {[]string{http.MethodGet}, s.handleStatus},
		"me":        {[]string{http.MethodGet}, s.handleMe},
	}
	s.resetLocked(cfg.Faults)
	s.sched = newScheduler()
	s.push = newPusher(cfg.WebhookWorkers)
	s.wg.Add(2 + cfg.WebhookWorkers)
	go func() { defer s.wg.Done(); s.sched.run(ctx) }()
	go func() { defer s.wg.Done(); s.batchAcks(ctx) }()
	for range cfg.WebhookWorkers {
		go func() { defer s.wg.Done(); s.pushWorker(ctx) }()
	}
	for _, c := range cfg.Channels {
		if err := s.AddChannel(c); err != nil {
			panic("sandbox: Config.Channels: " + err.Error())
		}
	}
	return s
}

func fnvSum(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Close stops the scheduler and the webhook workers, abandons pending
// statuses and pushes, and releases held requests. It is idempotent. The
// handler keeps answering afterwards, but statuses no longer progress.
func (s *Server) Close() {
	s.once.Do(func() {
		s.closeMore()
		s.cancel()
		s.wg.Wait()
		s.push.client.CloseIdleConnections()
	})
}

// SetFaults replaces the injected faults. It is safe to call while requests
// are served. Out-of-range shares are clamped when used; Faults.Validate
// says what is wrong with them.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultsLocked(f)
}

func (s *Server) setFaultsLocked(f Faults) {
	old := s.faults
	s.faults = f
	switch {
	case f.RatePerSecond <= 0:
		s.limiter = nil
	case s.limiter == nil || old.RatePerSecond != f.RatePerSecond:
		// Meta measures throughput per second, so a second's worth of
		// messages may come at once.
		s.limiter = rate.NewLimiter(rate.Limit(f.RatePerSecond), max(1, int(f.RatePerSecond)))
	}
}

// Faults returns the faults currently injected.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Settings returns the channel settings (webhook URLs, ackNotificationsOn…).
func (s *Server) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings.clone()
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats.clone()
	st.PushesPending = s.push.pendingAcks()
	return st
}

// Messages returns every accepted message in acceptance order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.clone()
	}
	return out
}

// Message returns the accepted message with the given wamid.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byID[id]
	if !ok {
		return Message{}, false
	}
	return m.clone(), true
}

// Requests returns the sendTemplate requests received, in arrival order.
// A request appears once it has been answered (or abandoned).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i := range s.requests {
		out[i] = s.requests[i].clone()
	}
	slices.SortFunc(out, func(a, b Request) int { return int(a.Seq - b.Seq) })
	return out
}

// Reset forgets messages, requests, stats, pending statuses and pushes and
// Meta limit state, and restores Config.Faults. Channel settings (webhook
// URLs, ackNotificationsOn…) are kept, as a channel keeps them; pass
// settings=true to restore Config.Settings too.
func (s *Server) Reset(settings bool) {
	s.sched.clear()
	s.push.clear()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.resetLocked(s.cfg.Faults)
	if settings {
		s.settings = s.cfg.Settings.clone()
	}
}

func (s *Server) resetLocked(f Faults) {
	s.limiter = nil
	s.setFaultsLocked(f)
	s.lastByPhone = map[string]time.Time{}
	s.messages = nil
	s.byID = map[string]*message{}
	s.conversations = map[string]conversation{}
	s.requests = nil
	s.stats = Stats{AcceptedByPhone: map[string]int{}}
	s.reqSeq = 0
	s.msgNumber = 0
	s.account = newAccount(s.cfg)
	s.calls = nil
}

// chanceLocked draws true with probability p (clamped to [0,1]). It draws
// nothing for p <= 0 so that switching a fault off does not change the
// random sequence of the others.
func (s *Server) chanceLocked(p float64) bool {
	if !(p > 0) {
		return false
	}
	if p >= 1 {
		return true
	}
	return s.rng.Float64() < p
}

// newIDLocked returns a Cloud-API-looking wamid: "wamid." and standard
// base64 of a protobuf-like record of the recipient and a unique serial, as
// Meta's are, so it may contain + / = and a client must escape it in a
// query string.
func (s *Server) newIDLocked(phone string) string {
	s.idSeq++
	raw := fmt.Sprintf("\x1c\x18%c%s\x15\x02\x00\x11\x18\x12%08X%010X\x00", byte(len(phone)), phone, s.rng.Uint32(), s.idSeq)
	return "wamid." + base64.StdEncoding.EncodeToString([]byte(raw))
}

func (s *Server) randHexLocked(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[s.rng.IntN(16)]
	}
	return string(b)
}

// ServeHTTP routes /_sandbox/… to the control endpoints and /{channel}/{method}
// to the 1MSG surface.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		// ?channel=ID points the instruments at another channel.
		if id := r.URL.Query().Get("channel"); id != "" && id != s.cfg.Channel {
			o, ok := s.more(id)
			if !ok {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("the sandbox serves no channel %q (see /_sandbox/channels)", id)})
				return
			}
			o.serveControl(w, r)
			return
		}
		if strings.TrimSuffix(r.URL.Path, "/") == "/_sandbox/channels" {
			s.serveChannels(w, r)
			return
		}
		s.serveControl(w, r)
		return
	}
	channel, method, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if o, ok := s.more(channel); ok {
		o.ServeHTTP(w, r)
		return
	}
	if channel == s.cfg.Channel && method == "sendTemplate" && r.Method == http.MethodPost {
		// sendTemplate records every request, Down included, itself.
		s.handleSendTemplate(w, r)
		return
	}
	if s.Faults().Down {
		dropConnection(w)
		return
	}
	if channel != s.cfg.Channel {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": fmt.Sprintf("Channel %q not found", channel),
		})
		return
	}
	if method == "sendTemplate" {
		methodNotAllowed(w, r, http.MethodPost)
		return
	}
	rt, ok := s.routes[method]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": fmt.Sprintf("Method %q not found", "/"+method),
		})
		return
	}
	if !slices.Contains(rt.verbs, r.Method) {
		methodNotAllowed(w, r, rt.verbs...)
		return
	}
	var body map[string]json.RawMessage
	if r.Method == http.MethodPost {
		raw, err := readBody(w, r)
		if err == nil {
			body, _, err = parseBody(r.Header.Get("Content-Type"), raw)
		}
		if err != nil {
			// Auth still goes first: a caller without the token learns
			// nothing about how its body was malformed.
			if !s.authorize(w, r, nil) {
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	start := time.Now()
	defer func() { s.logCall(method, r.Method, start) }()
	if !s.authorize(w, r, body) {
		return
	}
	rt.h(w, r, body)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, verbs ...string) {
	w.Header().Set("Allow", strings.Join(verbs, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
		"error": fmt.Sprintf("Method %s is not allowed for %s; use %s", r.Method, r.URL.Path, strings.Join(verbs, " or ")),
	})
}

// requestToken finds the token the way 1MSG's guard does: a token in the
// body or the query wins over the Authorization header (a stale one there
// overrides a good header, as 1MSG's guidance warns), and the header may be
// "Bearer <t>" or the bare token.
func requestToken(r *http.Request, body map[string]json.RawMessage) string {
	if raw, ok := body["token"]; ok {
		var t string
		if json.Unmarshal(raw, &t) == nil {
			return t
		}
		return string(raw)
	}
	if q := r.URL.Query(); q.Has("token") {
		return q.Get("token")
	}
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) >= 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return h
}

// authorize answers 401 with 1MSG's body and returns false when the token is
// wrong or missing.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, body map[string]json.RawMessage) bool {
	t := requestToken(r, body)
	if s.tokenOK(t) {
		return true
	}
	s.mu.Lock()
	s.stats.Unauthorized++
	s.mu.Unlock()
	writeJSON(w, http.StatusUnauthorized, unauthorizedBody(t, s.cfg.Channel))
	return false
}

// tokenOK compares in constant time: the sandbox may run next to real
// secrets when ONEMSG_TOKEN is shared with the daemon.
func (s *Server) tokenOK(t string) bool {
	s.mu.Lock()
	revoked := s.account.tokenRevoked
	s.mu.Unlock()
	return !revoked && subtle.ConstantTimeCompare([]byte(t), []byte(s.cfg.Token)) == 1
}

func unauthorizedBody(token, channel string) map[string]string {
	return map[string]string{
		"error": fmt.Sprintf("Wrong token %q for channel %q. Please provide token as a GET parameter.", token, channel),
	}
}

// readBody reads at most maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return b, fmt.Errorf("request body is larger than %d bytes", maxBody)
	}
	if err != nil {
		return b, fmt.Errorf("reading request body: %w", err)
	}
	return b, nil
}

// parseBody decodes a JSON object or a form (1MSG accepts
// application/x-www-form-urlencoded for its POSTs) into one shape: the
// object's fields as raw JSON. An empty body is an empty object.
//
// A body sent with any other Content-Type, or none, is not read at all, as
// web frameworks do; ignored says so. A client that forgets
// "Content-Type: application/json" then gets the answer 1MSG would give to
// an empty request instead of having its mistake forgiven.
func parseBody(contentType string, b []byte) (body map[string]json.RawMessage, ignored string, err error) {
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	trimmed := bytes.TrimSpace(b)
	switch {
	case len(trimmed) == 0:
		return map[string]json.RawMessage{}, "", nil
	case ct == "application/x-www-form-urlencoded":
		body, err = parseForm(string(b))
		return body, "", err
	case ct != "application/json" && !strings.HasSuffix(ct, "+json"):
		return map[string]json.RawMessage{}, fmt.Sprintf("the body was ignored: Content-Type %q is neither application/json nor application/x-www-form-urlencoded", contentType), nil
	}
	if err := json.Unmarshal(trimmed, &body); err != nil {
		return nil, "", fmt.Errorf("request body is not a JSON object: %v", err)
	}
	if body == nil {
		return nil, "", errors.New("request body is not a JSON object: got null")
	}
	return body, "", nil
}

// writeJSON answers like 1MSG's Node.js stack: compact JSON, no HTML
// escaping, no trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"sandbox: encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// dropConnection closes the client's connection without an answer, which a
// client sees as a reset or an unexpected EOF.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
		return
	}
	// HTTP/2 cannot hijack; aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}

// sleep waits d, or returns false when ctx or the server ends first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}
