package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Source says where a status came from (notification_event.source).
type Source string

// Sources of a status (notification_event.source, docs/database.md); daemon
// is for the daemon's own decisions (queued, sending, in_doubt, rejected,
// skipped, expired).
const (
	SourceAPI      Source = "api"
	SourceWebhook  Source = "webhook"
	SourcePoll     Source = "poll"
	SourceOperator Source = "operator"
	SourceDaemon   Source = "daemon"
)

// StatusChannel is the NOTIFY channel that announces every status change;
// see Announcer for the payload.
const StatusChannel = "cancelnotify_status"

// DB is what the read functions need: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Notification is a row of the notification table.
type Notification struct {
	ID             int64      `json:"id"`
	OutboxID       int64      `json:"outbox_id"`
	EventID        string     `json:"event_id"`
	EventCreatedAt time.Time  `json:"event_created_at"`
	Channel        string     `json:"channel"` // the 1MSG channel's name ("default": the ONEMSG_* variables)
	Phone          string     `json:"phone"`
	Template       string     `json:"template"`
	Language       string     `json:"language"`
	Params         []string   `json:"params"`
	Shortened      []string   `json:"shortened"`
	Status         Status     `json:"status"`
	Wamid          string     `json:"wamid,omitempty"`         // "" until 1MSG accepted the message
	OnemsgJobID    string     `json:"onemsg_job_id,omitempty"` // 1MSG's queue job id when a send was queued
	TrackJobID     int64      `json:"track_job_id,omitempty"`  // River job following the accepted message
	ErrorCode      string     `json:"error_code,omitempty"`
	Error          string     `json:"error,omitempty"`
	Attempts       int        `json:"attempts"`
	AttemptedAt    *time.Time `json:"attempted_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	SentAt         *time.Time `json:"sent_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
	ReadAt         *time.Time `json:"read_at"`
	FailedAt       *time.Time `json:"failed_at"`
	TraceParent    string     `json:"trace_parent,omitempty"` // W3C traceparent of its trace; "" when traces are off
	// Order and Customer are the order number and customer name as the
	// payload gave them, also for rejected and skipped rows.
	Order    string   `json:"order_number,omitempty"`
	Customer string   `json:"customer_name,omitempty"`
	Pricing  *Pricing `json:"pricing,omitempty"` // nil until a status entry with pricing arrived
}

// Pricing is what Meta says a message costs: the pricing object of its
// status entries (README.md, "The record for CRM and finance").
type Pricing struct {
	Billable *bool  `json:"billable,omitempty"`
	Category string `json:"category,omitempty"`      // utility, marketing, authentication, service
	Model    string `json:"pricing_model,omitempty"` // e.g. PMP
	Type     string `json:"type,omitempty"`          // regular, free_customer_service, free_entry_point
}

// OrderNumber returns the order number ({{2}}), if known.
func (n *Notification) OrderNumber() string {
	if n.Order != "" {
		return n.Order
	}
	if len(n.Params) > 1 {
		return n.Params[1]
	}
	return ""
}

// CustomerName returns the customer's name ({{1}}), if known.
func (n *Notification) CustomerName() string {
	if n.Customer != "" {
		return n.Customer
	}
	if len(n.Params) > 0 {
		return n.Params[0]
	}
	return ""
}

const notificationColumns = `id, outbox_id, event_id, event_created_at, phone, template, language,
	params, shortened, status, coalesce(wamid, ''), coalesce(onemsg_job_id, ''), coalesce(track_job_id, 0), coalesce(error_code, ''),
	coalesce(error, ''), attempts, attempted_at, created_at, updated_at, sent_at, delivered_at, read_at, failed_at,
	coalesce(trace_parent, ''), coalesce(order_number, ''), coalesce(customer_name, ''), channel,
	pricing_category, pricing_model, pricing_type, billable`

