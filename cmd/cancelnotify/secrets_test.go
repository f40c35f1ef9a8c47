package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// syncBuffer is a bytes.Buffer safe for the daemon's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// No secret — the 1MSG token, the webhook secret, the admin and callback
// secrets, the database password — appears in any log line, error, metric or
// command output, even when 1MSG answers 401 quoting the token.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	const (
		token         = "daemon-SECRET-token-4242"
		webhookSecret = "webhook-SECRET-0123456789abcdef"
		adminPassword = "admin-SECRET-pw-99"
		callbackSec   = "whsec_Y2FsbGJhY2stU0VDUkVULTc3LXJhbmRvbS1ieXRlcy1oZXJl"
		dbPassword    = "db-SECRET-pw-31337"
	)
	secrets := []string{token, webhookSecret, adminPassword, callbackSec, dbPassword}

	sb := sandbox.New(sandbox.DefaultConfig()) // expects sandbox-token: every send gets 401
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(crm.Close)

	cfg, _ := pgx.ParseConfig(dbtest.URL())
	dbURL := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, dbPassword, cfg.Host, cfg.Port, cfg.Database)
	webhookAddr, adminAddr := freeAddr(t), freeAddr(t)
	vars := map[string]string{
		"DATABASE_URL": dbURL, "CANCELNOTIFY_SCHEMA": schema,
		"ONEMSG_API_URL": srv.URL, "ONEMSG_CHANNEL_ID": "sandbox", "ONEMSG_TOKEN": token,
		"ONEMSG_TEMPLATE": "order_cancelled", "ONEMSG_NAMESPACE": "sandbox_ns",
		"CANCELNOTIFY_WEBHOOK_ADDR": webhookAddr, "CANCELNOTIFY_WEBHOOK_SECRET": webhookSecret,
		"CANCELNOTIFY_ADMIN_ADDR": adminAddr, "CANCELNOTIFY_ADMIN_USER": "ops", "CANCELNOTIFY_ADMIN_PASSWORD": adminPassword,
		"CANCELNOTIFY_CALLBACK_URL": crm.URL, "CANCELNOTIFY_CALLBACK_SECRET": callbackSec,
		"CANCELNOTIFY_LOG_LEVEL": "debug", "CANCELNOTIFY_RELAY_POLL": "200ms",
	}
	getenv := func(k string) string { return vars[k] }

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"run"}, &env{getenv: getenv, stdout: &logs, stderr: &logs}) }()

	for i := range 3 {
		if _, err := pool.Exec(context.Background(), "INSERT INTO outbox (event_id, payload) VALUES ($1, $2)", fmt.Sprintf("order-%d", i),
			fmt.Sprintf(`{"phone":"+44 7911 12345%d","customer_name":"C","order_number":"%d","product_name":"P","next_step":"N"}`, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	// 401 is channel-wide: the rows wait, queued, and the channel is held.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var queued, held int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'queued'),
			(SELECT count(*) FROM channel_health WHERE state = 'held') FROM notification`).Scan(&queued, &held)
		if queued == 3 && held == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel not held with 3 rows waiting in time; logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var outputs []string
	fetch := func(label, method, url string, auth bool) {
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"ack":[]}`))
		if auth {
			req.SetBasicAuth("ops", adminPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs = append(outputs, fmt.Sprintf("%s: %d %s", label, resp.StatusCode, b))
	}
	fetch("webhook, wrong secret", "POST", "http://"+webhookAddr+"/webhooks/1msg/wrong-secret-guess", false)
	fetch("webhook", "POST", "http://"+webhookAddr+"/webhooks/1msg/"+webhookSecret, false)
	fetch("metrics", "GET", "http://"+adminAddr+"/metrics", true)
	fetch("readyz", "GET", "http://"+adminAddr+"/readyz", false)

	// status and check say the channel is held, why and since when.
	heldLine := regexp.MustCompile(`channel default:? held since \d{4}-\d\d-\d\dT[0-9:]+Z \([^)]+\): http_401 .*Wrong token`)
	for _, args := range [][]string{{"status"}, {"status", "order-0"}, {"status", "order-0", "--json"}, {"status", "--status", "failed"}, {"check"}, {"check", "--json"}} {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), args, &env{getenv: getenv, stdout: &out, stderr: &errOut})
		outputs = append(outputs, fmt.Sprintf("%v (exit %d):\n%s%s", args, code, out.String(), errOut.String()))
		if len(args) == 1 || (args[0] == "status" && len(args) == 2) {
			if !heldLine.MatchString(out.String()) {
				t.Errorf("%v does not say the channel is held, why and since when:\n%s", args, out.String())
			}
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("run exited %d", code)
	}
	outputs = append(outputs, "logs:\n"+logs.String())

	all := strings.Join(outputs, "\n")
	if testing.Verbose() {
		t.Log(all)
	}
	if !strings.Contains(all, `Wrong token \"REDACTED\"`) && !strings.Contains(all, `Wrong token "REDACTED"`) {
		t.Errorf("the 401 text is not in the output at all; the test did not exercise it")
	}
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			lo, hi := max(i-200, 0), min(i+100, len(all))
			t.Errorf("secret %q shown: …%s…", s, all[lo:hi])
		}
	}
}
