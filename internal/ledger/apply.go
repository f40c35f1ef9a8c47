package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/jackc/pgx/v5"
)

// Report is a status reported about a notification: by 1MSG's answer to a
// send (api), a webhook push, a hookInfo poll, an operator, or the daemon
// giving up on tracking (expired).
type Report struct {
	NotificationID int64  // identifies the row, or else …
	Wamid          string // … the message id; with NotificationID, records it
	Status         string // as reported; mapped with MapStatus, stored raw when unmapped
	Source         Source
	OccurredAt     time.Time // when it happened, if the source says; else now
	ErrorCode      string    // for failed
	Error          string    // for failed
	Detail         json.RawMessage
	TrackJobID     int64    // with NotificationID: the River job that follows the message
	Pricing        *Pricing // the entry's pricing object, nil when it had none
}

// MapStatus maps a status name used by 1MSG or Meta to a Status. "viewed" is
// the legacy chat-api name of read; "played" (voice) implies read.
func MapStatus(s string) (Status, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "sent":
		return StatusSent, true
	case "delivered":
		return StatusDelivered, true
	case "read", "viewed", "played":
		return StatusRead, true
	case "failed", "undelivered":
		return StatusFailed, true
	case "expired":
		return StatusExpired, true
	}
	return "", false
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	Rows     map[int64]*Notification // every row reported on, as it is now
	Changes  []Change                // status changes, in report order
	Recorded int                     // events written
	Unknown  []Report                // reports whose notification was not found
	Unmapped int                     // reports whose status could not be mapped (stored raw)
}