func scanNotification(row pgx.Row) (*Notification, error) {
	var n Notification
	var params []byte
	var category, model, typ *string
	var billable *bool
	err := row.Scan(&n.ID, &n.OutboxID, &n.EventID, &n.EventCreatedAt, &n.Phone, &n.Template, &n.Language,
		&params, &n.Shortened, &n.Status, &n.Wamid, &n.OnemsgJobID, &n.TrackJobID, &n.ErrorCode,
		&n.Error, &n.Attempts, &n.AttemptedAt, &n.CreatedAt, &n.UpdatedAt, &n.SentAt, &n.DeliveredAt, &n.ReadAt, &n.FailedAt,
		&n.TraceParent, &n.Order, &n.Customer, &n.Channel, &category, &model, &typ, &billable)
	if err != nil {
		return nil, err
	}
	if category != nil || model != nil || typ != nil || billable != nil {
		n.Pricing = &Pricing{Billable: billable, Category: deref(category), Model: deref(model), Type: deref(typ)}
	}
	if err := json.Unmarshal(params, &n.Params); err != nil {
		return nil, fmt.Errorf("notification %d: params: %w", n.ID, err)
	}
	return &n, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ErrNotFound is returned when a notification does not exist.
var ErrNotFound = errors.New("notification not found")

// Get reads notification id.
func Get(ctx context.Context, db DB, id int64) (*Notification, error) {
	return getOne(ctx, db, "SELECT "+notificationColumns+" FROM notification WHERE id = $1", id)
}

// GetMany reads the notifications of ids; ids with no row are absent from
// the map.
func GetMany(ctx context.Context, db DB, ids []int64) (map[int64]*Notification, error) {
	rows, err := db.Query(ctx, "SELECT "+notificationColumns+" FROM notification WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Notification, error) { return scanNotification(r) })
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	out := make(map[int64]*Notification, len(found))
	for _, n := range found {
		out[n.ID] = n
	}
	return out, nil
}

// GetByEventID reads the notification of an outbox event.
func GetByEventID(ctx context.Context, db DB, eventID string) (*Notification, error) {
	return getOne(ctx, db, "SELECT "+notificationColumns+" FROM notification WHERE outbox_id = (SELECT id FROM outbox WHERE event_id = $1)", eventID)
}

// Lookup returns the event ids whose event id or order number is term,
// newest first. An outbox row not relayed yet is found by its event id.
func Lookup(ctx context.Context, db DB, term string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT event_id FROM (
			SELECT id, event_id FROM outbox WHERE event_id = $1
			UNION
			SELECT o.id, o.event_id FROM notification n JOIN outbox o ON o.id = n.outbox_id WHERE n.order_number = $1
		) m ORDER BY id DESC LIMIT 100`, term)
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", term, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Lock reads notification id and locks its row until tx ends.
func Lock(ctx context.Context, tx pgx.Tx, id int64) (*Notification, error) {
	return getOne(ctx, tx, "SELECT "+notificationColumns+" FROM notification WHERE id = $1 FOR UPDATE", id)
}

func getOne(ctx context.Context, db DB, sql string, arg any) (*Notification, error) {
	n, err := scanNotification(db.QueryRow(ctx, sql, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%v: %w", arg, ErrNotFound)
	}
	return n, err
}

// Event is a row of notification_event.
type Event struct {
	ID             int64           `json:"id"`
	NotificationID int64           `json:"notification_id"`
	Status         string          `json:"status"`
	Source         Source          `json:"source"`
	Applied        bool            `json:"applied"`
	Detail         json.RawMessage `json:"detail"`
	OccurredAt     *time.Time      `json:"occurred_at"`
	RecordedAt     time.Time       `json:"recorded_at"`
}

// Events returns a notification's history, oldest first.
func Events(ctx context.Context, db DB, notificationID int64) ([]Event, error) {
	rows, err := db.Query(ctx, `SELECT id, notification_id, status, source, applied, detail, occurred_at, recorded_at
		FROM notification_event WHERE notification_id = $1 ORDER BY id`, notificationID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.ID, &e.NotificationID, &e.Status, &e.Source, &e.Applied, &e.Detail, &e.OccurredAt, &e.RecordedAt)
		return e, err
	})
}

// Job is a River job working on a notification (its args name it).
type Job struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	ScheduledAt time.Time `json:"scheduled_at"`
	LastError   string    `json:"last_error,omitempty"`
}

// Jobs returns the River jobs whose args reference notificationID (a send
// job's notification_id, one of a track job's ids, or one of the messages
// of a track job enqueued before ids), oldest first. River deletes
// finished jobs after its retention period.
func Jobs(ctx context.Context, db DB, notificationID int64) ([]Job, error) {
	rows, err := db.Query(ctx, `SELECT id, kind, state::text, attempt, max_attempts, scheduled_at,
			coalesce(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE kind LIKE 'cancelnotify_%' AND (args @> jsonb_build_object('notification_id', $1::bigint)
			OR args @> jsonb_build_object('ids', jsonb_build_array($1::bigint))
			OR args @> jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('notification_id', $1::bigint))))
		ORDER BY id`, notificationID)
	if err != nil {
		return nil, fmt.Errorf("read River jobs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) {
		var j Job
		err := r.Scan(&j.ID, &j.Kind, &j.State, &j.Attempt, &j.MaxAttempts, &j.ScheduledAt, &j.LastError)
		return j, err
	})
}

// Change is one status change of one notification, after it was written.
type Change struct {
	Notification *Notification // the row as it is now
	From         Status        // "" for a row just created
	To           Status
	Source       Source
	At           time.Time
}

// ChangeFunc runs inside the transaction that made the changes, e.g. to
// enqueue CRM callbacks atomically with the status.
type ChangeFunc func(ctx context.Context, tx pgx.Tx, changes []Change) error

// Chain runs fns in order, stopping at the first error.
func Chain(fns ...ChangeFunc) ChangeFunc {
	return func(ctx context.Context, tx pgx.Tx, changes []Change) error {
		for _, fn := range fns {
			if fn == nil {
				continue
			}
			if err := fn(ctx, tx, changes); err != nil {
				return err
			}
		}
		return nil
	}
}

// Observer learns of status changes once they are written (metrics).
type Observer interface {
	Changed(changes []Change)
}

// Ledger writes statuses. The zero value works; Schema only labels the
// NOTIFY payloads, OnChange, Observer and Announcer are optional.
//
// Every status change is queued in status_announcement in its own
// transaction; an Announcer NOTIFYs it. Without one in this process (the
// operator commands), a running daemon's Announcer finds the changes at its
// next poll.
type Ledger struct {
	Schema   string
	OnChange ChangeFunc
	Observer Observer
	// SendTTL is ONEMSG_SEND_TTL: a failed or expired status that comes this
	// long or longer after sent_at says Meta dropped the message for it.
	SendTTL time.Duration
	// Announcer, when set, is woken by every transaction that queues
	// changes, so that they are announced within milliseconds of its commit.
	Announcer interface{ Wake() }
}

// event is a notification_event row to write.
type event struct {
	notificationID int64
	status         string
	source         Source
	applied        bool
	detail         []byte
	occurredAt     *time.Time
}

// writer collects the writes of one Apply/Move/Create and sends them in one
// round trip.
type writer struct {
	dirty   map[int64]*Notification
	order   []int64
	events  []event
	changes []Change
}

func (w *writer) touch(n *Notification) {
	if w.dirty == nil {
		w.dirty = map[int64]*Notification{}
	}
	if _, ok := w.dirty[n.ID]; !ok {
		w.order = append(w.order, n.ID)
	}
	w.dirty[n.ID] = n
}

func (w *writer) flush(ctx context.Context, l *Ledger, tx pgx.Tx, updateRows bool) error {
	b := &pgx.Batch{}
	if updateRows && len(w.order) > 0 {
		var (
			ids, trackIDs                                      []int64
			statuses, wamids, codes, errs, jobIDs              []string
			attempts                                           []int32
			attemptedAt, sentAt, deliveredAt, readAt, failedAt []*time.Time
			categories, models, types                          []*string
			billables                                          []*bool
		)
		for _, id := range w.order {
			n := w.dirty[id]
			ids = append(ids, n.ID)
			trackIDs = append(trackIDs, n.TrackJobID)
			statuses = append(statuses, string(n.Status))
			wamids = append(wamids, n.Wamid)
			codes = append(codes, n.ErrorCode)
			errs = append(errs, n.Error)
			jobIDs = append(jobIDs, n.OnemsgJobID)
			attempts = append(attempts, int32(n.Attempts))
			attemptedAt = append(attemptedAt, n.AttemptedAt)
			sentAt = append(sentAt, n.SentAt)
			deliveredAt = append(deliveredAt, n.DeliveredAt)
			readAt = append(readAt, n.ReadAt)
			failedAt = append(failedAt, n.FailedAt)
			var p Pricing
			if n.Pricing != nil {
				p = *n.Pricing
			}
			categories = append(categories, nullable(p.Category))
			models = append(models, nullable(p.Model))
			types = append(types, nullable(p.Type))
			billables = append(billables, p.Billable)
		}
		b.Queue(`UPDATE notification n SET status = u.status, wamid = nullif(u.wamid, ''),
			error_code = nullif(u.error_code, ''), error = nullif(u.error, ''), onemsg_job_id = nullif(u.job_id, ''),
			attempts = u.attempts, attempted_at = u.attempted_at, sent_at = u.sent_at, track_job_id = nullif(u.track_job_id, 0),
			delivered_at = u.delivered_at, read_at = u.read_at, failed_at = u.failed_at,
			pricing_category = u.pricing_category, pricing_model = u.pricing_model, pricing_type = u.pricing_type,
			billable = u.billable, updated_at = now()
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
				$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::bigint[],
				$14::text[], $15::text[], $16::text[], $17::bool[])
				AS u(id, status, wamid, error_code, error, job_id, attempts, attempted_at, sent_at, delivered_at, read_at, failed_at, track_job_id,
					pricing_category, pricing_model, pricing_type, billable)
			WHERE n.id = u.id`,
			ids, statuses, wamids, codes, errs, jobIDs, attempts, attemptedAt, sentAt, deliveredAt, readAt, failedAt, trackIDs,
			categories, models, types, billables)
	}
	if len(w.events) > 0 {
		queueEvents(b, w.events)
	}
	if len(w.changes) > 0 {
		// Queued for the Announcer rather than NOTIFYed here: a NOTIFY would
		// make this commit wait for Postgres's database-wide notification
		// lock, which every other NOTIFYing commit holds in turn.
		payloads := make([]string, len(w.changes))
		for i, c := range w.changes {
			payloads[i] = string(c.AnnouncementJSON(l.Schema))
		}
		b.Queue(`INSERT INTO status_announcement (payload)
			SELECT p FROM unnest($1::text[]) WITH ORDINALITY AS u(p, i) ORDER BY i`, payloads)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write statuses: %w", err)
		}
	}
	if l.OnChange != nil && len(w.changes) > 0 {
		if err := l.OnChange(ctx, tx, w.changes); err != nil {
			return fmt.Errorf("after status change: %w", err)
		}
	}
	if l.Observer != nil && len(w.changes) > 0 {
		l.Observer.Changed(w.changes)
	}
	if l.Announcer != nil && len(w.changes) > 0 {
		l.Announcer.Wake()
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func queueEvents(b *pgx.Batch, events []event) {
	var (
		nids           []int64
		statuses, srcs []string
		applied        []bool
		details        []string
		occurred       []*time.Time
	)
	for _, e := range events {
		nids = append(nids, e.notificationID)
		statuses = append(statuses, e.status)
		srcs = append(srcs, string(e.source))
		applied = append(applied, e.applied)
		d := e.detail
		if len(d) == 0 {
			d = []byte("{}")
		}
		details = append(details, string(d))
		occurred = append(occurred, e.occurredAt)
	}
	b.Queue(`INSERT INTO notification_event (notification_id, status, source, applied, detail, occurred_at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::jsonb[], $6::timestamptz[])`,
		nids, statuses, srcs, applied, details, occurred)
}

// Announcement is what a LISTEN client on StatusChannel, and the CRM
// callback, receive about one status change. Build its JSON with
// Change.AnnouncementJSON, which keeps it within MaxAnnouncementBytes.
type Announcement struct {
	Schema         string `json:"schema,omitempty"`
	NotificationID int64  `json:"notification_id"`
	EventID        string `json:"event_id"`
	OrderNumber    string `json:"order_number,omitempty"`
	CustomerName   string `json:"customer_name,omitempty"`
	PhoneMasked    string `json:"phone_masked,omitempty"`
	Status         Status `json:"status"`
	From           Status `json:"from,omitempty"`
	Final          bool   `json:"final"`
	Source         Source `json:"source"`
	ErrorCode      string `json:"error_code,omitempty"`
	Error          string `json:"error,omitempty"`
	Wamid          string `json:"wamid,omitempty"`
	// What Meta says the message costs, once known.
	PricingCategory string `json:"pricing_category,omitempty"`
	PricingModel    string `json:"pricing_model,omitempty"`
	PricingType     string `json:"pricing_type,omitempty"`
	Billable        *bool  `json:"billable,omitempty"`
	At              string `json:"at"` // RFC 3339, when the status happened
	// Truncated is true when long texts were cut (ending in "…") to keep
	// the announcement within MaxAnnouncementBytes; the notification row,
	// read by notification_id, has them in full.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxAnnouncementBytes bounds the JSON of one announcement. Postgres
// refuses a NOTIFY payload of 8000 bytes or more by failing the whole
// transaction that sends it, so an over-long announcement would stop the
// status change it announces (README.md, "The record for CRM and finance").
const MaxAnnouncementBytes = 7500

// Announcement describes c for listeners outside the daemon, untruncated.
func (c Change) Announcement(schema string) Announcement {
	n := c.Notification
	a := Announcement{
		Schema: schema, NotificationID: n.ID, EventID: n.EventID, OrderNumber: n.OrderNumber(), CustomerName: n.CustomerName(),
		PhoneMasked: MaskPhone(n.Phone), Status: c.To, From: c.From, Final: c.To.Final(), Source: c.Source,
		ErrorCode: n.ErrorCode, Error: textcut.Truncate(n.Error, 1000), Wamid: n.Wamid, At: c.At.UTC().Format(time.RFC3339Nano),
	}
	if p := n.Pricing; p != nil {
		a.PricingCategory, a.PricingModel, a.PricingType, a.Billable = p.Category, p.Model, p.Type, p.Billable
	}
	return a
}

// AnnouncementJSON is the JSON of c's announcement, at most
// MaxAnnouncementBytes long whatever the row holds: when it would be
// longer, every free text (event id, order number, customer name, error,
// wamid) is cut to the same byte budget, halved until the whole fits, and
// Truncated is set. It never fails: an announcement must never be the
// reason a status change is not recorded.
func (c Change) AnnouncementJSON(schema string) []byte {
	a := c.Announcement(schema)
	b := marshalAnnouncement(a)
	for limit := 1024; len(b) > MaxAnnouncementBytes; limit /= 2 {
		t := a
		t.Truncated = true
		for _, f := range []*string{&t.EventID, &t.OrderNumber, &t.CustomerName, &t.ErrorCode, &t.Error, &t.Wamid} {
			*f = textcut.Truncate(*f, limit)
		}
		b = marshalAnnouncement(t)
		if limit == 0 {
			break
		}
	}
	return b
}

// marshalAnnouncement encodes without HTML escaping: "<" stays one byte
// instead of six, so fewer announcements need truncating.
func marshalAnnouncement(a Announcement) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(a) // only strings, numbers and booleans: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// MaskPhone shows enough of a phone to recognise it, not to dial it
// (+7900****67), like the notification_report view.
func MaskPhone(p string) string {
	if p == "" {
		return ""
	}
	keep := max(len(p)-6, 1)
	if keep >= len(p)-2 {
		return "+" + p[:1] + "****"
	}
	return "+" + p[:keep] + "****" + p[len(p)-2:]
}

// detailJSON encodes a detail object, never failing.
func detailJSON(m map[string]any) []byte {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return []byte(fmt.Sprintf(`{"unencodable": %q}`, err.Error()))
	}
	return b
}
