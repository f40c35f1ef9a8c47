// Package webhook receives the delivery statuses 1MSG pushes and records
// them durably before answering, so 1MSG's own retries cover any failure on
// our side.
//
// The receiver serves one route, POST /webhooks/1msg/{secret}; anything else,
// a wrong secret included, is a 404. Statuses arriving concurrently are
// written in batches, one transaction for many requests, and each request is
// answered only after the transaction holding its statuses committed.
package webhook

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/pending"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// MaxBodyBytes bounds a webhook request body.
const MaxBodyBytes = 1 << 20

// PathPrefix is the route's fixed part; the secret follows it.
const PathPrefix = "/webhooks/1msg/"

// Config configures a Receiver.
type Config struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Ledger
	Secret string // CANCELNOTIFY_WEBHOOK_SECRET, the last path segment
	// Channels are the 1MSG channel (instance) ids of every configured
	// channel: a push for any other instanceId gets 403.
	Channels []string

	MaxBatch int           // most requests per transaction, default 200
	Timeout  time.Duration // longest a request waits for its commit, default 10s
	// MaxInFlight bounds the requests being read, parsed or committed at
	// once, default 32: with MaxBodyBytes and onemsg.MaxWebhookEntries it
	// bounds the memory a flood can take (README.md, "Delivery statuses").
	// Others wait for a slot up to Timeout, then get 503 (1MSG retries).
	MaxInFlight int
	// Sends, when set, are this process's sends in flight. A status for a
	// wamid not recorded yet waits, up to HoldWait, for the sends begun
	// before it arrived to commit their answers (1MSG often pushes `sent`
	// before its answer to the send is recorded), and is held in
	// webhook_orphan only if its wamid is still unknown then.
	Sends *pending.Sends
	// HoldWait bounds that wait, default 2s (DefaultHoldWait); the request is
	// answered when its statuses are committed, applied or held.
	HoldWait time.Duration
	Logger   *slog.Logger
	Observer Observer // optional (metrics)
}

// DefaultHoldWait is Config.HoldWait's default: well beyond a healthy
// sendTemplate round trip, well within 1MSG's patience with a webhook.
const DefaultHoldWait = 2 * time.Second

// Observer learns of every request's result and every batch written.
type Observer interface {
	Webhook(result string)
	WebhookStatuses(recorded, unknown, unmapped int)
	WebhookIgnored(entries int)
}

// Result is how a webhook request ended, for metrics.
type Result string

const (
	ResultOK        Result = "ok"        // statuses committed (or nothing to record)
	ResultNotFound  Result = "not_found" // wrong path, method or secret
	ResultForbidden Result = "forbidden" // instanceId is not our channel
	ResultMalformed Result = "malformed" // not a 1MSG payload
	ResultTooLarge  Result = "too_large" // body over MaxBodyBytes, or an array over onemsg.MaxWebhookEntries
	ResultError     Result = "error"     // could not commit: 503, 1MSG retries
)

// Stats counts what the receiver saw.
type Stats struct {
	Requests      map[Result]int64
	Statuses      int64 // statuses committed
	UnknownWamid  int64 // statuses for wamids we have no notification for (held)
	Unmapped      int64 // statuses whose value could not be mapped (stored raw)
	InboundIgnore int64 // inbound messages acknowledged and ignored
	Ignored       int64 // status entries without a usable id (none, empty {}, over onemsg.MaxWamidBytes), answered 200 and dropped
	Batches       int64 // transactions written
	Waiting       int64 // requests now waiting for sends in flight (Config.Sends) before holding statuses
}

// Receiver is the webhook endpoint.
type Receiver struct {
	cfg     Config
	logger  *slog.Logger
	writes  *groupcommit.Writer[push, []ledger.Report]
	slots   chan struct{} // MaxInFlight
	waiters chan struct{} // 4 × MaxInFlight requests waiting for sends in flight

	requests                                            [6]atomic.Int64
	statuses, unknown, unmapped, inbound, txns, ignored atomic.Int64
	waiting                                             atomic.Int64 // requests waiting for sends in flight
}

var results = [...]Result{ResultOK, ResultNotFound, ResultForbidden, ResultMalformed, ResultTooLarge, ResultError}

