package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// healthConfig probes fast and scrapes fresh gauges.
func (e *env) healthConfig() daemon.Config {
	cfg := e.config()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.ProbeTick = 100 * time.Millisecond
	cfg.ProbeBackoffMin = 200 * time.Millisecond
	cfg.ProbeBackoffMax = 2 * time.Second
	cfg.MetricsCacheFor = 20 * time.Millisecond
	cfg.CallbackURL, cfg.CallbackSecret = "http://127.0.0.1:1/crm", "whsec_dGVzdC1jYWxsYmFjay1zZWNyZXQtMDEyMzQ1Njc4OQ=="
	return cfg
}

// startStoppable runs a daemon and returns a function that stops it hard:
// in-flight jobs get a millisecond, then River cancels them.
func (e *env) startStoppable(cfg daemon.Config) (*daemon.Daemon, func()) {
	e.t.Helper()
	cfg.ShutdownTimeout = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		e.t.Fatalf("daemon.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done // an error only says jobs were interrupted
		}
	}
	e.t.Cleanup(stop)
	return d, stop
}

// gauge scrapes one sample of /metrics.
func gauge(t *testing.T, d *daemon.Daemon, name string) float64 {
	t.Helper()
	res, err := http.Get(d.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

const (
	healthyGauge = `cancelnotify_channel_healthy{channel="default"}`
	heldGauge    = `cancelnotify_channel_held{channel="default"}`
)

func (e *env) channelState() (state string, probes int) {
	e.t.Helper()
	err := e.pool.QueryRow(context.Background(), `SELECT state, probes FROM channel_health WHERE channel = 'default'`).Scan(&state, &probes)
	if err != nil {
		return "healthy", 0
	}
	return state, probes
}

func (e *env) countWhere(cond string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+cond, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// logBuffer collects a daemon's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// channelFaults are the channel-wide refusals the sandbox can cause.
var channelFaults = []struct {
	name     string
	on, off  func(*sandbox.Server) error
	heldCode string // error_code of the refusal that holds the channel
}{
	{"token revoked", func(s *sandbox.Server) error { s.RevokeToken(); return nil }, func(s *sandbox.Server) error { s.RestoreToken(); return nil }, "http_401"},
	{"template paused", func(s *sandbox.Server) error { return s.SetTemplateStatus(sandbox.DefaultTemplate, "en", "paused") },
		func(s *sandbox.Server) error { return s.SetTemplateStatus(sandbox.DefaultTemplate, "en", "approved") }, "132015"},
	{"channel disconnected", func(s *sandbox.Server) error { return s.SetChannelStatus("disconnected") },
		func(s *sandbox.Server) error { return s.SetChannelStatus("connected") }, "http_200"},
}

// A channel-wide refusal holds the channel: the cancellations that arrive
// meanwhile stay queued (none failed, no CRM callback), sendTemplate is not
// called once per message, and when the fault clears every one is sent
// exactly once and the channel is healthy again.
func TestChannelFaultHoldsAndResumes(t *testing.T) {
	t.Parallel()
	for _, f := range channelFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fastSandbox())
			cfg := e.healthConfig()
			logs := &logBuffer{}
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			d := e.start(cfg)
			if err := f.on(e.sb); err != nil {
				t.Fatal(err)
			}
			e.insert("held-0", orderPayload(0))
			e.waitFor(20*time.Second, "the channel to be held", func() bool { s, _ := e.channelState(); return s == "held" })
			before := len(e.sb.Requests())
			ids := []string{"held-0"}
			for i := 1; i < 50; i++ {
				ids = append(ids, fmt.Sprintf("held-%d", i))
				e.insert(ids[i], orderPayload(i))
			}
			e.waitFor(20*time.Second, "50 held messages", func() bool { return gauge(t, d, heldGauge) == 50 })
			e.waitFor(20*time.Second, "three failed probes", func() bool { _, p := e.channelState(); return p >= 3 })

			if g := gauge(t, d, healthyGauge); g != 0 {
				t.Errorf("%s = %v while held, want 0", healthyGauge, g)
			}
			if n := e.countWhere("notification WHERE status = 'failed'"); n != 0 {
				t.Errorf("%d failed while the channel was held, want 0", n)
			}
			if n := e.countWhere("river_job WHERE kind = 'cancelnotify_callback'"); n != 0 {
				t.Errorf("%d CRM callbacks while held, want 0", n)
			}
			if calls := len(e.sb.Requests()) - before; calls > 3 {
				t.Errorf("%d sendTemplate calls while held, want at most a handful (probes, not one per message)", calls)
			}
			first := e.notification("held-0")
			if first.Status != "queued" || first.ErrorCode != f.heldCode {
				t.Errorf("held-0: %s %s %q; want queued with the refusal %s", first.Status, first.ErrorCode, first.Error, f.heldCode)
			}
			code, body := get(t, d.AdminURL()+"/readyz", "", "")
			if code != http.StatusOK || !strings.Contains(body, `"held_channels":["default"]`) {
				t.Errorf("/readyz while held: %d %s; want 200 naming the held channel", code, body)
			}

			heldCalls := len(e.sb.Requests()) - before
			if err := f.off(e.sb); err != nil {
				t.Fatal(err)
			}
			cleared := time.Now()
			e.waitFor(time.Minute, "all 50 sent", func() bool {
				return e.countWhere("notification WHERE event_id = ANY($1) AND sent_at IS NOT NULL", ids) == 50
			})
			t.Logf("%s: %d sendTemplate calls before the hold, %d while held; all 50 sent %s after the fault cleared",
				f.name, before, heldCalls, time.Since(cleared).Round(10*time.Millisecond))
			st := e.sb.Stats()
			for i := range 50 {
				phone := strings.NewReplacer("+", "", " ", "").Replace(orderPayload(i)["phone"].(string))
				if st.AcceptedByPhone[phone] != 1 {
					t.Errorf("%s accepted %d times, want exactly once", phone, st.AcceptedByPhone[phone])
				}
			}
			if n := e.countWhere("notification WHERE status = 'failed'"); n != 0 {
				t.Errorf("%d failed after the resume, want 0", n)
			}
			e.waitFor(10*time.Second, "the gauge to read healthy", func() bool { return gauge(t, d, healthyGauge) == 1 && gauge(t, d, heldGauge) == 0 })
			if s, _ := e.channelState(); s != "healthy" {
				t.Errorf("channel_health.state = %s after the resume", s)
			}
			if down, up := logs.count(`msg="channel held`), logs.count(`msg="channel resumed`); down != 1 || up != 1 {
				t.Errorf("%d \"channel held\" and %d \"channel resumed\" warnings, want one each:\n%s", down, up, logs)
			}
		})
	}
}

