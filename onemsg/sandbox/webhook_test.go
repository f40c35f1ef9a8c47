package sandbox_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func TestWebhookRegistration(t *testing.T) {
	e := newEnv(t, nil)
	u := func(i int) string { return "https://crm.example/hook/" + string(rune('a'+i)) }
	six := `["` + strings.Join([]string{u(0), u(1), u(2), u(3), u(4), u(5)}, `","`) + `"]`
	tests := []struct {
		name    string
		body    string
		status  int
		wantRaw string
		list    []string // GET /webhook afterwards
	}{
		{"one URL", `{"webhookUrl":"` + u(0) + `"}`, 200, `{"set":true,"message":"` + u(0) + `"}`, []string{u(0)}},
		{"array replaces", `{"webhookUrl":["` + u(1) + `","` + u(2) + `"]}`, 200,
			`{"set":true,"message":"` + u(1) + `, ` + u(2) + `"}`, []string{u(1), u(2)}},
		{"six is too many", `{"webhookUrl":` + six + `}`, 400, "", []string{u(1), u(2)}},
		{"not a URL", `{"webhookUrl":"crm.example/hook"}`, 400, "", []string{u(1), u(2)}},
		{"missing", `{}`, 400, "", []string{u(1), u(2)}},
		{"empty clears", `{"webhookUrl":""}`, 200, `{"set":true,"message":""}`, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(http.MethodPost, "/sandbox/webhook", bearer, tt.body)
			if r.status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.wantRaw != "" && r.raw != tt.wantRaw {
				t.Fatalf("body %s, want %s", r.raw, tt.wantRaw)
			}
			var got []string
			for _, v := range e.get("/sandbox/webhook").json["webhookUrl"].([]any) {
				got = append(got, v.(string))
			}
			if !slices.Equal(got, tt.list) && !(len(got) == 0 && len(tt.list) == 0) {
				t.Fatalf("GET /webhook = %v, want %v", got, tt.list)
			}
		})
	}

	t.Run("settings", func(t *testing.T) {
		r := e.get("/sandbox/settings")
		jsonEqual(t, r.raw, `{"webhookUrl":"","ackNotificationsOn":false,"rawHooks":false,"guaranteedHooks":false,`+
			`"template_analytics_enabled":false,"cta_url_link_tracking_opted_out":false}`)
		r = e.must(http.MethodPost, "/sandbox/settings", bearer, `{"webhookUrl":"`+u(3)+`","ackNotificationsOn":true,"rawHooks":false}`)
		jsonEqual(t, r.raw, `{"webhookUrl":"`+u(3)+`","ackNotificationsOn":true,"rawHooks":false,"guaranteedHooks":false,`+
			`"template_analytics_enabled":false,"cta_url_link_tracking_opted_out":false,`+
			`"update":{"webhookUrl":"`+u(3)+`","ackNotificationsOn":true}}`)
		r = e.must(http.MethodPost, "/sandbox/settings", bearer, `{"ackNotificationsOn":"maybe"}`)
		if r.status != 400 || !strings.Contains(r.raw, "ackNotificationsOn") {
			t.Fatalf("HTTP %d %s", r.status, r.raw)
		}
		got := e.sb.Settings()
		if !got.AckNotificationsOn || !slices.Equal(got.WebhookURLs, []string{u(3)}) {
			t.Fatalf("Settings() = %+v", got)
		}
	})
}

func TestAckPushes(t *testing.T) {
	tests := []struct {
		name string
		raw  bool
	}{
		{"normalized", false},
		{"raw Meta", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *sandbox.Config) {
				cfg.FailSuffixes = []string{"000"}
				cfg.DeliveredAfter, cfg.ReadAfter = 150*time.Millisecond, 250*time.Millisecond
				cfg.AckBatchWindow = 50 * time.Millisecond
			})
			rc := newReceiver(t)
			e.subscribe(rc, tt.raw)
			ok := e.send(sendBody("79001234567", okParams...)).json["id"].(string)
			failed := e.send(sendBody("79001234000", okParams...)).json["id"].(string)

			want := map[string][]string{ok: {"sent", "delivered", "read"}, failed: {"sent", "failed"}}
			got := map[string][]string{}
			eventually(t, 2*time.Second, "five acks pushed", func() bool {
				got = map[string][]string{}
				for _, p := range rc.payloads() {
					for _, a := range ackEntries(t, p, tt.raw) {
						got[a["id"].(string)] = append(got[a["id"].(string)], a["status"].(string))
					}
				}
				return len(got[ok]) == 3 && len(got[failed]) == 2
			})
			for id, w := range want {
				if !slices.Equal(got[id], w) {
					t.Fatalf("%s: pushed %v, want %v", id, got[id], w)
				}
			}
			// sent of both messages was due at once: one POST carries both.
			first := ackEntries(t, rc.payloads()[0], tt.raw)
			if len(first) != 2 {
				t.Fatalf("first push carried %d acks, want the two sent acks batched", len(first))
			}
			for _, p := range rc.payloads() {
				for _, a := range ackEntries(t, p, tt.raw) {
					checkAck(t, a, tt.raw, a["id"] == failed)
				}
			}
			if tt.raw {
				if p := rc.payloads()[0]; p["object"] != "whatsapp_business_account" {
					t.Fatalf("raw payload %v", p)
				}
			}
			// The sandbox counts a push once the receiver's answer is read.
			eventually(t, time.Second, "Stats counts five acks", func() bool { return e.sb.Stats().AcksPushed == 5 })
			if st := e.sb.Stats(); st.WebhookPushes != int64(len(rc.payloads())) || st.WebhookPushFailures != 0 {
				t.Fatalf("Stats() = %+v", st)
			}
		})
	}

	t.Run("no pushes without ackNotificationsOn", func(t *testing.T) {
		e := newEnv(t, nil)
		rc := newReceiver(t)
		e.must(http.MethodPost, "/sandbox/webhook", bearer, `{"webhookUrl":"`+rc.srv.URL+`"}`)
		id := e.send(sendBody("79001234567", okParams...)).json["id"].(string)
		eventually(t, 2*time.Second, "read", func() bool { return len(e.hookInfo(id)) == 3 })
		time.Sleep(30 * time.Millisecond) // longer than the batch window
		if n := len(rc.payloads()); n != 0 {
			t.Fatalf("%d pushes with ack notifications off", n)
		}
	})
}