// New returns a receiver; Run must be running for it to answer.
func New(cfg Config) *Receiver {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 200
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 32
	}
	if cfg.HoldWait <= 0 {
		cfg.HoldWait = DefaultHoldWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ledger == nil {
		cfg.Ledger = &ledger.Ledger{}
	}
	r := &Receiver{cfg: cfg, logger: cfg.Logger.With("component", "webhook"), slots: make(chan struct{}, cfg.MaxInFlight),
		waiters: make(chan struct{}, 4*cfg.MaxInFlight)}
	// 1MSG can wait a few milliseconds for its answer: lingering lets the
	// statuses of many messages share a transaction even at a modest rate.
	r.writes = groupcommit.New(cfg.Pool, r.write, groupcommit.Options{MaxBatch: cfg.MaxBatch, Timeout: cfg.Timeout, Linger: 20 * time.Millisecond})
	return r
}

// Stats returns the counters so far.
func (r *Receiver) Stats() Stats {
	s := Stats{Requests: map[Result]int64{}, Statuses: r.statuses.Load(), UnknownWamid: r.unknown.Load(),
		Unmapped: r.unmapped.Load(), InboundIgnore: r.inbound.Load(), Batches: r.txns.Load(), Ignored: r.ignored.Load(),
		Waiting: r.waiting.Load()}
	for i, res := range results {
		s.Requests[res] = r.requests[i].Load()
	}
	return s
}

func (r *Receiver) count(res Result) {
	for i, x := range results {
		if x == res {
			r.requests[i].Add(1)
		}
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Webhook(string(res))
	}
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || !r.secretOK(req.URL.Path) {
		// Same answer for a wrong path, method or secret: nothing tells a
		// prober which part was wrong. The secret is never logged.
		r.count(ResultNotFound)
		http.NotFound(w, req)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.Timeout)
	defer cancel()
	// Sends begun after this point cannot be the ones a status in this
	// request is about.
	mark := r.cfg.Sends.Mark()
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		r.count(ResultError)
		r.logger.Warn("webhook request not read: too many in flight; 1MSG will retry", "max_in_flight", r.cfg.MaxInFlight)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, "busy; retry")
		return
	}
	slot := true
	release := func() {
		if slot {
			slot = false
			<-r.slots
		}
	}
	defer release()
	body, err := readBody(w, req)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			r.count(ResultTooLarge)
			writeJSON(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
			return
		}
		r.count(ResultMalformed)
		writeJSON(w, http.StatusBadRequest, "cannot read body")
		return
	}
	hook, err := onemsg.ParseWebhook(body)
	if errors.Is(err, onemsg.ErrTooManyEntries) {
		r.count(ResultTooLarge)
		r.logger.Warn("webhook payload refused: too many entries", "max", onemsg.MaxWebhookEntries, "bytes", len(body))
		writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d entries in one array", onemsg.MaxWebhookEntries))
		return
	}
	if err != nil {
		r.count(ResultMalformed)
		r.logger.Warn("malformed webhook payload", "error", err, "bytes", len(body))
		writeJSON(w, http.StatusBadRequest, "not a 1MSG webhook payload")
		return
	}
	if hook.InstanceID != "" && !slices.Contains(r.cfg.Channels, hook.InstanceID) {
		r.count(ResultForbidden)
		r.logger.Warn("webhook for another channel refused", "instance_id", hook.InstanceID)
		writeJSON(w, http.StatusForbidden, "instanceId is not one of this daemon's channels")
		return
	}
	r.inbound.Add(int64(hook.Messages))
	if hook.Ignored > 0 {
		r.ignored.Add(int64(hook.Ignored))
		if r.cfg.Observer != nil {
			r.cfg.Observer.WebhookIgnored(hook.Ignored)
		}
		r.logger.Warn("webhook status entries ignored: no message id, or one over the length limit", "entries", hook.Ignored, "max_id_bytes", onemsg.MaxWamidBytes)
	}
	if len(hook.Statuses) == 0 {
		r.count(ResultOK)
		writeJSON(w, http.StatusOK, "")
		return
	}
	reports := make([]ledger.Report, 0, len(hook.Statuses))
	for _, u := range hook.Statuses {
		rep := ledger.Report{Wamid: u.ID, Status: u.Status, Source: ledger.SourceWebhook,
			OccurredAt: u.Timestamp.Time, Error: u.Error, Detail: u.Raw, Pricing: (*ledger.Pricing)(u.Pricing)}
		if u.Code != 0 {
			rep.ErrorCode = strconv.Itoa(u.Code)
		}
		if rep.Wamid == "" {
			r.unmapped.Add(1)
			continue // nothing to attach it to
		}
		reports = append(reports, rep)
	}
	// Answered only once committed: 1MSG's retry covers our failures.
	later, err := r.writes.Do(ctx, push{reports: reports, hold: r.cfg.Sends.Settled(mark)})
	if err == nil && len(later) > 0 {
		// Statuses for wamids a send begun before they arrived may still
		// record: wait for those sends, without a slot (the parsed statuses
		// no longer hold the body), then apply or hold them. Waiters are
		// bounded too; past the bound a request holds its statuses at once.
		release()
		select {
		case r.waiters <- struct{}{}:
			r.waiting.Add(1)
			wctx, cancel := context.WithTimeout(ctx, r.cfg.HoldWait)
			_ = r.cfg.Sends.Wait(wctx, mark) // past HoldWait: held as before
			cancel()
			r.waiting.Add(-1)
			<-r.waiters
		default:
		}
		_, err = r.writes.Do(ctx, push{reports: later, hold: true})
	}
	if err != nil {
		r.count(ResultError)
		r.logger.Error("webhook statuses not recorded; 1MSG will retry", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, "not recorded; retry")
		return
	}
	r.count(ResultOK)
	writeJSON(w, http.StatusOK, "")
}

