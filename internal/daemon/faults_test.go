package daemon_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// switchable serves h on a fixed address that can be taken down (connection
// refused) and brought back.
type switchable struct {
	addr string
	h    http.Handler
	mu   sync.Mutex
	srv  *http.Server
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchable{addr: ln.Addr().String(), h: h}
	s.serve(ln)
	t.Cleanup(s.down)
	return s
}

func (s *switchable) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = &http.Server{Handler: s.h}
	go func() { _ = s.srv.Serve(ln) }()
}

func (s *switchable) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

func (s *switchable) up(t *testing.T) {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// 1MSG unreachable for a while, in each way it can be: nothing is marked
// failed meanwhile, and when it returns every message goes out exactly once.
func TestOneMsgOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults sandbox.Faults
		refuse bool // take the listener down: connection refused
	}{
		{name: "connection refused", refuse: true},
		{name: "connections dropped", faults: sandbox.Faults{Down: true}},
		{name: "5xx", faults: sandbox.Faults{Status5xx: 1}},
		{name: "timeouts", faults: sandbox.Faults{Hang: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, schema := newEnvDB(t)
			sb := sandbox.New(fastSandbox())
			t.Cleanup(sb.Close)
			srv := newSwitchable(t, sb)
			e := &env{t: t, pool: pool, schema: schema, sb: sb, url: "http://" + srv.addr}
			cfg := e.config()
			cfg.OneMsg.Timeout = time.Second // a hung call ends, and the job with it
			e.start(cfg)

			if tt.refuse {
				srv.down()
			} else {
				sb.SetFaults(tt.faults)
			}
			var ids []string
			for i := range 20 {
				id := "order-" + itoa(i)
				ids = append(ids, id)
				e.insert(id, orderPayload(i))
			}
			// The outage lasts until every send job has tried and been snoozed
			// at least twice (1s, then 2s): several attempts each.
			e.waitFor(20*time.Second, "every send job to be snoozed twice", func() bool {
				var n int
				err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
					WHERE kind = 'cancelnotify_send' AND coalesce((metadata->>'snoozes')::int, 0) >= 2`).Scan(&n)
				return err == nil && n == len(ids)
			})
			var failed, sent int
			if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'failed'),
				count(*) FILTER (WHERE wamid IS NOT NULL) FROM notification`).Scan(&failed, &sent); err != nil {
				t.Fatal(err)
			}
			if failed != 0 || sent != 0 {
				t.Errorf("during the outage: %d failed, %d sent; want none of either", failed, sent)
			}
			if tt.refuse {
				srv.up(t)
			} else {
				sb.SetFaults(sandbox.Faults{})
			}
			e.waitAsPlanned(60*time.Second, ids)
			st := sb.Stats()
			if st.Accepted != 20 || len(st.AcceptedByPhone) != 20 {
				t.Errorf("sandbox accepted %d messages to %d phones; want 20 to 20 (each once)", st.Accepted, len(st.AcceptedByPhone))
			}
			for phone, n := range st.AcceptedByPhone {
				if n != 1 {
					t.Errorf("%s got %d messages", phone, n)
				}
			}
		})
	}
}

func newEnvDB(t *testing.T) (*pgxpool.Pool, string) {
	return dbtest.New(t)
}

// Postgres goes away under load and comes back: the daemon reconnects by
// itself, the relay LISTENs again, nothing is lost or sent twice.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	proxy := e.proxied()
	cfg := e.config()
	cfg.DatabaseURL = proxy.URL(t)
	d := e.start(cfg)
	e.waitFor(10*time.Second, "the relay to listen", d.Relay().Listening)

	var ids []string
	var written atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() { // the OMS keeps writing: its connection is not the daemon's
		for i := range 150 {
			id := fmt.Sprintf("order-%d", i)
			ids = append(ids, id)
			e.insert(id, orderPayload(i))
			written.Add(1)
			time.Sleep(20 * time.Millisecond) // the OMS's pace
		}
	})
	e.waitFor(10*time.Second, "the first messages to be accepted", func() bool { return e.sb.Stats().Accepted >= 10 })
	proxy.Cut()
	e.waitFor(5*time.Second, "the relay to notice", func() bool { return !d.Relay().Listening() })
	// Postgres stays away while the OMS commits another 40 cancellations.
	cut := written.Load()
	e.waitFor(10*time.Second, "40 cancellations written during the outage", func() bool { return written.Load() >= min(cut+40, 150) })
	proxy.Restore()
	wg.Wait()
	// A job whose end River could not record while Postgres was away (its
	// completer gives up after three tries) stays running until River's
	// rescuer takes it back, RescueStuckJobsAfter later (here 21s+30s).
	e.waitAsPlanned(3*time.Minute, ids)
	e.waitFor(10*time.Second, "the relay to LISTEN again", d.Relay().Listening)
	st := e.sb.Stats()
	if st.Accepted != 150 || len(st.AcceptedByPhone) != 150 {
		t.Errorf("sandbox accepted %d messages to %d phones; want 150 each once", st.Accepted, len(st.AcceptedByPhone))
	}
}