// A refusal that concerns one recipient (131026) fails that message at
// once and leaves the channel healthy.
func TestRecipientRefusalFailsAtOnce(t *testing.T) {
	t.Parallel()
	sb := fastSandbox()
	sb.FailSuffixes = []string{"99"}
	e := newEnv(t, sb)
	d := e.start(e.healthConfig())
	bad := orderPayload(1)
	bad["phone"] = "+49 151 00000099"
	e.insert("bad-recipient", bad)
	e.insert("good-recipient", orderPayload(2))
	e.waitFinal(20*time.Second, "bad-recipient", "good-recipient")
	if n := e.notification("bad-recipient"); n.Status != "failed" || n.ErrorCode != "131026" {
		t.Errorf("bad-recipient: %s %s, want failed 131026", n.Status, n.ErrorCode)
	}
	if n := e.notification("good-recipient"); n.Status != "read" {
		t.Errorf("good-recipient: %s, want read", n.Status)
	}
	if s, _ := e.channelState(); s != "healthy" || gauge(t, d, healthyGauge) != 1 {
		t.Errorf("channel %s (gauge %v) after a recipient's refusal, want healthy", s, gauge(t, d, healthyGauge))
	}
}

// Two daemons share one held channel: they never probe at the same time,
// and both send again once it answers.
func TestTwoDaemonsProbeOneAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	f := e.sb.Faults()
	f.StatusLatency = 150 * time.Millisecond
	e.sb.SetFaults(f)
	var ds []*daemon.Daemon
	for i := range 2 {
		cfg := e.healthConfig()
		cfg.RiverID = fmt.Sprintf("daemon-%d", i)
		ds = append(ds, e.start(cfg))
	}
	if err := e.sb.SetChannelStatus("disconnected"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("two-%d", i))
		e.insert(ids[i], orderPayload(i))
	}
	e.waitFor(20*time.Second, "both daemons to see the hold", func() bool {
		return !ds[0].ChannelHealth()[0].Healthy() && !ds[1].ChannelHealth()[0].Healthy()
	})
	e.waitFor(30*time.Second, "five probes", func() bool { _, p := e.channelState(); return p >= 5 })
	if err := e.sb.SetChannelStatus("connected"); err != nil {
		t.Fatal(err)
	}
	e.waitFor(time.Minute, "all 20 sent", func() bool {
		return e.countWhere("notification WHERE event_id = ANY($1) AND sent_at IS NOT NULL", ids) == 20
	})
	e.waitFor(10*time.Second, "both daemons to see the channel healthy", func() bool {
		return ds[0].ChannelHealth()[0].Healthy() && ds[1].ChannelHealth()[0].Healthy()
	})
	var status []sandbox.Call
	for _, c := range e.sb.Calls() {
		if c.Method == "status" {
			status = append(status, c)
		}
	}
	slices.SortFunc(status, func(a, b sandbox.Call) int { return a.Start.Compare(b.Start) })
	if len(status) < 5 {
		t.Fatalf("%d GET /status calls, want the probes' (at least 5)", len(status))
	}
	for i := 1; i < len(status); i++ {
		if status[i].Start.Before(status[i-1].End) {
			t.Errorf("GET /status %d started at %s, before %d ended at %s: two daemons probed at once",
				i, status[i].Start.Format(time.StampMicro), i-1, status[i-1].End.Format(time.StampMicro))
		}
	}
	for phone, n := range e.sb.Stats().AcceptedByPhone {
		if n != 1 {
			t.Errorf("%s accepted %d times", phone, n)
		}
	}
}