// Apply records reports in tx under the one rule of docs/database.md ("The
// status rule"): every report
// is appended to notification_event; it changes the row's status only when
// it is stronger than the current one, so duplicates and late or
// out-of-order reports never downgrade. Timestamps of a status are filled in
// when first known even if the status itself does not apply (a delivered
// arriving after read still sets delivered_at).
//
// Rows are locked in id order, so concurrent Apply calls cannot deadlock.
func (l *Ledger) Apply(ctx context.Context, tx pgx.Tx, reports []Report) (*ApplyResult, error) {
	var ids []int64
	var wamids []string
	for _, r := range reports {
		if r.NotificationID != 0 {
			ids = append(ids, r.NotificationID)
		} else if r.Wamid != "" {
			wamids = append(wamids, r.Wamid)
		}
	}
	res := &ApplyResult{Rows: map[int64]*Notification{}}
	if len(ids) == 0 && len(wamids) == 0 {
		res.Unknown = reports
		return res, nil
	}
	// "id = ANY OR wamid = ANY" plans as a sequential scan once the
	// statement is prepared; the union keeps both lookups on their indexes.
	rows, err := tx.Query(ctx, "SELECT "+notificationColumns+` FROM notification
		WHERE id IN (SELECT unnest($1::bigint[]) UNION SELECT id FROM notification WHERE wamid = ANY($2))
		ORDER BY id FOR UPDATE`, ids, wamids)
	if err != nil {
		return nil, fmt.Errorf("lock notifications: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Notification, error) { return scanNotification(r) })
	if err != nil {
		return nil, fmt.Errorf("lock notifications: %w", err)
	}
	byID := make(map[int64]*Notification, len(found))
	byWamid := make(map[string]*Notification, len(found))
	for _, n := range found {
		byID[n.ID] = n
		if n.Wamid != "" {
			byWamid[n.Wamid] = n
		}
	}

	res.Rows = byID
	a := &applier{now: time.Now().UTC(), byID: byID, byWamid: byWamid, res: res, ttl: l.SendTTL}
	for _, r := range reports {
		a.report(r)
	}
	// Statuses pushed before their wamid was recorded wait in
	// webhook_orphan; the wamids recorded just now adopt theirs.
	if len(a.adopted) > 0 {
		orphans, err := takeOrphans(ctx, tx, a.adopted)
		if err != nil {
			return nil, err
		}
		for _, r := range orphans {
			a.report(r)
		}
	}
	w := a.w
	res.Changes = w.changes
	res.Recorded = len(w.events)
	if err := w.flush(ctx, l, tx, true); err != nil {
		return nil, err
	}
	return res, nil
}

// applier applies reports to rows locked by Apply.
type applier struct {
	now     time.Time
	byID    map[int64]*Notification
	byWamid map[string]*Notification
	res     *ApplyResult
	w       writer
	adopted []string // wamids recorded by this Apply
	ttl     time.Duration
}

// A status time outside [now-MaxStatusAge, now+MaxStatusAhead] is not
// believed (a year-248073 timestamp would otherwise be stored as given, and
// one past Postgres's range would fail every retry of the webhook): the
// status is recorded as of its receipt, and its detail says why.
const (
	MaxStatusAge   = 90 * 24 * time.Hour
	MaxStatusAhead = time.Hour
)

// clampTime applies MaxStatusAge and MaxStatusAhead to r.
func clampTime(r Report, now time.Time) Report {
	t := r.OccurredAt
	if t.IsZero() || (!t.Before(now.Add(-MaxStatusAge)) && !t.After(now.Add(MaxStatusAhead))) {
		return r
	}
	note, _ := json.Marshal(fmt.Sprintf("status time %s is more than %s in the past or %s in the future; recorded as received",
		t.UTC().Format(time.RFC3339), MaxStatusAge, MaxStatusAhead))
	d := bytes.TrimSpace(r.Detail)
	switch {
	case len(d) > 1 && d[0] == '{' && len(bytes.TrimSpace(d[1:len(d)-1])) == 0:
		r.Detail = []byte(`{"occurred_at_ignored":` + string(note) + `}`)
	case len(d) > 1 && d[0] == '{':
		r.Detail = append([]byte(`{"occurred_at_ignored":`+string(note)+`,`), d[1:]...)
	default:
		r.Detail = []byte(`{"occurred_at_ignored":` + string(note) + `}`)
	}
	r.OccurredAt = time.Time{}
	return r
}

func (a *applier) report(r Report) {
	r = clampTime(r, a.now)
	n := a.byID[r.NotificationID]
	if n == nil && r.NotificationID == 0 {
		n = a.byWamid[r.Wamid]
	}
	if n == nil {
		a.res.Unknown = append(a.res.Unknown, r)
		return
	}
	var occurred *time.Time
	at := a.now
	if !r.OccurredAt.IsZero() {
		t := r.OccurredAt.UTC()
		occurred, at = &t, t
	}
	ev := event{notificationID: n.ID, status: r.Status, source: r.Source, detail: r.Detail, occurredAt: occurred}
	if ev.detail == nil && (r.Error != "" || r.ErrorCode != "") {
		ev.detail = detailJSON(map[string]any{"error_code": r.ErrorCode, "error": r.Error})
	}
	// The first entry with pricing sets it; one without never clears it.
	// Rows never sent have no price to learn.
	if n.Pricing == nil && r.Pricing != nil && n.Status != StatusRejected && n.Status != StatusSkipped &&
		(r.NotificationID != 0 || n.Wamid == r.Wamid) {
		p := *r.Pricing
		n.Pricing = &p
		a.w.touch(n)
	}
	st, ok := MapStatus(r.Status)
	if !ok {
		a.res.Unmapped++
		a.w.events = append(a.w.events, ev)
		return
	}
	ev.status = string(st)
	dirty := false
	if r.Wamid != "" && n.Wamid == "" && r.NotificationID != 0 {
		n.Wamid = r.Wamid
		a.byWamid[r.Wamid] = n
		a.adopted = append(a.adopted, r.Wamid)
		dirty = true
	}
	if r.TrackJobID != 0 && r.NotificationID != 0 && n.Wamid == r.Wamid && n.TrackJobID != r.TrackJobID {
		n.TrackJobID = r.TrackJobID
		dirty = true
	}
	if fillTime(n, st, at) {
		dirty = true
	}
	if n.Status.UpgradedBy(st) {
		from := n.Status
		n.Status = st
		switch st {
		case StatusFailed:
			n.ErrorCode, n.Error = r.ErrorCode, textcut.Truncate(joinText(r.Error, TTLNote(a.ttl, n.SentAt, at)), 2000)
		case StatusExpired:
			n.Error = TTLNote(a.ttl, n.SentAt, at)
		case StatusDelivered, StatusRead:
			// A multi-device delivered after failed: the failure no longer describes the row.
			n.ErrorCode, n.Error = "", ""
		}
		ev.applied, dirty = true, true
		a.w.changes = append(a.w.changes, Change{Notification: n, From: from, To: st, Source: r.Source, At: at})
	}
	if dirty {
		a.w.touch(n)
	}
	a.w.events = append(a.w.events, ev)
}

// Hold keeps pushed statuses whose wamid no notification has (yet) in
// webhook_orphan: 1MSG may push `sent` before the send worker has committed
// the id it was just given, and statuses of other systems sharing the
// channel land here too. The transaction that records a wamid applies its
// held statuses (Apply); see AdoptHeld for the ones that race with it.
func (l *Ledger) Hold(ctx context.Context, tx pgx.Tx, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	return holdOrphans(ctx, tx, reports)
}

// AdoptHeld applies held statuses whose wamid a notification now has, among
// those received within the last window.
//
// The send transaction that records a wamid adopts the statuses held for it
// (Apply), but it cannot see one held by a webhook transaction that commits
// while it runs, nor can that webhook transaction see the wamid. Calling
// AdoptHeld after both committed (the daemon does every second) settles
// them. It costs one indexed read when there is nothing to adopt.
func (l *Ledger) AdoptHeld(ctx context.Context, db interface {
	DB
	Begin(ctx context.Context) (pgx.Tx, error)
}, window time.Duration) (int, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT o.wamid FROM webhook_orphan o
		JOIN notification n ON n.wamid = o.wamid
		WHERE o.received_at > now() - $1::interval`, window)
	if err != nil {
		return 0, fmt.Errorf("look for held statuses: %w", err)
	}
	ready, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ready) == 0 {
		return 0, err
	}
	adopted := 0
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		held, err := takeOrphans(ctx, tx, ready)
		if err != nil || len(held) == 0 {
			return err // another AdoptHeld took them
		}
		adopted = len(held)
		_, err = l.Apply(ctx, tx, held)
		return err
	})
	return adopted, err
}

func holdOrphans(ctx context.Context, tx pgx.Tx, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	var wamids, statuses, codes, errs, details []string
	var pricing []*string
	var occurred []*time.Time
	for _, r := range reports {
		wamids = append(wamids, r.Wamid)
		statuses = append(statuses, r.Status)
		codes = append(codes, r.ErrorCode)
		errs = append(errs, textcut.Truncate(r.Error, 2000))
		details = append(details, string(nonEmptyJSON(r.Detail)))
		var p *string
		if r.Pricing != nil {
			b, _ := json.Marshal(r.Pricing)
			s := string(b)
			p = &s
		}
		pricing = append(pricing, p)
		var t *time.Time
		if !r.OccurredAt.IsZero() {
			u := r.OccurredAt.UTC()
			t = &u
		}
		occurred = append(occurred, t)
	}
	_, err := tx.Exec(ctx, `INSERT INTO webhook_orphan (wamid, status, error_code, error, occurred_at, detail, pricing)
		SELECT w, s, nullif(c, ''), nullif(e, ''), o, d, p
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[]) AS u(w, s, c, e, o, d, p)`,
		wamids, statuses, codes, errs, occurred, details, pricing)
	if err != nil {
		return fmt.Errorf("hold statuses for unknown wamids: %w", err)
	}
	return nil
}

// takeOrphans removes and returns the held statuses of wamids.
func takeOrphans(ctx context.Context, tx pgx.Tx, wamids []string) ([]Report, error) {
	rows, err := tx.Query(ctx, `DELETE FROM webhook_orphan WHERE wamid = ANY($1)
		RETURNING wamid, status, coalesce(error_code, ''), coalesce(error, ''), occurred_at, detail, id, pricing`, wamids)
	if err != nil {
		return nil, fmt.Errorf("adopt held statuses: %w", err)
	}
	type orphan struct {
		r  Report
		id int64
	}
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orphan, error) {
		var o orphan
		var occurred *time.Time
		var pricing []byte
		err := row.Scan(&o.r.Wamid, &o.r.Status, &o.r.ErrorCode, &o.r.Error, &occurred, &o.r.Detail, &o.id, &pricing)
		if occurred != nil {
			o.r.OccurredAt = *occurred
		}
		if len(pricing) > 0 {
			var p Pricing
			if json.Unmarshal(pricing, &p) == nil {
				o.r.Pricing = &p
			}
		}
		o.r.Source = SourceWebhook
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("adopt held statuses: %w", err)
	}
	slices.SortFunc(got, func(a, b orphan) int { return cmp.Compare(a.id, b.id) })
	out := make([]Report, len(got))
	for i, o := range got {
		out[i] = o.r
	}
	return out, nil
}

// fillTime sets the timestamp column of st if it is still empty. read
// implies delivered (Meta may send read alone).
func fillTime(n *Notification, st Status, at time.Time) bool {
	set := func(p **time.Time) bool {
		if *p != nil {
			return false
		}
		t := at
		*p = &t
		return true
	}
	switch st {
	case StatusSent:
		return set(&n.SentAt)
	case StatusDelivered:
		return set(&n.DeliveredAt)
	case StatusRead:
		d := set(&n.DeliveredAt)
		return set(&n.ReadAt) || d
	case StatusFailed:
		return set(&n.FailedAt)
	}
	return false
}

// Move is one of the daemon's or an operator's own state moves: starting a
// send attempt, putting a throttled send back in the queue, holding an
// unknown outcome as in_doubt, re-driving a failed row. Unlike reports,
// moves may go "down" (sending → queued); the caller holds the row lock
// (Lock) and knows the current status.
type Move struct {
	To          Status
	Source      Source // SourceDaemon unless an operator acts
	Reason      string // why, recorded in the event's detail
	ErrorCode   string // replaces the row's error_code
	Error       string // replaces the row's error
	Attempt     bool   // count a send attempt and stamp attempted_at (the recorded intent)
	OnemsgJobID string // 1MSG's queue job id, when a send was queued
	// Reset forgets the previous message (wamid, error, 1MSG job id, sent
	// and later times, pricing) for a re-drive; the history keeps them.
	Reset  bool
	Detail map[string]any
}

// Move applies m to n (locked by the caller in tx) and updates n in place.
func (l *Ledger) Move(ctx context.Context, tx pgx.Tx, n *Notification, m Move) error {
	if !m.To.Valid() {
		return fmt.Errorf("move notification %d: invalid status %q", n.ID, m.To)
	}
	if m.Source == "" {
		m.Source = SourceDaemon
	}
	now := time.Now().UTC()
	from := n.Status
	detail := map[string]any{}
	if m.Reset {
		if n.Wamid != "" {
			detail["previous_wamid"] = n.Wamid
		}
		if n.Pricing != nil {
			detail["previous_pricing"] = n.Pricing
		}
		n.Wamid, n.OnemsgJobID, n.Pricing = "", "", nil
		n.SentAt, n.DeliveredAt, n.ReadAt, n.FailedAt = nil, nil, nil, nil
	}
	n.Status = m.To
	n.ErrorCode, n.Error = m.ErrorCode, textcut.Truncate(m.Error, 2000)
	if m.Attempt {
		n.Attempts++
		n.AttemptedAt = &now
	}
	if m.OnemsgJobID != "" {
		n.OnemsgJobID = m.OnemsgJobID
	}
	if m.To == StatusFailed {
		fillTime(n, StatusFailed, now)
	}
	for k, v := range m.Detail {
		detail[k] = v
	}
	if m.Reason != "" {
		detail["reason"] = m.Reason
	}
	if m.Attempt {
		detail["attempt"] = n.Attempts
	}
	if m.Error != "" {
		detail["error_code"], detail["error"] = m.ErrorCode, m.Error
	}
	var w writer
	w.touch(n)
	w.events = append(w.events, event{notificationID: n.ID, status: string(m.To), source: m.Source, applied: true, detail: detailJSON(detail)})
	if from != m.To {
		w.changes = append(w.changes, Change{Notification: n, From: from, To: m.To, Source: m.Source, At: now})
	}
	return w.flush(ctx, l, tx, true)
}

// New is a notification the relay creates for an outbox row.
type New struct {
	OutboxID       int64
	EventID        string
	EventCreatedAt time.Time
	Channel        string // channel name; "" = DefaultChannel
	Phone          string
	Template       string
	Language       string
	Params         []string
	Shortened      []string
	Status         Status // queued, rejected or skipped
	ErrorCode      string // why rejected or skipped
	Error          string
	NotBefore      time.Time // earliest send (per-recipient pacing); zero = now
	TraceParent    string    // the notification's trace (internal/tracing); "" when traces are off
	// OrderNumber and CustomerName as the payload gave them; default to
	// Params[1] and Params[0].
	OrderNumber  string
	CustomerName string
}

// Create inserts notifications with their first event in one statement and
// returns them with their ids, in the order given.
func (l *Ledger) Create(ctx context.Context, tx pgx.Tx, ns []New) ([]*Notification, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	var (
		outboxIDs                                    []int64
		eventIDs, phones, templates, langs, statuses []string
		channels                                     []string
		codes, errs, params, shortened, details      []string
		orders, customers                            []string
		createdAts                                   []time.Time
		notBefore                                    []*time.Time
		traceParents                                 []string
	)
	for _, n := range ns {
		outboxIDs = append(outboxIDs, n.OutboxID)
		eventIDs = append(eventIDs, n.EventID)
		createdAts = append(createdAts, n.EventCreatedAt)
		var nb *time.Time
		if !n.NotBefore.IsZero() {
			t := n.NotBefore
			nb = &t
		}
		notBefore = append(notBefore, nb)
		traceParents = append(traceParents, n.TraceParent)
		ch := n.Channel
		if ch == "" {
			ch = DefaultChannel
		}
		channels = append(channels, ch)
		phones = append(phones, n.Phone)
		templates = append(templates, n.Template)
		langs = append(langs, n.Language)
		statuses = append(statuses, string(n.Status))
		codes = append(codes, n.ErrorCode)
		errs = append(errs, textcut.Truncate(n.Error, 2000))
		orders = append(orders, n.orderNumber())
		customers = append(customers, n.customerName())
		p, _ := json.Marshal(nonNil(n.Params))
		params = append(params, string(p))
		s, _ := json.Marshal(nonNil(n.Shortened))
		shortened = append(shortened, string(s))
		d := map[string]any{}
		if n.Error != "" {
			d["error_code"], d["error"] = n.ErrorCode, n.Error
		}
		if len(n.Shortened) > 0 {
			d["shortened"] = n.Shortened
		}
		details = append(details, string(nonEmptyJSON(detailJSON(d))))
	}
	rows, err := tx.Query(ctx, `WITH input AS (
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
				$7::jsonb[], $8::jsonb[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::timestamptz[], $14::text[],
				$15::text[], $16::text[], $17::text[])
				WITH ORDINALITY AS i(outbox_id, event_id, event_created_at, phone, template, language, params,
					shortened, status, error_code, error, detail, not_before, trace_parent, order_number, customer_name, channel, ord)
		), ins AS (
			INSERT INTO notification (outbox_id, event_id, event_created_at, phone, template, language, params,
				shortened, status, error_code, error, not_before, trace_parent, order_number, customer_name, channel)
			SELECT outbox_id, event_id, event_created_at, phone, template, language, params,
				ARRAY(SELECT jsonb_array_elements_text(shortened)), status, nullif(error_code, ''), nullif(error, ''), not_before,
				nullif(trace_parent, ''), nullif(order_number, ''), nullif(customer_name, ''), channel
			FROM input ORDER BY ord
			RETURNING id, outbox_id, created_at, channel
		), ev AS (
			INSERT INTO notification_event (notification_id, status, source, applied, detail)
			SELECT ins.id, input.status, 'daemon', true, input.detail
			FROM ins JOIN input USING (outbox_id) ORDER BY input.ord
		)
		SELECT ins.id, ins.created_at, ins.channel FROM ins JOIN input USING (outbox_id) ORDER BY input.ord`,
		outboxIDs, eventIDs, createdAts, phones, templates, langs, params, shortened, statuses, codes, errs, details, notBefore,
		traceParents, orders, customers, channels)
	if err != nil {
		return nil, fmt.Errorf("create notifications: %w", err)
	}
	type created struct {
		id      int64
		at      time.Time
		channel string
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (created, error) {
		var c created
		err := r.Scan(&c.id, &c.at, &c.channel)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("create notifications: %w", err)
	}
	if len(got) != len(ns) {
		return nil, fmt.Errorf("create notifications: %d rows written for %d given", len(got), len(ns))
	}
	out := make([]*Notification, len(ns))
	var w writer
	for i, n := range ns {
		out[i] = &Notification{ID: got[i].id, OutboxID: n.OutboxID, EventID: n.EventID, EventCreatedAt: n.EventCreatedAt,
			Phone: n.Phone, Template: n.Template, Language: n.Language, Params: n.Params, Shortened: n.Shortened,
			Status: n.Status, ErrorCode: n.ErrorCode, Error: n.Error, CreatedAt: got[i].at, UpdatedAt: got[i].at,
			TraceParent: n.TraceParent, Order: n.orderNumber(), Customer: n.customerName(), Channel: got[i].channel}
		w.changes = append(w.changes, Change{Notification: out[i], To: n.Status, Source: SourceDaemon, At: got[i].at})
	}
	// Rows and first events are written above; only announce them.
	if err := w.flush(ctx, l, tx, false); err != nil {
		return nil, err
	}
	return out, nil
}

func (n New) orderNumber() string {
	if n.OrderNumber == "" && len(n.Params) > 1 {
		return n.Params[1]
	}
	return textcut.Truncate(n.OrderNumber, 200)
}

func (n New) customerName() string {
	if n.CustomerName == "" && len(n.Params) > 0 {
		return n.Params[0]
	}
	return textcut.Truncate(n.CustomerName, 200)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonEmptyJSON(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// StartAttempts records the intent to send for many notifications at once:
// each queued row whose cancellation is newer than createdAfter goes to
// sending, with one more attempt and attempted_at stamped. It returns the
// rows it moved, by id; the others are left for the caller to look at.
func (l *Ledger) StartAttempts(ctx context.Context, tx pgx.Tx, ids []int64, createdAfter time.Time) (map[int64]*Notification, error) {
	rows, err := tx.Query(ctx, `UPDATE notification SET status = 'sending', attempts = attempts + 1,
			attempted_at = now(), error_code = NULL, error = NULL, updated_at = now()
		WHERE id = ANY($1) AND status = 'queued' AND event_created_at > $2
		RETURNING `+notificationColumns, ids, createdAfter)
	if err != nil {
		return nil, fmt.Errorf("start send attempts: %w", err)
	}
	moved, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Notification, error) { return scanNotification(r) })
	if err != nil {
		return nil, fmt.Errorf("start send attempts: %w", err)
	}
	out := make(map[int64]*Notification, len(moved))
	var w writer
	for _, n := range moved {
		out[n.ID] = n
		at := time.Now().UTC()
		if n.AttemptedAt != nil {
			at = *n.AttemptedAt
		}
		w.events = append(w.events, event{notificationID: n.ID, status: string(StatusSending), source: SourceDaemon, applied: true,
			detail: detailJSON(map[string]any{"attempt": n.Attempts})})
		w.changes = append(w.changes, Change{Notification: n, From: StatusQueued, To: StatusSending, Source: SourceDaemon, At: at})
	}
	return out, w.flush(ctx, l, tx, false)
}

// TTLNote says that Meta dropped a message for its time-to-live when a
// failed or expired status comes ttl or more after the message was sent,
// and "" otherwise (no TTL set, not sent, or too early).
func TTLNote(ttl time.Duration, sentAt *time.Time, at time.Time) string {
	if ttl <= 0 || sentAt == nil || at.Sub(*sentAt) < ttl {
		return ""
	}
	return fmt.Sprintf("not delivered within ONEMSG_SEND_TTL (%s) of sending: Meta stops trying then and drops the message", ttl)
}

func joinText(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	}
	return a + "; " + b
}
