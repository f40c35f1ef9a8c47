package metrics_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/metrics"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/jobs"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func strs[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// vocabularies are the only values each label may take: fixed sets, never a
// phone, an event id, a wamid, a URL or a secret.
var (
	statuses  = strs(ledger.Statuses...)
	sources   = strs(ledger.SourceAPI, ledger.SourceWebhook, ledger.SourcePoll, ledger.SourceOperator, ledger.SourceDaemon)
	endpoints = []string{"sendTemplate", "messages", "hookInfo", "templates", "status", "settings", "webhook"}
	outcomes  = []string{"ok", onemsg.KindRejected.String(), onemsg.KindThrottled.String(), onemsg.KindNotSent.String(), onemsg.KindUnknown.String()}
	results   = strs(webhook.ResultOK, webhook.ResultNotFound, webhook.ResultForbidden, webhook.ResultMalformed, webhook.ResultTooLarge, webhook.ResultError)
	kinds     = []string{"recorded", "unknown_wamid", "unmapped"}
	states    = strs(rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
		rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled)
	queues = []string{jobs.QueueSend, jobs.QueueTrack, jobs.QueueTrackBefore, jobs.QueueCallback, jobs.QueueMaintenance, river.QueueDefault}
)

// TestLabelSets exercises every metric through the code that feeds it (a
// real 1MSG client against the sandbox, the ledger on Postgres, the table
// gauges) and checks each metric's label names and that every value is from
// its fixed vocabulary.
func TestLabelSets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	m := metrics.New(pool, 0, nil, []string{"brand-b"})
	channels := []string{"default", "brand-b", metrics.OtherChannel}

	// 1MSG calls, one per outcome class.
	sb := sandbox.New(sandbox.DefaultConfig())
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken,
		Timeout: 2 * time.Second, Observer: m.Channel("default")})
	if err != nil {
		t.Fatal(err)
	}
	send := func(texts ...string) {
		_, _ = api.SendTemplate(ctx, onemsg.SendTemplateRequest{Phone: "79001234567", Template: sandbox.DefaultTemplate,
			Namespace: sandbox.DefaultNamespace, Language: onemsg.DeterministicLanguage("en"), Params: onemsg.BodyParams(texts...)})
	}
	send("A", "1", "P", "N") // ok
	send("A", "1", "P")      // rejected: three variables
	sb.SetFaults(sandbox.Faults{Status429: 1})
	send("A", "2", "P", "N") // throttled
	sb.SetFaults(sandbox.Faults{Status5xx: 1})
	send("A", "3", "P", "N") // unknown outcome
	sb.SetFaults(sandbox.Faults{})
	_, _ = api.HookInfo(ctx, "wamid.x")
	_, _ = api.Messages(ctx, onemsg.MessagesQuery{ChatID: onemsg.ChatID("79001234567")})
	_, _ = api.Templates(ctx)
	_, _ = api.Status(ctx)
	_, _ = api.Settings(ctx)
	_, _ = api.Webhooks(ctx)
	closed := httptest.NewServer(nil)
	closed.Close()
	gone, err := onemsg.NewClient(onemsg.Config{BaseURL: closed.URL, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken, Observer: m.Channel("brand-b")})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = gone.Status(ctx) // not sent

	// Status changes through the ledger, from several sources.
	l := &ledger.Ledger{Schema: schema, Observer: m}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ns, err := l.Create(ctx, tx, []ledger.New{
			{OutboxID: 1, EventID: "order-1-cancelled", EventCreatedAt: time.Now(), Phone: "79001234567", Template: "t", Language: "en",
				Params: []string{"A", "1", "P", "N"}, Status: ledger.StatusQueued},
			{OutboxID: 2, EventID: "order-2-cancelled", EventCreatedAt: time.Now(), Template: "t", Language: "en",
				Status: ledger.StatusRejected, ErrorCode: "invalid_phone", Error: "bad phone"},
		})
		if err != nil {
			return err
		}
		_, err = l.Apply(ctx, tx, []ledger.Report{
			{NotificationID: ns[0].ID, Wamid: "wamid.secret-looking-id", Status: "sent", Source: ledger.SourceAPI},
			{NotificationID: ns[0].ID, Status: "delivered", Source: ledger.SourceWebhook},
			{NotificationID: ns[0].ID, Status: "read", Source: ledger.SourcePoll},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// An unrelayed outbox row and a River job for the table gauges.
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (event_id, payload) VALUES ('order-3-cancelled', '{"phone": "+7 900 000-00-00"}')`); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Insert(ctx, jobs.SendArgs{NotificationID: 1}, nil); err != nil {
		t.Fatal(err)
	}

	for _, r := range results {
		m.Webhook(r)
	}
	m.WebhookStatuses(3, 1, 1)

	want := map[string]map[string][]string{ // metric → label → vocabulary
		"cancelnotify_status_transitions_total":        {"from": append([]string{""}, statuses...), "to": statuses, "source": sources, "channel": channels},
		"cancelnotify_accept_latency_seconds":          {},
		"cancelnotify_delivery_latency_seconds":        {},
		"cancelnotify_onemsg_requests_total":           {"endpoint": endpoints, "outcome": outcomes, "channel": channels},
		"cancelnotify_onemsg_request_duration_seconds": {"endpoint": endpoints},
		"cancelnotify_webhook_requests_total":          {"result": results},
		"cancelnotify_webhook_statuses_total":          {"kind": kinds},
		"cancelnotify_notifications":                   {"status": statuses, "channel": channels},
		"cancelnotify_channel_healthy":                 {"channel": channels},
		"cancelnotify_channel_held":                    {"channel": channels},
		"cancelnotify_relay_lag_seconds":               {},
		"cancelnotify_relay_backlog":                   {},
		"cancelnotify_river_jobs":                      {"state": states, "queue": queues},
		"cancelnotify_db_scrape_ok":                    {},
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]map[string]bool{} // metric → label → values seen
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "cancelnotify_") {
			continue // Go and process collectors
		}
		vocab, ok := want[name]
		if !ok {
			t.Errorf("metric %s is not covered by this test: add its labels", name)
			continue
		}
		seen[name] = map[string]map[string]bool{}
		for _, mt := range f.GetMetric() {
			var names []string
			for _, lp := range mt.GetLabel() {
				names = append(names, lp.GetName())
				allowed, ok := vocab[lp.GetName()]
				switch {
				case !ok:
					t.Errorf("%s has an unexpected label %s=%q", name, lp.GetName(), lp.GetValue())
				case !slices.Contains(allowed, lp.GetValue()):
					t.Errorf("%s{%s=%q}: not one of %v", name, lp.GetName(), lp.GetValue(), allowed)
				}
				if seen[name][lp.GetName()] == nil {
					seen[name][lp.GetName()] = map[string]bool{}
				}
				seen[name][lp.GetName()][lp.GetValue()] = true
			}
			if got, exp := sortedCopy(names), sortedKeys(vocab); !slices.Equal(got, exp) {
				t.Errorf("%s has labels %v, want %v", name, got, exp)
			}
		}
	}
	for name := range want {
		if seen[name] == nil {
			t.Errorf("metric %s was not exported", name)
		}
	}

	// What the exercise above must have produced.
	for _, o := range outcomes {
		if !seen["cancelnotify_onemsg_requests_total"]["outcome"][o] {
			t.Errorf("no 1MSG call counted with outcome %q", o)
		}
	}
	for _, s := range statuses { // every status is exported, zero or not
		if !seen["cancelnotify_notifications"]["status"][s] {
			t.Errorf("cancelnotify_notifications{status=%q} missing", s)
		}
	}
	checks := []struct {
		metric string
		got    float64
		want   float64
	}{
		{`transitions to read by poll`, valueOf(t, families, "cancelnotify_status_transitions_total", map[string]string{"from": "delivered", "to": "read", "source": "poll", "channel": "default"}), 1},
		{`notifications read`, valueOf(t, families, "cancelnotify_notifications", map[string]string{"status": "read", "channel": "default"}), 1},
		{`notifications rejected`, valueOf(t, families, "cancelnotify_notifications", map[string]string{"status": "rejected", "channel": "default"}), 1},
		{`relay backlog`, valueOf(t, families, "cancelnotify_relay_backlog", nil), 1},
		{`db scrape ok`, valueOf(t, families, "cancelnotify_db_scrape_ok", nil), 1},
		{`available send jobs`, valueOf(t, families, "cancelnotify_river_jobs", map[string]string{"state": "available", "queue": jobs.QueueSend}), 1},
		{`webhook statuses held`, valueOf(t, families, "cancelnotify_webhook_statuses_total", map[string]string{"kind": "unknown_wamid"}), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.metric, c.got, c.want)
		}
	}
}

// valueOf returns the counter or gauge value of family name with exactly
// labels.
func valueOf(t *testing.T, families []*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			match := true
			for _, lp := range mt.GetLabel() {
				match = match && labels[lp.GetName()] == lp.GetValue()
			}
			if match {
				switch {
				case mt.Counter != nil:
					return mt.GetCounter().GetValue()
				case mt.Gauge != nil:
					return mt.GetGauge().GetValue()
				}
			}
		}
	}
	t.Errorf("%s%v not exported", name, labels)
	return 0
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
