package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// The cost Meta reports reaches the notification and the report through
// hookInfo polls and through raw Meta pushes (1MSG's normalized acks carry
// none).
func TestPricingRecorded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		push bool // raw Meta webhook pushes instead of polling
	}{{"hookInfo poll", false}, {"raw Meta webhook", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sbcfg := fastSandbox()
			sbcfg.WebhooksDisabled = !tt.push
			e := newEnv(t, sbcfg)
			cfg := e.config()
			if tt.push {
				cfg = withWebhook(cfg)
			}
			d := e.start(cfg)
			if tt.push {
				e.registerWebhook(d)
				api, _ := onemsg.NewClient(onemsg.Config{BaseURL: e.url, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
				raw := true
				if _, err := api.UpdateSettings(context.Background(), onemsg.SettingsUpdate{RawHooks: &raw}); err != nil {
					t.Fatal(err)
				}
			}
			e.insert("order-10482-cancelled", seedPayload())
			e.waitFor(30*time.Second, "the read status with its pricing", func() bool {
				var ok bool
				err := e.pool.QueryRow(context.Background(), `SELECT status = 'read' AND pricing_category IS NOT NULL
					FROM notification_report WHERE event_id = 'order-10482-cancelled'`).Scan(&ok)
				return err == nil && ok
			})
			var category, model, typ, channel string
			var billable bool
			if err := e.pool.QueryRow(context.Background(), `SELECT pricing_category, pricing_model, pricing_type, billable, channel
				FROM notification_report WHERE event_id = 'order-10482-cancelled'`).Scan(&category, &model, &typ, &billable, &channel); err != nil {
				t.Fatal(err)
			}
			if category != "utility" || model != "PMP" || typ != "regular" || !billable || channel != "default" {
				t.Errorf("report: %s %s %s billable=%v channel %s; want utility PMP regular billable, default", category, model, typ, billable, channel)
			}
			st := e.sb.Stats()
			if tt.push && st.HookInfoCalls != 0 {
				t.Errorf("%d hookInfo calls; the raw pushes carry the pricing", st.HookInfoCalls)
			}
			if !tt.push && st.HookInfoCalls == 0 {
				t.Errorf("no hookInfo call; where did the pricing come from?")
			}
		})
	}
}
