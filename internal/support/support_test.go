package support_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/internal/support"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	l    *ledger.Ledger
	srv  *httptest.Server
}

// newFixture serves the page over HTTP on a fresh schema, with an
// insert-only River client and the sandbox's GET /templates.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, schema := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	sb := sandbox.New(sandbox.DefaultConfig())
	sbSrv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); sbSrv.Close() })
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: sbSrv.URL, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
	if err != nil {
		t.Fatal(err)
	}
	l := &ledger.Ledger{Schema: schema}
	h, err := support.New(support.Config{Pool: pool, Operator: &redrive.Operator{Pool: pool, Jobs: client, Ledger: l},
		Templates: api, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, pool: pool, l: l, srv: srv}
}

type rowSpec struct {
	event, order, name, phone string
	status                    ledger.Status
	age                       time.Duration // how long ago the order was cancelled
}

// row writes an outbox row and its notification in status.
func (f *fixture) row(r rowSpec) *ledger.Notification {
	f.t.Helper()
	ctx := context.Background()
	var n *ledger.Notification
	at := time.Now().Add(-r.age)
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		var outboxID int64
		if err := tx.QueryRow(ctx, "INSERT INTO outbox (event_id, payload, created_at) VALUES ($1, '{}', $2) RETURNING id", r.event, at).Scan(&outboxID); err != nil {
			return err
		}
		start := ledger.StatusSending
		if r.status == ledger.StatusRejected {
			start = ledger.StatusRejected
		}
		ns, err := f.l.Create(ctx, tx, []ledger.New{{OutboxID: outboxID, EventID: r.event, EventCreatedAt: at, Phone: r.phone,
			Template: sandbox.DefaultTemplate, Language: "en", Params: []string{r.name, r.order, "Wireless headphones", "Refund in 3 days"},
			Status: start, OrderNumber: r.order, CustomerName: r.name}})
		if err != nil {
			return err
		}
		n = ns[0]
		switch r.status {
		case ledger.StatusInDoubt:
			return f.l.Move(ctx, tx, n, ledger.Move{To: ledger.StatusInDoubt, ErrorCode: "outcome_unknown", Error: "1MSG did not answer"})
		case ledger.StatusFailed:
			_, err := f.l.Apply(ctx, tx, []ledger.Report{
				{NotificationID: n.ID, Wamid: "wamid." + r.event, Status: "sent", Source: ledger.SourceAPI},
				{Wamid: "wamid." + r.event, Status: "failed", Source: ledger.SourceWebhook, ErrorCode: "131026", Error: "Message undeliverable"},
			})
			return err
		case ledger.StatusRead:
			yes := true
			_, err := f.l.Apply(ctx, tx, []ledger.Report{
				{NotificationID: n.ID, Wamid: "wamid." + r.event, Status: "sent", Source: ledger.SourceAPI},
				{Wamid: "wamid." + r.event, Status: "delivered", Source: ledger.SourceWebhook},
				{Wamid: "wamid." + r.event, Status: "read", Source: ledger.SourcePoll,
					Pricing: &ledger.Pricing{Category: "utility", Model: "PMP", Type: "regular", Billable: &yes}},
			})
			return err
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) post(path string, form url.Values) (int, string, string) {
	f.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.srv.URL+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

var eventLink = regexp.MustCompile(`<td data-l="Event"><a href="/notifications/([^"]+)">`)

// events returns the event ids listed, in page order.
func events(body string) []string {
	var out []string
	for _, m := range eventLink.FindAllStringSubmatch(body, -1) {
		id, _ := url.PathUnescape(m[1])
		out = append(out, id)
	}
	return out
}

func TestSearch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.row(rowSpec{"order-10482-cancelled", "10482", "Alexey", "79001234567", ledger.StatusRead, 3 * time.Hour})
	f.row(rowSpec{"order-10482-again", "10482", "Alexey", "79001234567", ledger.StatusFailed, time.Hour})
	f.row(rowSpec{"order-777-cancelled", "777", "Maria", "491511234999", ledger.StatusInDoubt, 2 * time.Hour})
	f.row(rowSpec{"order-778-cancelled", "778", "Maria", "491511234999", ledger.StatusQueued, 10 * 24 * time.Hour})
	f.row(rowSpec{"order-779-cancelled", "779", "Ivan", "447911123456", ledger.StatusQueued, 30 * time.Minute})

	tests := []struct {
		name, query string
		want        []string // newest first
	}{
		{"all, first page of 3", "", []string{"order-779-cancelled", "order-10482-again", "order-777-cancelled"}},
		{"second page", "page=2", []string{"order-10482-cancelled", "order-778-cancelled"}},
		{"order number", "q=10482", []string{"order-10482-again", "order-10482-cancelled"}},
		{"event id", "q=order-777-cancelled", []string{"order-777-cancelled"}},
		{"last phone digits", "q=4999", []string{"order-777-cancelled", "order-778-cancelled"}},
		{"phone digits with spaces", "q=" + url.QueryEscape("12 34 56"), []string{"order-779-cancelled"}},
		{"status", "status=failed", []string{"order-10482-again"}},
		{"two statuses", "status=failed&status=in_doubt", []string{"order-10482-again", "order-777-cancelled"}},
		{"since", "since=24h&q=4999", []string{"order-777-cancelled"}},
		{"date range", "from=" + time.Now().UTC().AddDate(0, 0, -11).Format(time.DateOnly) + "&to=" + time.Now().UTC().AddDate(0, 0, -9).Format(time.DateOnly), []string{"order-778-cancelled"}},
		{"nothing", "q=nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.get("/notifications?" + tt.query)
			if code != 200 {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			if got := events(body); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("listed %v, want %v", got, tt.want)
			}
		})
	}
	if _, body := f.get("/notifications"); !strings.Contains(body, `rel="next"`) {
		t.Errorf("first page has no link to the next")
	}
	code, body := f.get("/notifications?status=lost&since=forever")
	if code != 200 || !strings.Contains(body, `unknown status &#34;lost&#34;`) || !strings.Contains(body, "is not one of 1h, 24h") {
		t.Errorf("bad filters not explained: %d %s", code, body)
	}
}

