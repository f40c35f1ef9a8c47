package support

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// Filter is the list page's query: ?q=&status=&since=&from=&to=&page=.
type Filter struct {
	Q        string          // order number, event id or last digits of the phone
	Statuses []ledger.Status // any of these; none = all
	Since    string          // "", "1h", "24h", "7d", "30d" or "90d"
	From, To string          // dates, YYYY-MM-DD (UTC), To inclusive
	Page     int             // from 1
	Limit    int

	after, before *time.Time
}

// sinceOptions are the choices of the time filter.
var sinceOptions = []struct{ Value, Label string }{
	{"", "any time"}, {"1h", "last hour"}, {"24h", "last 24 hours"}, {"7d", "last 7 days"}, {"30d", "last 30 days"}, {"90d", "last 90 days"},
}

var sinceDurations = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour}

// parseFilter reads q; problems say what to fix, one per bad parameter.
func parseFilter(q url.Values, now time.Time) (Filter, []string) {
	f := Filter{Q: strings.TrimSpace(q.Get("q")), Since: q.Get("since"), From: q.Get("from"), To: q.Get("to"), Page: 1}
	var problems []string
	for _, s := range q["status"] {
		if s == "" {
			continue
		}
		st, err := ledger.ParseStatus(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		f.Statuses = append(f.Statuses, st)
	}
	if f.Since != "" {
		d, ok := sinceDurations[f.Since]
		if !ok {
			problems = append(problems, fmt.Sprintf("time filter %q is not one of 1h, 24h, 7d, 30d, 90d", f.Since))
		} else {
			t := now.Add(-d)
			f.after = &t
		}
	}
	if f.From != "" {
		t, err := time.Parse(time.DateOnly, f.From)
		if err != nil {
			problems = append(problems, fmt.Sprintf("from %q is not a date: write it as 2026-11-29", f.From))
		} else if f.after == nil || t.After(*f.after) {
			f.after = &t
		}
	}
	if f.To != "" {
		t, err := time.Parse(time.DateOnly, f.To)
		if err != nil {
			problems = append(problems, fmt.Sprintf("to %q is not a date: write it as 2026-11-29", f.To))
		} else {
			t = t.AddDate(0, 0, 1)
			f.before = &t
		}
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			problems = append(problems, fmt.Sprintf("page %q is not a page number", p))
		} else {
			f.Page = n
		}
	}
	if len(f.Q) > 200 {
		problems = append(problems, "the search text is longer than 200 characters: search by an order number, an event id or the last digits of a phone")
	}
	return f, problems
}