// ackEntries returns the status entries of one pushed payload.
func ackEntries(t *testing.T, p map[string]any, raw bool) []map[string]any {
	t.Helper()
	var list []any
	if raw {
		entry := p["entry"].([]any)[0].(map[string]any)
		change := entry["changes"].([]any)[0].(map[string]any)
		if change["field"] != "messages" {
			t.Fatalf("change %v", change)
		}
		value := change["value"].(map[string]any)
		if value["messaging_product"] != "whatsapp" || value["metadata"].(map[string]any)["display_phone_number"] != "15550001234" {
			t.Fatalf("value %v", value)
		}
		list = value["statuses"].([]any)
	} else {
		if p["instanceId"] != "sandbox" {
			t.Fatalf("instanceId %v", p["instanceId"])
		}
		list = p["ack"].([]any)
	}
	out := make([]map[string]any, len(list))
	for i, a := range list {
		out[i] = a.(map[string]any)
	}
	return out
}

func checkAck(t *testing.T, a map[string]any, raw, failed bool) {
	t.Helper()
	if raw {
		if _, ok := a["timestamp"].(string); !ok || a["recipient_id"] == nil {
			t.Fatalf("raw status %v", a)
		}
		if failed && a["status"] == "failed" && a["errors"].([]any)[0].(map[string]any)["code"] != 131026.0 {
			t.Fatalf("raw failed status %v", a)
		}
		return
	}
	keys := []string{"id", "chatId", "phone", "status", "category"}
	if a["status"] == "failed" {
		keys = append(keys, "error")
		if a["error"] != "Message undeliverable" {
			t.Fatalf("failed ack error %v", a["error"])
		}
	}
	if len(a) != len(keys) {
		t.Fatalf("ack %v has keys other than %v (1MSG acks carry no timestamp)", a, keys)
	}
	if a["chatId"] != a["phone"].(string)+"@c.us" || a["category"] != "utility" {
		t.Fatalf("ack %v", a)
	}
}

func TestPushRetries(t *testing.T) {
	t.Run("receiver fails once", func(t *testing.T) {
		e := newEnv(t, func(cfg *sandbox.Config) { cfg.DeliveredAfter, cfg.ReadAfter = time.Hour, time.Hour })
		rc := newReceiver(t)
		rc.failNext = 1
		e.subscribe(rc, false)
		id := e.send(sendBody("79001234567", okParams...)).json["id"].(string)
		eventually(t, 2*time.Second, "the sent ack delivered on retry", func() bool {
			return len(rc.acks()) == 1 && e.sb.Stats().WebhookPushes == 1
		})
		if a := rc.acks()[0]; a["id"] != id || a["status"] != "sent" {
			t.Fatalf("ack %v", a)
		}
		st := e.sb.Stats()
		if st.WebhookPushFailures != 1 || st.WebhookPushes != 1 || st.WebhookPushesDropped != 0 {
			t.Fatalf("Stats() = %+v", st)
		}
	})
	t.Run("receiver keeps failing", func(t *testing.T) {
		e := newEnv(t, func(cfg *sandbox.Config) {
			cfg.DeliveredAfter, cfg.ReadAfter = time.Hour, time.Hour
			cfg.WebhookRetryFor = 100 * time.Millisecond
		})
		rc := newReceiver(t)
		rc.failNext = 1 << 30
		e.subscribe(rc, false)
		e.send(sendBody("79001234567", okParams...))
		eventually(t, 2*time.Second, "the push dropped", func() bool { return e.sb.Stats().WebhookPushesDropped == 1 })
		if st := e.sb.Stats(); st.WebhookPushFailures < 2 || st.WebhookPushes != 0 {
			t.Fatalf("Stats() = %+v", st)
		}
	})
}
