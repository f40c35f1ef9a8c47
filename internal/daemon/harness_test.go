package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// fastSandbox is the default sandbox with statuses that arrive in
// milliseconds instead of seconds.
func fastSandbox() sandbox.Config {
	cfg := sandbox.DefaultConfig()
	cfg.DeliveredAfter = 50 * time.Millisecond
	cfg.ReadAfter = 150 * time.Millisecond
	cfg.Seed = 1
	return cfg
}

// startSandbox serves a sandbox over real HTTP.
func startSandbox(t *testing.T, cfg sandbox.Config) (*sandbox.Server, string) {
	t.Helper()
	sb := sandbox.New(cfg)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	return sb, srv.URL
}

// env is one test's database schema and sandbox.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	sb     *sandbox.Server
	url    string
}

func newEnv(t *testing.T, sbcfg sandbox.Config) *env {
	t.Helper()
	pool, schema := dbtest.New(t)
	sb, url := startSandbox(t, sbcfg)
	return &env{t: t, pool: pool, schema: schema, sb: sb, url: url}
}

// config is a daemon configuration for this env, tuned for fast tests.
func (e *env) config() daemon.Config {
	return daemon.Config{
		DatabaseURL: dbtest.URL(),
		Schema:      e.schema,
		MaxConns:    20,
		OneMsg: onemsg.Config{BaseURL: e.url, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken,
			Timeout: 3 * time.Second},
		Template:          sandbox.DefaultTemplate,
		Namespace:         sandbox.DefaultNamespace,
		Language:          "en",
		RelayPollInterval: 200 * time.Millisecond,
		TrackFirstPoll:    200 * time.Millisecond,
		TrackFor:          time.Hour,
		ShutdownTimeout:   5 * time.Second,
		TestOnly:          true,
		Logger:            testLogger(),
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a daemon until the test ends.
func (e *env) start(cfg daemon.Config) *daemon.Daemon {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		e.t.Fatalf("daemon.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("daemon.Run: %v", err)
		}
	})
	return d
}

// payload is an order.cancelled payload as an OMS writes it.
type payload map[string]any

func seedPayload() payload {
	return payload{
		"phone":         "+7 900 123-45-67",
		"customer_name": "Alexey",
		"order_number":  10482,
		"product_name":  "Wireless headphones",
		"next_step":     "Payment will be refunded within 3–5 business days to the card used for the order.",
	}
}

func orderPayload(i int) payload {
	return payload{
		"phone":         fmt.Sprintf("+49 151 %08d", 10000000+i),
		"customer_name": fmt.Sprintf("Customer %d", i),
		"order_number":  fmt.Sprintf("%d", 20000+i),
		"product_name":  "Espresso machine",
		"next_step":     "Refund within 5 business days",
	}
}

// insert writes one outbox row in its own transaction, as the OMS does.
func (e *env) insert(eventID string, p any) {
	e.t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(context.Background(), "INSERT INTO outbox (event_id, payload) VALUES ($1, $2)", eventID, b); err != nil {
		e.t.Fatal(err)
	}
}

// notification reads an event's notification row.
func (e *env) notification(eventID string) *ledger.Notification {
	e.t.Helper()
	n, err := ledger.GetByEventID(context.Background(), e.pool, eventID)
	if err != nil {
		e.t.Fatalf("notification %s: %v", eventID, err)
	}
	return n
}

// waitFinal waits until every listed event has a final status (or in_doubt).
func (e *env) waitFinal(timeout time.Duration, eventIDs ...string) {
	e.t.Helper()
	e.waitFor(timeout, fmt.Sprintf("%d events to reach a final status", len(eventIDs)), func() bool {
		var n int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notification
			WHERE event_id = ANY($1) AND status IN ('delivered','read','failed','rejected','skipped','expired','in_doubt')`, eventIDs).Scan(&n)
		return err == nil && n == len(eventIDs)
	})
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s; counts: %s", timeout, what, e.counts())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) counts() string {
	rows, err := e.pool.Query(context.Background(), "SELECT status, count(*) FROM notification GROUP BY 1 ORDER BY 1")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	s := ""
	for rows.Next() {
		var st string
		var n int
		_ = rows.Scan(&st, &n)
		s += fmt.Sprintf("%s=%d ", st, n)
	}
	return s
}

// statuses returns the applied status history of a notification.
func (e *env) history(n *ledger.Notification) []string {
	e.t.Helper()
	evs, err := ledger.Events(context.Background(), e.pool, n.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Applied {
			out = append(out, ev.Status)
		}
	}
	return out
}

type daemonCfg = daemon.Config

func itoa(i int) string { return fmt.Sprint(i) }

// registerWebhook points the sandbox's pushes at the daemon, as
// `cancelnotify webhook register` does at 1MSG.
func (e *env) registerWebhook(d *daemon.Daemon) {
	e.t.Helper()
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: e.url, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := api.RegisterWebhook(context.Background(), d.WebhookURL()); err != nil {
		e.t.Fatal(err)
	}
}

const testWebhookSecret = "test-webhook-secret-0123456789"

// withWebhook turns the daemon's webhook receiver on, on a free port, with
// the default (long) first poll.
func withWebhook(cfg daemon.Config) daemon.Config {
	cfg.WebhookAddr, cfg.WebhookSecret = "127.0.0.1:0", testWebhookSecret
	cfg.TrackFirstPoll = 0
	return cfg
}

func replaceAll(s string, oldnew ...string) string { return strings.NewReplacer(oldnew...).Replace(s) }

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// proxied returns a proxy to the database the test can cut and restore.
func (e *env) proxied() *dbtest.Proxy { return dbtest.NewProxy(e.t) }
