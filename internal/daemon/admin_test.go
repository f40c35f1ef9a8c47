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
	"github.com/cancelnotify/cancelnotify/internal/preflight"
)

func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Readiness and metrics are served and correct after a few messages; basic
// auth guards /metrics and /riverui/ but not the probes.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"02"}
	e := newEnv(t, sbcfg)
	cfg := withWebhook(e.config())
	cfg.AdminAddr, cfg.AdminUser, cfg.AdminPassword = "127.0.0.1:0", "ops", "admin-password-123"
	d := e.start(cfg)
	e.registerWebhook(d)
	admin := d.AdminURL()

	e.waitFor(10*time.Second, "readiness", func() bool {
		code, _ := get(t, admin+"/readyz", "", "")
		return code == 200
	})
	if code, body := get(t, admin+"/readyz", "", ""); !strings.Contains(body, `"ready":true`) {
		t.Errorf("/readyz %d %s", code, body)
	}
	if code, _ := get(t, admin+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz %d", code)
	}

	ids := []string{"order-0", "order-1", "order-2", "order-bad"}
	for i := range 3 {
		e.insert(ids[i], orderPayload(i))
	}
	e.insert("order-bad", payload{"phone": "1"})
	e.waitAsPlanned(20*time.Second, ids[:3])

	for _, path := range []string{"/metrics", "/riverui/", "/debug/pprof/"} {
		if code, _ := get(t, admin+path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
		if code, _ := get(t, admin+path, "ops", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, want 401", path, code)
		}
	}
	if code, body := get(t, admin+"/riverui/", "ops", "admin-password-123"); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("/riverui/ with credentials: %d", code)
	}
	if code, body := get(t, admin+"/riverui/api/jobs?state=completed&limit=5", "ops", "admin-password-123"); code != 200 || !strings.Contains(body, "cancelnotify_send") {
		t.Errorf("/riverui/api/jobs: %d %.300s", code, body)
	}
	code, body := get(t, admin+"/metrics", "ops", "admin-password-123")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`cancelnotify_notifications{channel="default",status="read"} 2`,
		`cancelnotify_notifications{channel="default",status="failed"} 1`,
		`cancelnotify_notifications{channel="default",status="rejected"} 1`,
		`cancelnotify_notifications{channel="default",status="in_doubt"} 0`,
		`cancelnotify_status_transitions_total{channel="default",from="sending",source="api",to="sent"} 3`,
		`cancelnotify_status_transitions_total{channel="default",from="",source="daemon",to="rejected"} 1`,
		`cancelnotify_accept_latency_seconds_count 3`,
		`cancelnotify_delivery_latency_seconds_count 2`,
		`cancelnotify_onemsg_requests_total{channel="default",endpoint="sendTemplate",outcome="ok"} 3`,
		`cancelnotify_webhook_requests_total{result="ok"}`,
		`cancelnotify_relay_lag_seconds 0`,
		`cancelnotify_river_jobs{queue="cancelnotify_send",state="completed"} 3`,
		`cancelnotify_db_scrape_ok 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, secret := range []string{testWebhookSecret, "admin-password-123", "sandbox-token"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics contains a secret")
		}
	}
}

// /readyz says which part is not ready.
func TestReadyzReportsDatabaseLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	proxy := e.proxied()
	cfg := e.config()
	cfg.DatabaseURL = proxy.URL(t)
	cfg.AdminAddr = "127.0.0.1:0"
	d := e.start(cfg)
	e.waitFor(10*time.Second, "readiness", func() bool { c, _ := get(t, d.AdminURL()+"/readyz", "", ""); return c == 200 })
	proxy.Cut()
	defer proxy.Restore() // the daemon then stops cleanly
	e.waitFor(10*time.Second, "unreadiness", func() bool { c, _ := get(t, d.AdminURL()+"/readyz", "", ""); return c == 503 })
	_, body := get(t, d.AdminURL()+"/readyz", "", "")
	var r struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Ready || r.Checks["database"] == "ok" {
		t.Errorf("/readyz %s", body)
	}
}

// run refuses to start when the configured template is not on the channel.
func TestStartRefusesMissingTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	cfg := e.config()
	cfg.Template = "order_canceled"
	cfg.Preflight = true
	_, err := daemon.New(context.Background(), cfg)
	if !errors.Is(err, preflight.ErrTemplateMissing) || !strings.Contains(err.Error(), "order_canceled") {
		t.Errorf("New = %v, want the missing template named", err)
	}
}
