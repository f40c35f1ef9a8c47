package preflight_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/preflight"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

const secret = "preflight-secret-0123456789"

func TestPreflight(t *testing.T) {
	t.Parallel()
	pool, schema := dbtest.New(t)
	tests := []struct {
		name     string
		sandbox  func(*sandbox.Config)
		register bool
		template string
		want     map[string]preflight.Level
		missing  bool
		detail   string
	}{
		{name: "all good", register: true,
			want: map[string]preflight.Level{"database": preflight.OK, "channel": preflight.OK, "template": preflight.OK, "webhook": preflight.OK}},
		{name: "missing template", template: "order_canceled", missing: true,
			want: map[string]preflight.Level{"template": preflight.Fail, "webhook": preflight.Fail}, detail: `no template named "order_canceled"`},
		{name: "unapproved", sandbox: func(c *sandbox.Config) { c.Templates[0].Status = "pending" },
			want: map[string]preflight.Level{"template": preflight.Fail}, detail: `is "pending", not approved`},
		{name: "wrong arity", sandbox: func(c *sandbox.Config) {
			c.Templates[0].Body = "Hi {{1}}, order {{2}} was cancelled."
			c.Templates[0].BodyParams = 2
		}, want: map[string]preflight.Level{"template": preflight.Fail}, detail: "has 2 body variables"},
		{name: "wrong namespace", sandbox: func(c *sandbox.Config) { c.Templates[0].Namespace = "other_ns" },
			want: map[string]preflight.Level{"template": preflight.Fail}, detail: "ONEMSG_NAMESPACE=other_ns"},
		{name: "disconnected", sandbox: func(c *sandbox.Config) { c.ChannelStatus = "disconnected" }, register: true,
			want: map[string]preflight.Level{"channel": preflight.Fail, "template": preflight.OK}, detail: `"disconnected"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sandbox.DefaultConfig()
			if tt.sandbox != nil {
				tt.sandbox(&cfg)
			}
			sb := sandbox.New(cfg)
			srv := httptest.NewServer(sb)
			defer func() { sb.Close(); srv.Close() }()
			api, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: cfg.Channel, Token: cfg.Token})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.register {
				if _, err := api.RegisterWebhook(ctx, "https://hooks.example/webhooks/1msg/"+secret); err != nil {
					t.Fatal(err)
				}
			}
			tpl := tt.template
			if tpl == "" {
				tpl = sandbox.DefaultTemplate
			}
			r := preflight.Run(ctx, preflight.Config{Pool: pool, Schema: schema, API: api, Template: tpl,
				Namespace: sandbox.DefaultNamespace, Language: "en", WebhookSecret: secret})
			for name, want := range tt.want {
				var got preflight.Level
				for _, f := range r.Findings {
					if f.Name == name {
						got = f.Level
					}
				}
				if got != want {
					t.Errorf("%s: %s, want %s (%+v)", name, got, want, r.Findings)
				}
			}
			if r.TemplateMissing != tt.missing {
				t.Errorf("TemplateMissing = %v", r.TemplateMissing)
			}
			if tt.detail != "" {
				all := ""
				for _, f := range r.Findings {
					all += f.Detail + "\n"
				}
				if !strings.Contains(all, tt.detail) {
					t.Errorf("findings do not say %q:\n%s", tt.detail, all)
				}
			}
			ok := r.Body != ""
			if ok != (tt.want["template"] == preflight.OK) {
				t.Errorf("body %q", r.Body)
			}
		})
	}
}
