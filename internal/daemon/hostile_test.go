package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// An event_id long enough to break a status announcement is rejected with
// the limit, and the cancellation behind it is sent and read as usual.
func TestLongEventIDDoesNotBlockTheOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.start(e.config())
	long := strings.Repeat("x", 7800)
	e.insert(long, orderPayload(1))
	e.insert(strings.Repeat("<", 1300), orderPayload(2))
	e.insert("order-behind", orderPayload(3))
	e.waitFinal(20*time.Second, "order-behind")
	if n := e.notification("order-behind"); n.Status != ledger.StatusRead {
		t.Errorf("row behind the long ones: %s, want read", n.Status)
	}
	for _, id := range []string{long, strings.Repeat("<", 1300)} {
		if n := e.notification(id); n.Status != ledger.StatusRejected || n.ErrorCode != "event_id_too_long" {
			t.Errorf("event_id of %d bytes: %s %s, want rejected event_id_too_long", len(id), n.Status, n.ErrorCode)
		}
	}
	if got := len(e.sb.Messages()); got != 1 {
		t.Errorf("1MSG got %d messages, want only the one behind", got)
	}
}

// A relay that cannot settle a row says so in /readyz and in
// cancelnotify_relay_failing_seconds, while the other rows go on.
func TestStalledRelayShowsInReadyzAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	cfg := e.config()
	cfg.AdminAddr = "127.0.0.1:0"
	d := e.start(cfg)
	admin := d.AdminURL()
	e.waitFor(10*time.Second, "readiness", func() bool { code, _ := get(t, admin+"/readyz", "", ""); return code == 200 })
	// A stand-in for a row the database refuses whatever the relay writes.
	_, err := e.pool.Exec(context.Background(), `CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.event_id = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER poison BEFORE INSERT ON notification FOR EACH ROW EXECUTE FUNCTION poison()`)
	if err != nil {
		t.Fatal(err)
	}
	e.insert("poison", orderPayload(1))
	e.insert("order-fine", orderPayload(2))
	e.waitFinal(20*time.Second, "order-fine")
	e.waitFor(20*time.Second, "/readyz to report the stalled relay", func() bool {
		code, body := get(t, admin+"/readyz", "", "")
		return code == 503 && strings.Contains(body, "making no progress")
	})
	_, metrics := get(t, admin+"/metrics", "", "")
	if !strings.Contains(metrics, "cancelnotify_relay_failing_seconds ") || strings.Contains(metrics, "cancelnotify_relay_failing_seconds 0\n") {
		t.Errorf("cancelnotify_relay_failing_seconds missing or 0:\n%s", grepLines(metrics, "relay_failing"))
	}
	// Once the cause is gone, the row is relayed and the relay is ready again.
	if _, err := e.pool.Exec(context.Background(), "DROP TRIGGER poison ON notification"); err != nil {
		t.Fatal(err)
	}
	e.waitFinal(30*time.Second, "poison")
	e.waitFor(20*time.Second, "readiness again", func() bool { code, _ := get(t, admin+"/readyz", "", ""); return code == 200 })
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A row the OMS inserted with relayed_at already set is sent all the same,
// and the backlog and the report agree meanwhile.
func TestPresetRelayedAtIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	b, _ := json.Marshal(orderPayload(1))
	if _, err := e.pool.Exec(context.Background(), "INSERT INTO outbox (event_id, payload, relayed_at) VALUES ('preset', $1, now() - interval '1 day')", b); err != nil {
		t.Fatal(err)
	}
	var backlog int
	var report string
	if err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM outbox WHERE relayed_at IS NULL),
		(SELECT status FROM notification_report WHERE event_id = 'preset')`).Scan(&backlog, &report); err != nil || backlog != 1 || report != "queued" {
		t.Errorf("before the relay: backlog %d, report %q (%v); want 1 and queued", backlog, report, err)
	}
	e.start(e.config())
	e.waitFinal(20*time.Second, "preset")
	if n := e.notification("preset"); n.Status != ledger.StatusRead || len(e.sb.Messages()) != 1 {
		t.Errorf("preset row: %s, %d messages at 1MSG; want read, 1", n.Status, len(e.sb.Messages()))
	}
}

// Domestic notations are rejected without CANCELNOTIFY_PHONE_REGION and
// reach the right number with it; 1MSG never sees a number abroad.
func TestDomesticPhonesNeedARegion(t *testing.T) {
	t.Parallel()
	phones := map[string]string{"ru-domestic": "8 (495) 123-45-67", "us-domestic": "(201) 555-0123", "intl": "+7 900 123-45-67"}
	for _, tt := range []struct {
		region string
		want   map[string]string // event → phone sent to, "" = rejected
	}{
		{"", map[string]string{"ru-domestic": "", "us-domestic": "", "intl": "79001234567"}},
		{"RU", map[string]string{"ru-domestic": "74951234567", "us-domestic": "", "intl": "79001234567"}},
		{"US", map[string]string{"ru-domestic": "", "us-domestic": "12015550123", "intl": "79001234567"}},
	} {
		t.Run("region="+tt.region, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fastSandbox())
			cfg := e.config()
			cfg.PhoneRegion = tt.region
			e.start(cfg)
			var ids []string
			for id, phone := range phones {
				p := orderPayload(0)
				p["phone"] = phone
				e.insert(id, p)
				ids = append(ids, id)
			}
			e.waitFinal(20*time.Second, ids...)
			sent := map[string]bool{}
			for _, m := range e.sb.Messages() {
				sent[m.Phone] = true
			}
			for id, want := range tt.want {
				n := e.notification(id)
				switch {
				case want == "" && (n.Status != ledger.StatusRejected || !strings.Contains(n.Error, "CANCELNOTIFY_PHONE_REGION")):
					t.Errorf("%s (%s): %s %q; want rejected naming CANCELNOTIFY_PHONE_REGION", id, phones[id], n.Status, n.Error)
				case want != "" && (n.Phone != want || !sent[want]):
					t.Errorf("%s (%s): %s to %s; want sent to %s (1MSG got %v)", id, phones[id], n.Status, n.Phone, want, sent)
				}
			}
			wantSent := 0
			for _, p := range tt.want {
				if p != "" {
					wantSent++
				}
			}
			if len(sent) != wantSent {
				t.Errorf("1MSG got %v; want exactly the %d numbers above", sent, wantSent)
			}
		})
	}
}

func request(t *testing.T, method, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pprof is off unless asked for and never shows the command line; the
// loopback admin listener refuses foreign Host headers (DNS rebinding) and
// River UI's API refuses what a foreign page could forge.
func TestAdminProtections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	off := e.config()
	off.AdminAddr = "127.0.0.1:0"
	dOff := e.start(off)
	if code, _ := get(t, dOff.AdminURL()+"/debug/pprof/", "", ""); code != http.StatusNotFound {
		t.Errorf("pprof without CANCELNOTIFY_PPROF: %d, want 404", code)
	}

	e2 := newEnv(t, fastSandbox())
	on := e2.config()
	on.AdminAddr, on.Pprof = "127.0.0.1:0", true
	d := e2.start(on)
	admin := d.AdminURL()
	port := admin[strings.LastIndex(admin, ":")+1:]
	if code, body := get(t, admin+"/debug/pprof/", "", ""); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: %d", code)
	}
	if code, body := get(t, admin+"/debug/pprof/cmdline", "", ""); code != http.StatusNotFound || strings.Contains(body, "test") {
		t.Errorf("/debug/pprof/cmdline: %d %.100q, want 404", code, body)
	}
	for _, tt := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		want               int
	}{
		{"rebound host", "GET", "/metrics", map[string]string{"Host": "attacker.example:" + port}, "", http.StatusMisdirectedRequest},
		{"rebound host, probe", "GET", "/readyz", map[string]string{"Host": "attacker.example"}, "", http.StatusMisdirectedRequest},
		{"localhost", "GET", "/healthz", map[string]string{"Host": "localhost:" + port}, "", 200},
		{"[::1]", "GET", "/healthz", map[string]string{"Host": "[::1]:" + port}, "", 200},
		{"form post to River UI", "POST", "/riverui/api/jobs/cancel", map[string]string{"Content-Type": "text/plain"}, `{"job_ids":["1"]}`, http.StatusUnsupportedMediaType},
		{"foreign origin", "POST", "/riverui/api/jobs/cancel", map[string]string{"Content-Type": "application/json", "Origin": "https://attacker.example"}, `{"job_ids":["1"]}`, http.StatusForbidden},
		{"cross-site fetch", "POST", "/riverui/api/jobs/retry", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, `{"job_ids":["1"]}`, http.StatusForbidden},
	} {
		if code, body := request(t, tt.method, admin+tt.path, tt.header, tt.body); code != tt.want {
			t.Errorf("%s: %d %.200s, want %d", tt.name, code, body, tt.want)
		}
	}
	// The same request from River UI's own page goes through.
	if code, body := request(t, "POST", admin+"/riverui/api/jobs/cancel", map[string]string{"Content-Type": "application/json", "Origin": admin}, `{"job_ids":["1"]}`); code == http.StatusForbidden || code == http.StatusUnsupportedMediaType || code >= 500 {
		t.Errorf("same-origin JSON request: %d %.200s", code, body)
	}
}

// An admin address other machines can reach needs basic auth.
func TestExposedAdminNeedsAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	cfg := e.config()
	cfg.AdminAddr = "0.0.0.0:0"
	if _, err := daemon.New(context.Background(), cfg); !errors.Is(err, daemon.ErrAdminExposed) || !strings.Contains(err.Error(), "CANCELNOTIFY_ADMIN_USER") {
		t.Errorf("New = %v; want ErrAdminExposed naming CANCELNOTIFY_ADMIN_USER", err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:9090": true, "localhost:9090": true, "[::1]:9090": true, ":9090": false, "0.0.0.0:9090": false, "10.0.0.5:9090": false, "admin.internal:9090": false} {
		if got := daemon.LoopbackAddr(addr); got != want {
			t.Errorf("LoopbackAddr(%q) = %v", addr, got)
		}
	}
}

// Bidi overrides and zero-width characters never reach the customer; an
// emoji joined with a zero-width joiner does, whole.
func TestHostileTextsArriveCleaned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	e.start(e.config())
	p := orderPayload(1)
	p["customer_name"] = "Ale\u200bxey\u200f"
	p["order_number"] = "\u202e10482"
	p["product_name"] = "Laptop 👩\u200d💻 \u2066edition\u2069"
	p["next_step"] = "Refund \ufeffsoon\u200c"
	e.insert("hostile-texts", p)
	e.waitFinal(20*time.Second, "hostile-texts")
	msgs := e.sb.Messages()
	if len(msgs) != 1 {
		t.Fatalf("1MSG got %d messages", len(msgs))
	}
	want := []string{"Alexey", "10482", "Laptop 👩\u200d💻 edition", "Refund soon"}
	if strings.Join(msgs[0].Params, "|") != strings.Join(want, "|") {
		t.Errorf("1MSG got params %q, want %q", msgs[0].Params, want)
	}
}
