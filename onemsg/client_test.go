package onemsg_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func newSandbox(t testing.TB, cfg sandbox.Config) (*sandbox.Server, *onemsg.Client) {
	t.Helper()
	sb := sandbox.New(cfg)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	c, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: cfg.Channel, Token: cfg.Token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sb, c
}

func seedRequest() onemsg.SendTemplateRequest {
	return onemsg.SendTemplateRequest{
		Phone: "79001234567", Template: sandbox.DefaultTemplate, Namespace: sandbox.DefaultNamespace,
		Language: onemsg.DeterministicLanguage("en"),
		Params:   onemsg.BodyParams("Alexey", "10482", "Wireless headphones", "Refund within 3–5 business days"),
	}
}

// Each way a send can go maps to the Kind that tells the caller what is safe.
func TestSendTemplateOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		faults     sandbox.Faults
		token      string
		edit       func(*onemsg.SendTemplateRequest)
		wantKind   onemsg.ErrorKind // 0 = accepted
		wantStatus int
		wantCode   int
		wantText   string
		accepted   int64 // messages the sandbox accepted
		prime      bool  // send one message to the phone first
	}{
		{name: "accepted", accepted: 1},
		{name: "429", faults: sandbox.Faults{Status429: 1, RetryAfter: 3 * time.Second}, wantKind: onemsg.KindThrottled, wantStatus: 429, wantText: "Rate limit exceeded"},
		{name: "500", faults: sandbox.Faults{Status5xx: 1}, wantKind: onemsg.KindUnknown, wantStatus: 500},
		{name: "accept then drop", faults: sandbox.Faults{AcceptThenDrop: 1}, wantKind: onemsg.KindUnknown, accepted: 1},
		{name: "hang until timeout", faults: sandbox.Faults{Hang: 1}, wantKind: onemsg.KindUnknown, wantText: "timeout"},
		{name: "down", faults: sandbox.Faults{Down: true}, wantKind: onemsg.KindUnknown},
		{name: "401", token: "wrong-token-123", wantKind: onemsg.KindRejected, wantStatus: 401, wantText: `check ONEMSG_TOKEN / ONEMSG_TOKEN_FILE and ONEMSG_CHANNEL_ID (1MSG said: Wrong token "REDACTED" for channel "sandbox"`},
		{name: "422 param count", edit: func(r *onemsg.SendTemplateRequest) { r.Params = onemsg.BodyParams("a", "b", "c") },
			wantKind: onemsg.KindRejected, wantStatus: 422, wantCode: 132000, wantText: "Number of parameters does not match"},
		{name: "422 no namespace", edit: func(r *onemsg.SendTemplateRequest) { r.Namespace = "" },
			wantKind: onemsg.KindRejected, wantStatus: 422, wantText: "namespace"},
		{name: "sent:false unknown template", edit: func(r *onemsg.SendTemplateRequest) { r.Template = "nope" },
			wantKind: onemsg.KindRejected, wantStatus: 200, wantCode: 132001},
		{name: "sent:false newline", edit: func(r *onemsg.SendTemplateRequest) { r.Params = onemsg.BodyParams("a\nb", "b", "c", "d") },
			wantKind: onemsg.KindRejected, wantStatus: 200, wantCode: 132018, wantText: "new-line"},
		{name: "pair rate", faults: sandbox.Faults{PairInterval: time.Minute}, prime: true,
			wantKind: onemsg.KindThrottled, wantCode: 131056, accepted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := sandbox.DefaultConfig()
			sb, c := newSandbox(t, cfg)
			if tt.token != "" {
				var err error
				c, err = onemsg.NewClient(onemsg.Config{BaseURL: c.BaseURL(), Channel: cfg.Channel, Token: tt.token})
				if err != nil {
					t.Fatal(err)
				}
			}
			req := seedRequest()
			sb.SetFaults(tt.faults)
			if tt.prime {
				if _, err := c.SendTemplate(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			if tt.edit != nil {
				tt.edit(&req)
			}
			res, err := c.SendTemplate(context.Background(), req)
			if tt.wantKind == 0 {
				if err != nil || !res.Sent || !strings.HasPrefix(res.ID, "wamid.") {
					t.Fatalf("res %+v err %v; want accepted with a wamid", res, err)
				}
			} else {
				var e *onemsg.Error
				if !errors.As(err, &e) {
					t.Fatalf("err = %v (%T), want *onemsg.Error", err, err)
				}
				if e.Kind != tt.wantKind || (tt.wantStatus != 0 && e.HTTPStatus != tt.wantStatus) || e.Code != tt.wantCode || !strings.Contains(e.Error(), tt.wantText) {
					t.Errorf("got %s (kind %s, HTTP %d, code %d); want kind %s HTTP %d code %d containing %q",
						e, e.Kind, e.HTTPStatus, e.Code, tt.wantKind, tt.wantStatus, tt.wantCode, tt.wantText)
				}
				if tt.name == "429" && e.RetryAfter != 3*time.Second {
					t.Errorf("RetryAfter = %s, want 3s from the header", e.RetryAfter)
				}
				if strings.Contains(e.Error(), cfg.Token) {
					t.Errorf("error %q leaks the token", e)
				}
			}
			if got := sb.Stats().Accepted; got != tt.accepted {
				t.Errorf("sandbox accepted %d messages, want %d", got, tt.accepted)
			}
		})
	}
}