// A daemon stopped hard while the channel is held leaves the hold in
// Postgres: the next daemon starts held, sends nothing while the fault
// lasts, and resumes by itself when it clears.
func TestHeldChannelSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.sb.RevokeToken()
	_, stop := e.startStoppable(e.healthConfig())
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("restart-%d", i))
		e.insert(ids[i], orderPayload(i))
	}
	e.waitFor(20*time.Second, "the channel to be held", func() bool { s, _ := e.channelState(); return s == "held" })
	stop()

	before := len(e.sb.Requests())
	_, probes := e.channelState()
	d := e.start(e.healthConfig())
	if d.ChannelHealth()[0].Healthy() {
		t.Errorf("a new daemon sees the held channel as healthy")
	}
	e.waitFor(20*time.Second, "the new daemon to probe", func() bool { _, p := e.channelState(); return p >= probes+2 })
	if calls := len(e.sb.Requests()) - before; calls > 0 {
		t.Errorf("the restarted daemon made %d sendTemplate calls while the token was still revoked", calls)
	}
	e.sb.RestoreToken()
	e.waitFor(time.Minute, "all 10 sent", func() bool {
		return e.countWhere("notification WHERE event_id = ANY($1) AND sent_at IS NOT NULL", ids) == 10
	})
	for phone, n := range e.sb.Stats().AcceptedByPhone {
		if n != 1 {
			t.Errorf("%s accepted %d times", phone, n)
		}
	}
	if s, _ := e.channelState(); s != "healthy" {
		t.Errorf("channel %s after the resume", s)
	}
}