// push is one request's statuses. With hold, those whose wamid is unknown
// are held in webhook_orphan; without, they are returned to the request to
// try again once the sends in flight have committed.
type push struct {
	reports []ledger.Report
	hold    bool
}

// secretOK compares the path's secret in constant time.
func (r *Receiver) secretOK(path string) bool {
	got, ok := strings.CutPrefix(path, PathPrefix)
	if !ok || r.cfg.Secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(r.cfg.Secret)) == 1
}

// readBody reads at most MaxBodyBytes into one buffer sized from
// Content-Length, instead of growing by doubling.
func readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if n := req.ContentLength; n > 0 {
		buf.Grow(int(min(n, MaxBodyBytes) + bytes.MinRead)) // ReadFrom wants MinRead free before it sees EOF
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, MaxBodyBytes))
	return buf.Bytes(), err
}

func writeJSON(w http.ResponseWriter, status int, errText string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errText == "" {
		_, _ = w.Write([]byte(`{"ok":true}`))
		return
	}
	b, _ := json.Marshal(map[string]string{"error": errText})
	_, _ = w.Write(b)
}

// write records many requests' statuses in one transaction; it returns,
// per request without hold, the statuses whose wamid is unknown.
func (r *Receiver) write(ctx context.Context, tx pgx.Tx, batch []push) ([][]ledger.Report, error) {
	var reports []ledger.Report
	for _, p := range batch {
		reports = append(reports, p.reports...)
	}
	res, err := r.cfg.Ledger.Apply(ctx, tx, reports)
	if err != nil {
		return nil, err
	}
	out := make([][]ledger.Report, len(batch))
	var held []ledger.Report
	if len(res.Unknown) > 0 {
		unknown := make(map[string]bool, len(res.Unknown))
		for _, u := range res.Unknown {
			unknown[u.Wamid] = true
		}
		for i, p := range batch {
			for _, rep := range p.reports {
				switch {
				case !unknown[rep.Wamid]:
				case p.hold:
					held = append(held, rep)
				default:
					out[i] = append(out[i], rep)
				}
			}
		}
		if err := r.cfg.Ledger.Hold(ctx, tx, held); err != nil {
			return nil, err
		}
	}
	// Counted before the commit: a failed commit is retried by 1MSG and
	// counted again, which metrics tolerate.
	r.txns.Add(1)
	r.statuses.Add(int64(res.Recorded))
	r.unknown.Add(int64(len(held)))
	r.unmapped.Add(int64(res.Unmapped))
	if r.cfg.Observer != nil {
		r.cfg.Observer.WebhookStatuses(res.Recorded, len(held), res.Unmapped)
	}
	return out, nil
}

// AdoptHeld settles, every interval until ctx ends, statuses held for a
// wamid that a send transaction recorded meanwhile (ledger.AdoptHeld).
func (r *Receiver) AdoptHeld(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.cfg.Ledger.AdoptHeld(ctx, r.cfg.Pool, 10*time.Minute)
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("held statuses not adopted yet; the track job's poll brings them otherwise", "error", err)
		}
		if n > 0 {
			r.logger.Debug("adopted held statuses", "count", n)
		}
	}
}