// SIGTERM under load: the relay stops taking rows, in-flight sends finish
// and are recorded, Run returns within the shutdown timeout; a restarted
// daemon sends the rest, each once.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.Faults = sandbox.Faults{Latency: 400 * time.Millisecond}
	e := newEnv(t, sbcfg)
	cfg := e.config()
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.SendWorkers = 10
	ctx, stop := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	var ids []string
	for i := range 60 {
		id := "order-" + itoa(i)
		ids = append(ids, id)
		e.insert(id, orderPayload(i))
	}
	e.waitFor(10*time.Second, "sends in flight", func() bool { return e.sb.Stats().SendRequests >= 15 })
	stopped := time.Now()
	stop() // what SIGTERM does through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return within the shutdown timeout")
	}
	t.Logf("stopped in %s", time.Since(stopped).Round(time.Millisecond))

	// Every message 1MSG accepted is recorded: nothing was in flight unrecorded.
	for _, m := range e.sb.Messages() {
		var n int
		if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM notification WHERE wamid = $1", m.ID).Scan(&n); err != nil || n != 1 {
			t.Errorf("accepted message %s (order %s) not recorded after shutdown", m.ID, m.Params[1])
		}
	}
	var sending int
	_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM notification WHERE status = 'sending'").Scan(&sending)
	if sending != 0 {
		t.Errorf("%d rows left sending: in-flight sends did not finish", sending)
	}
	accepted := e.sb.Stats().Accepted

	e.start(e.config())
	e.waitAsPlanned(60*time.Second, ids)
	st := e.sb.Stats()
	if st.Accepted != 60 || len(st.AcceptedByPhone) != 60 {
		t.Errorf("after the restart: %d accepted to %d phones; want 60 each once (%d before the stop)", st.Accepted, len(st.AcceptedByPhone), accepted)
	}
}

// Poison rows are rejected with a reason and never block the rows behind.
func TestPoisonRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.start(e.config())
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	poison := []struct {
		id, payload, code string
	}{
		{"huge", `{"phone":"+44 7911 123456","customer_name":"A","order_number":"1","product_name":"` + strings.Repeat("x", 10<<20) + `","next_step":"n"}`, "payload_too_large"},
		{"null", `null`, "invalid_json"},
		{"array", `[1,2,3]`, "invalid_json"},
		{"nested-name", `{"phone":"+44 7911 123456","customer_name":` + deep + `,"order_number":"1","product_name":"p","next_step":"n"}`, "not_a_string"},
		{"escaped-nul", `{"phone":"+44 7911 123456","customer_name":"A\u0001B","order_number":"1","product_name":"p","next_step":"   "}`, "empty_text"},
	}
	for _, p := range poison {
		if _, err := e.pool.Exec(context.Background(), "INSERT INTO outbox (event_id, payload) VALUES ($1, $2::jsonb)", p.id, p.payload); err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
	}
	e.insert("behind", orderPayload(1))
	ids := []string{"behind"}
	for _, p := range poison {
		ids = append(ids, p.id)
	}
	e.waitFinal(30*time.Second, ids...)
	for _, p := range poison {
		n := e.notification(p.id)
		if n.Status != ledger.StatusRejected || n.ErrorCode != p.code || n.Error == "" {
			t.Errorf("%s: %s %s %q; want rejected %s with a reason", p.id, n.Status, n.ErrorCode, n.Error, p.code)
		}
	}
	if n := e.notification("behind"); n.Wamid == "" {
		t.Errorf("the row behind the poison was not sent: %s", n.Status)
	}
}