func TestDetail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.row(rowSpec{"order-10482-cancelled", "10482", "Alexey", "79001234567", ledger.StatusRead, time.Hour})
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at)
		VALUES ('cancelnotify_track', jsonb_build_object('notification_id', $1::bigint), 'track', 'scheduled', 25, 1, now() + interval '1 minute')`, n.ID); err != nil {
		t.Fatal(err)
	}
	code, body := f.get("/notifications/order-10482-cancelled")
	if code != 200 {
		t.Fatalf("HTTP %d %s", code, body)
	}
	for _, want := range []string{
		// the row
		`<span class="st st-read">read</span>`, "&#43;79001****67", "utility · PMP · regular · billable", "wamid.order-10482-cancelled",
		// the message as the customer saw it, with the template's button
		`Hello, Alexey! Order #10482 for &#34;Wireless headphones&#34; has been cancelled. Refund in 3 days.`,
		`<span class="btn">Order details</span>`, "as 1MSG lists it now (GET /templates)",
		// the timeline with sources, including the not-applied duplicate-free history
		`<td data-l="Source">api</td>`, `<td data-l="Source">webhook</td>`, `<td data-l="Source">poll</td>`,
		`<td data-l="Status">delivered</td>`,
		// River jobs with a River UI link
		`href="/riverui/jobs/`, "cancelnotify_track",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	if strings.Contains(body, `action="/notifications/order-10482-cancelled/retry"`) {
		t.Errorf("a read notification offers retry")
	}
	if code, body := f.get("/notifications/order-nobody"); code != 404 || !strings.Contains(body, "No outbox row has the event id") {
		t.Errorf("unknown event: %d %s", code, body)
	}
	// A rejected row: nothing was sent, and its order is still named.
	f.row(rowSpec{"order-5-cancelled", "5", "Ann", "", ledger.StatusRejected, time.Minute})
	if _, body := f.get("/notifications/order-5-cancelled"); !strings.Contains(body, "Nothing was sent") || strings.Contains(body, `id="message"`) {
		t.Errorf("rejected row shows a message:\n%s", body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Every action needs the form's CSRF token and a confirmation, then runs
// the CLI's code: the row changes, an operator event and a job appear.
func TestActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		action string
		status ledger.Status
		wamid  string
		want   ledger.Status
		job    string // kind of the job the action enqueues
	}{
		{"retry", ledger.StatusFailed, "", ledger.StatusQueued, "cancelnotify_send"},
		{"resolve-sent", ledger.StatusInDoubt, "wamid.FOUND", ledger.StatusSent, "cancelnotify_track"},
		{"resolve-resend", ledger.StatusInDoubt, "", ledger.StatusQueued, "cancelnotify_send"},
		{"resolve-abandon", ledger.StatusInDoubt, "", ledger.StatusFailed, ""},
	}
	for i, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			event := fmt.Sprintf("order-%d-cancelled", i)
			n := f.row(rowSpec{event, fmt.Sprint(i), "Alexey", "79001234567", tt.status, time.Minute})
			path := "/notifications/" + event + "/" + tt.action
			_, page := f.get("/notifications/" + event)
			m := csrfField.FindStringSubmatch(page)
			if m == nil || !strings.Contains(page, `action="`+path+`"`) {
				t.Fatalf("no %s form with a token on the page:\n%s", tt.action, page)
			}
			token := m[1]
			// Another event's token, no token, a forged one: refused, nothing changed.
			other := f.row(rowSpec{event + "-other", "x", "B", "79001234568", tt.status, time.Minute})
			_, otherPage := f.get("/notifications/" + other.EventID)
			otherToken := csrfField.FindStringSubmatch(otherPage)[1]
			for _, bad := range []string{"", otherToken, token + "x", "1." + strings.Repeat("A", 43)} {
				code, body, _ := f.post(path, url.Values{"csrf": {bad}, "confirm": {"yes"}, "wamid": {tt.wamid}})
				if code != http.StatusForbidden || !strings.Contains(body, "security token") {
					t.Errorf("token %q: HTTP %d %s; want 403", bad, code, body)
				}
			}
			// First POST: a confirmation page, nothing changed yet.
			code, body, _ := f.post(path, url.Values{"csrf": {token}, "wamid": {tt.wamid}})
			if code != 200 || !strings.Contains(body, `id="confirm"`) || !strings.Contains(body, `name="confirm" value="yes"`) {
				t.Fatalf("no confirmation step: %d %s", code, body)
			}
			if got, _ := ledger.Get(ctx, f.pool, n.ID); got.Status != tt.status {
				t.Fatalf("changed to %s before confirmation", got.Status)
			}
			confirmToken := csrfField.FindStringSubmatch(body)[1]
			code, _, loc := f.post(path, url.Values{"csrf": {confirmToken}, "wamid": {tt.wamid}, "confirm": {"yes"}})
			if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/notifications/"+event+"?done=") {
				t.Fatalf("confirmed: HTTP %d, Location %q", code, loc)
			}
			got, err := ledger.Get(ctx, f.pool, n.ID)
			if err != nil || got.Status != tt.want {
				t.Fatalf("status %v (%v), want %s", got.Status, err, tt.want)
			}
			evs, _ := ledger.Events(ctx, f.pool, n.ID)
			last := evs[len(evs)-1]
			if last.Source != ledger.SourceOperator || !strings.Contains(string(last.Detail), "support page: admin") {
				t.Errorf("last event %s %s %s; want an operator event by the support page", last.Source, last.Status, last.Detail)
			}
			if tt.job != "" {
				jobs, _ := ledger.Jobs(ctx, f.pool, n.ID)
				if len(jobs) != 1 || jobs[0].Kind != tt.job {
					t.Errorf("jobs %+v, want one %s", jobs, tt.job)
				}
			}
			_, after := f.get(loc)
			if !strings.Contains(after, `class="ok"`) || !strings.Contains(after, string(tt.status)+" → "+string(tt.want)) {
				t.Errorf("no confirmation of what was done on the page")
			}
			// Once done, the same action again is refused with the reason.
			code, _, loc = f.post(path, url.Values{"csrf": {confirmToken}, "wamid": {tt.wamid}, "confirm": {"yes"}})
			if _, again := f.get(loc); code != http.StatusSeeOther || !strings.Contains(again, "not changed") {
				t.Errorf("repeating the action: HTTP %d; page does not say it was not changed", code)
			}
		})
	}
	if code, _, _ := f.post("/notifications/order-0-cancelled/delete", url.Values{}); code != 404 {
		t.Errorf("unknown action: HTTP %d", code)
	}
}

// Payloads are hostile: markup, direction overrides and invisible
// characters show as visible text, never as markup or reordered text.
func TestHostileTextIsEscaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	name := "<script>alert(1)</script>\u202eevil\u200b\u2066x\ufeff\"'&"
	f.row(rowSpec{"<img src=x onerror=alert(1)>", "<b>10482</b>", name, "79001234567", ledger.StatusFailed, time.Minute})
	for _, path := range []string{"/notifications", "/notifications?q=" + url.QueryEscape("<b>10482</b>"),
		"/notifications/" + url.PathEscape("<img src=x onerror=alert(1)>")} {
		code, body := f.get(path)
		if code != 200 {
			t.Fatalf("%s: HTTP %d", path, code)
		}
		for _, bad := range []string{"<script>", "<img", "<b>", "\u202e", "\u200b", "\u2066", "\ufeff"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: page contains %q raw", path, bad)
			}
		}
		for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", ">RLO</span>", ">ZWSP</span>", "&lt;b&gt;10482&lt;/b&gt;"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: page lacks %q", path, want)
			}
		}
	}
	r, err := http.Get(f.srv.URL + "/notifications")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not forbid scripts", csp)
	}
}