// A connection refused proves nothing reached 1MSG: safe to send again.
func TestSendTemplateConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := onemsg.NewClient(onemsg.Config{BaseURL: "http://" + addr, Channel: "c", Token: "secret-token"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendTemplate(context.Background(), seedRequest())
	var e *onemsg.Error
	if !errors.As(err, &e) || e.Kind != onemsg.KindNotSent {
		t.Fatalf("err = %v, want KindNotSent", err)
	}
	if want := "cannot connect to http://" + addr + " (ONEMSG_API_URL)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error leaks the token: %v", err)
	}
}

// Statuses, history, webhook and settings, templates and channel status.
func TestReadAndConfigure(t *testing.T) {
	t.Parallel()
	cfg := sandbox.DefaultConfig()
	cfg.DeliveredAfter, cfg.ReadAfter = 10*time.Millisecond, 20*time.Millisecond
	_, c := newSandbox(t, cfg)
	ctx := context.Background()

	res, err := c.SendTemplate(ctx, seedRequest())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	hooks, err := c.HookInfo(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hooks {
		got = append(got, h.Status)
		if h.ID != res.ID || h.Timestamp.IsZero() {
			t.Errorf("hook %+v: want the message id and a timestamp", h)
		}
	}
	if strings.Join(got, ",") != "sent,delivered,read" {
		t.Errorf("hookInfo statuses %v, want sent,delivered,read", got)
	}

	h, err := c.Messages(ctx, onemsg.MessagesQuery{ChatID: onemsg.ChatID("79001234567"), MinTime: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || h.Messages[0].ID != res.ID || !h.Messages[0].FromMe || !strings.Contains(h.Messages[0].Body, "10482") {
		t.Errorf("history %+v; want our one message with its body", h.Messages)
	}

	if _, err := c.SetWebhook(ctx, []string{"https://a.example/hook", "https://b.example/hook"}); err != nil {
		t.Fatal(err)
	}
	urls, err := c.Webhooks(ctx)
	if err != nil || len(urls) != 2 {
		t.Errorf("webhooks %v, %v", urls, err)
	}
	on := true
	s, err := c.UpdateSettings(ctx, onemsg.SettingsUpdate{AckNotificationsOn: &on})
	if err != nil || !s.AckNotificationsOn {
		t.Errorf("settings %+v, %v; want ack notifications on", s, err)
	}

	tpls, err := c.Templates(ctx)
	if err != nil || len(tpls) != 1 {
		t.Fatalf("templates %+v, %v", tpls, err)
	}
	if tp := tpls[0]; tp.Name != sandbox.DefaultTemplate || tp.Namespace != sandbox.DefaultNamespace || !tp.Approved() || tp.BodyParams() != 4 {
		t.Errorf("template %+v: want the approved order_cancelled with 4 body variables", tp)
	}
	st, err := c.Status(ctx)
	if err != nil || !st.OK() {
		t.Errorf("status %+v, %v", st, err)
	}
}

func ExampleClient_SendTemplate() {
	sb := sandbox.New(sandbox.DefaultConfig())
	defer sb.Close()
	srv := httptest.NewServer(sb)
	defer srv.Close()

	c, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: "sandbox", Token: "sandbox-token"})
	if err != nil {
		panic(err)
	}
	res, err := c.SendTemplate(context.Background(), onemsg.SendTemplateRequest{
		Phone:     "79001234567",
		Template:  "order_cancelled",
		Namespace: "sandbox_ns",
		Language:  onemsg.DeterministicLanguage("en"),
		Params:    onemsg.BodyParams("Alexey", "10482", "Wireless headphones", "Payment will be refunded within 3–5 business days"),
	})
	var e *onemsg.Error
	switch {
	case errors.As(err, &e) && e.Kind == onemsg.KindUnknown:
		fmt.Println("maybe sent: reconcile before any resend")
	case err != nil:
		fmt.Println("not sent:", err)
	default:
		fmt.Println(res.Sent, strings.HasPrefix(res.ID, "wamid."), res.Message)
	}
	// Output: true true Sent to 79001234567@c.us
}

func TestRegisterWebhook(t *testing.T) {
	const ours = "https://hooks.shop.example/webhooks/1msg/new-secret"
	others := []string{"https://crm.example/hook", "https://hooks.shop.example/other", "https://b.example/x/y", "https://c.example/"}
	tests := []struct {
		name       string
		registered []string
		want       []string // the list afterwards; nil: refused, unchanged
	}{
		{"none registered", nil, []string{ours}},
		{"others kept", others[:2], append(slices.Clone(others[:2]), ours)},
		{"already registered", []string{others[0], ours}, []string{others[0], ours}},
		{"rotated secret replaced", []string{"https://hooks.shop.example/webhooks/1msg/old-secret", others[0]}, []string{others[0], ours}},
		{"four others and the old one", append(slices.Clone(others), "https://hooks.shop.example/webhooks/1msg/old"), append(slices.Clone(others), ours)},
		{"five others: refused", append(slices.Clone(others), "https://d.example/hook"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newSandbox(t, sandbox.DefaultConfig())
			ctx := context.Background()
			if len(tt.registered) > 0 {
				if _, err := c.SetWebhook(ctx, tt.registered); err != nil {
					t.Fatal(err)
				}
			}
			st, err := c.RegisterWebhook(ctx, ours)
			got, gerr := c.Webhooks(ctx)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), "at most 5") {
					t.Fatalf("RegisterWebhook = %v, want a refusal naming the limit", err)
				}
				if !slices.Equal(got, tt.registered) {
					t.Fatalf("after a refusal the list is %v, want it unchanged: %v", got, tt.registered)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(st.WebhookURLs, tt.want) || !st.AckNotificationsOn {
				t.Fatalf("webhooks %v, settings %+v; want %v with ack notifications on", got, st, tt.want)
			}
		})
	}
}

func ExampleClient_RegisterWebhook() {
	sb := sandbox.New(sandbox.DefaultConfig())
	defer sb.Close()
	srv := httptest.NewServer(sb)
	defer srv.Close()
	c, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: "sandbox", Token: "sandbox-token"})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	// Another system's webhook, and ours with a secret since rotated.
	if _, err := c.SetWebhook(ctx, []string{"https://crm.example/hook", "https://hooks.shop.example/webhooks/1msg/old-secret"}); err != nil {
		panic(err)
	}
	st, err := c.RegisterWebhook(ctx, "https://hooks.shop.example/webhooks/1msg/new-secret")
	if err != nil {
		panic(err)
	}
	fmt.Println(st.WebhookURLs, st.AckNotificationsOn)
	// Output: [https://crm.example/hook https://hooks.shop.example/webhooks/1msg/new-secret] true
}