// pageURL is the list with the same filters on page p ("" when p < 1).
func (f Filter) pageURL(p int) string {
	if p < 1 {
		return ""
	}
	q := url.Values{}
	for k, v := range map[string]string{"q": f.Q, "since": f.Since, "from": f.From, "to": f.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, st := range f.Statuses {
		q.Add("status", string(st))
	}
	if p > 1 {
		q.Set("page", strconv.Itoa(p))
	}
	if len(q) == 0 {
		return "/notifications"
	}
	return "/notifications?" + q.Encode()
}

// Has reports whether the filter selects status st (for the form).
func (f Filter) Has(st ledger.Status) bool {
	for _, s := range f.Statuses {
		if s == st {
			return true
		}
	}
	return false
}

// SinceOptions lists the time filter's choices (for the form).
func (f Filter) SinceOptions() []struct{ Value, Label string } { return sinceOptions }

// phoneDigits returns the digits of q when q looks like (part of) a phone
// number: at least 4 digits and nothing but digits, spaces, +, -, ( and ).
func phoneDigits(q string) string {
	var d strings.Builder
	for _, r := range q {
		switch {
		case r >= '0' && r <= '9':
			d.WriteRune(r)
		case strings.ContainsRune(" +-()", r):
		default:
			return ""
		}
	}
	if d.Len() < 4 {
		return ""
	}
	return d.String()
}

// row is one line of the list.
type row struct {
	EventID     string
	Order       string
	Customer    string
	Phone       string
	Status      ledger.Status
	ErrorCode   string
	Error       string
	CancelledAt time.Time
	UpdatedAt   time.Time
}

// search returns a page of notifications matching f, newest first, and
// whether there are more.
func search(ctx context.Context, db *pgxpool.Pool, f Filter) ([]row, bool, error) {
	statuses := make([]string, len(f.Statuses))
	for i, s := range f.Statuses {
		statuses[i] = string(s)
	}
	// Each alternative of the search has its index: order_number, the
	// reversed phone (a suffix is a prefix of it) and outbox.event_id.
	rows, err := db.Query(ctx, `SELECT n.event_id, coalesce(n.order_number, ''), coalesce(n.customer_name, ''), n.phone,
			n.status, coalesce(n.error_code, ''), coalesce(n.error, ''), n.event_created_at, n.updated_at
		FROM notification n
		WHERE ($1 = '' OR n.order_number = $1
				OR n.outbox_id = (SELECT id FROM outbox WHERE event_id = $1)
				OR ($2 <> '' AND n.phone <> '' AND reverse(n.phone) LIKE reverse($2) || '%'))
			AND (cardinality($3::text[]) = 0 OR n.status = ANY($3))
			AND ($4::timestamptz IS NULL OR n.event_created_at >= $4)
			AND ($5::timestamptz IS NULL OR n.event_created_at < $5)
		ORDER BY n.event_created_at DESC, n.id DESC
		LIMIT $6 OFFSET $7`,
		f.Q, phoneDigits(f.Q), statuses, f.after, f.before, f.Limit+1, (f.Page-1)*f.Limit)
	if err != nil {
		return nil, false, fmt.Errorf("search notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.EventID, &x.Order, &x.Customer, &x.Phone, &x.Status, &x.ErrorCode, &x.Error, &x.CancelledAt, &x.UpdatedAt)
		return x, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("search notifications: %w", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

type listPage struct {
	Filter   Filter
	Problems []string
	Statuses []ledger.Status
	Rows     []row
	More     bool
	Prev     string
	Next     string
}

// view is the detail page.
type view struct {
	EventID   string
	EventType string
	Committed time.Time
	RelayedAt *time.Time
	N         *ledger.Notification // nil while the relay has not picked the row up
	Events    []ledger.Event
	Jobs      []ledger.Job
	Message   message
	Actions   []actionButton
	RiverUI   string
	CSRF      string
	Flash     string
	FlashErr  string
}

type actionButton struct {
	Name string
	action
}

// message is the WhatsApp message as the customer saw it.
type message struct {
	Sent    bool     // false for rejected and skipped rows: nothing went out
	Text    string   // the template body with the four texts filled in
	Buttons []string // button labels
	Source  string   // where the template text comes from
}

func (h *Handler) view(ctx context.Context, eventID string) (*view, error) {
	v := &view{EventID: eventID, RiverUI: h.cfg.RiverUI}
	err := h.cfg.Pool.QueryRow(ctx, "SELECT event_type, created_at, relayed_at FROM outbox WHERE event_id = $1", eventID).
		Scan(&v.EventType, &v.Committed, &v.RelayedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%q: %w", eventID, ledger.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	n, err := ledger.GetByEventID(ctx, h.cfg.Pool, eventID)
	if errors.Is(err, ledger.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	v.N = n
	if v.Events, err = ledger.Events(ctx, h.cfg.Pool, n.ID); err != nil {
		return nil, err
	}
	if v.Jobs, err = ledger.Jobs(ctx, h.cfg.Pool, n.ID); err != nil {
		return nil, err
	}
	for _, name := range []string{"retry", "resolve-sent", "resolve-resend", "resolve-abandon"} {
		if a := actions[name]; a.Applies(n.Status) {
			v.Actions = append(v.Actions, actionButton{Name: name, action: a})
		}
	}
	texts := h.texts[n.Channel]
	if texts == nil {
		texts = h.texts[ledger.DefaultChannel] // a channel no longer configured
	}
	v.Message = texts.message(ctx, n)
	return v, nil
}

type confirmPage struct {
	View   *view
	Action action
	Name   string
	Wamid  string
	CSRF   string
}

// templateCache keeps the channel's templates from GET /templates: the
// text the customer saw is the approved template's, filled with the
// params stored on the row. A failed fetch is retried after a tenth of the
// TTL, so a 1MSG outage does not slow every page.
type templateCache struct {
	src      Templates
	ttl      time.Duration
	fallback string

	mu   sync.Mutex
	at   time.Time
	list []onemsg.Template
	err  error
}

func (c *templateCache) templates(ctx context.Context) ([]onemsg.Template, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := c.ttl
	if c.err != nil {
		fresh = c.ttl / 10
	}
	if !c.at.IsZero() && time.Since(c.at) < fresh {
		return c.list, c.err
	}
	if c.src == nil {
		c.err = errors.New("no 1MSG client")
	} else {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c.list, c.err = c.src.Templates(tctx)
		cancel()
	}
	c.at = time.Now()
	return c.list, c.err
}

func (c *templateCache) message(ctx context.Context, n *ledger.Notification) message {
	m := message{Sent: len(n.Params) > 0 && n.Status != ledger.StatusRejected && n.Status != ledger.StatusSkipped}
	if !m.Sent {
		return m
	}
	body := ""
	list, err := c.templates(ctx)
	for _, t := range list {
		if t.Name != n.Template || !strings.EqualFold(t.Language, n.Language) {
			continue
		}
		body = t.Body()
		for _, comp := range t.Components {
			for _, b := range comp.Buttons {
				m.Buttons = append(m.Buttons, b.Text)
			}
		}
	}
	switch {
	case body != "":
		m.Source = fmt.Sprintf("template %s (%s) as 1MSG lists it now (GET /templates)", n.Template, n.Language)
	case err != nil:
		body = c.fallback
		m.Source = fmt.Sprintf("template text from cancelnotify's configuration: 1MSG's template list could not be read (%v)", err)
	default:
		body = c.fallback
		m.Source = fmt.Sprintf("template text from cancelnotify's configuration: 1MSG lists no template %s in %s", n.Template, n.Language)
	}
	m.Text = outbox.Validator{Body: body}.Render(n.Params)
	return m
}