// A payload language the template lacks goes out in the channel's default
// language, recorded on the row; one the template has goes out as asked.
// With ONEMSG_SEND_TTL the request carries messageSendTtlSeconds.
func TestLanguageFallbackAndTTLRequests(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	de := sandbox.DefaultTemplates()[0]
	de.Language = "de"
	sbcfg.Templates = append(sandbox.DefaultTemplates(), de)
	e := newEnv(t, sbcfg)
	cfg := e.healthConfig()
	cfg.SendTTL = 3600
	d := e.start(cfg)
	ru := seedPayload()
	ru["language"] = "ru"
	e.insert("lang-ru", ru)
	e.waitFinal(20*time.Second, "lang-ru")
	german := seedPayload()
	german["phone"] = "+7 900 123-45-68"
	german["language"] = "de"
	e.insert("lang-de", german)
	e.waitFinal(20*time.Second, "lang-de")

	body := func(phone, lang string) any {
		var v any
		_ = json.Unmarshal([]byte(`{
			"phone": "`+phone+`", "template": "order_cancelled", "namespace": "sandbox_ns",
			"language": {"policy": "deterministic", "code": "`+lang+`"},
			"params": [{"type": "body", "parameters": [
				{"type": "text", "text": "Alexey"}, {"type": "text", "text": "10482"},
				{"type": "text", "text": "Wireless headphones"},
				{"type": "text", "text": "Payment will be refunded within 3–5 business days to the card used for the order"}]}],
			"messageSendTtlSeconds": 3600}`), &v)
		return v
	}
	want := []any{body("79001234567", "ru"), body("79001234567", "en"), body("79001234568", "de")}
	reqs := e.sb.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d sendTemplate requests, want %d (ru refused, en, de)", len(reqs), len(want))
	}
	for i, r := range reqs {
		var got any
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("request %d body\n%s\nwant\n%v", i, r.Body, want[i])
		}
	}
	if reqs[0].Code != 132001 || reqs[1].Outcome != sandbox.OutcomeAccepted {
		t.Errorf("requests: %s %d, %s; want 132001 then accepted", reqs[0].Outcome, reqs[0].Code, reqs[1].Outcome)
	}
	check := func(eventID, lang, from string) {
		var gotLang string
		var gotFrom *string
		if err := e.pool.QueryRow(context.Background(), `SELECT language, language_fallback_from FROM notification WHERE event_id = $1`,
			eventID).Scan(&gotLang, &gotFrom); err != nil {
			t.Fatal(err)
		}
		f := ""
		if gotFrom != nil {
			f = *gotFrom
		}
		if gotLang != lang || f != from {
			t.Errorf("%s: language %s, fallback from %q; want %s from %q", eventID, gotLang, f, lang, from)
		}
	}
	check("lang-ru", "en", "ru")
	check("lang-de", "de", "")
	if n := e.notification("lang-ru"); n.Status != "read" {
		t.Errorf("lang-ru %s, want read", n.Status)
	}
	if !d.ChannelHealth()[0].Healthy() {
		t.Errorf("a missing payload language held the channel")
	}
}

// CANCELNOTIFY_SEND_FOR still ends a message that its held channel kept
// from going out, and the reason says the channel was down.
func TestSendForEndsAHeldMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.sb.RevokeToken()
	cfg := e.healthConfig()
	cfg.SendFor = 3 * time.Second
	e.start(cfg)
	e.insert("held-too-long", orderPayload(1))
	e.waitFinal(30*time.Second, "held-too-long")

	var status, reason string
	if err := e.pool.QueryRow(context.Background(), "SELECT status, coalesce(error, '') FROM notification WHERE event_id = 'held-too-long'").
		Scan(&status, &reason); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || !strings.Contains(reason, "CANCELNOTIFY_SEND_FOR") || !strings.Contains(reason, "channel default was down") {
		t.Errorf("status %s, reason %q; want failed, naming CANCELNOTIFY_SEND_FOR and the channel that was down", status, reason)
	}
	if n := len(e.sb.Requests()); n > 3 {
		t.Errorf("%d sendTemplate calls while the channel was held; want a handful at most (the first refusal and trials)", n)
	}
}
