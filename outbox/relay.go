// Package outbox relays the rows an OMS writes into the outbox table to
// River send jobs, exactly once.
//
// The OMS inserts one row per cancelled order inside its own transaction; a
// statement-level trigger NOTIFYs the relay when it sleeps (see Relay.Run:
// a busy relay costs the OMS no NOTIFY). Each wake-up drains the backlog
// in short transactions: lock a batch of unrelayed rows (FOR UPDATE SKIP
// LOCKED, so several relays can run at once), validate each payload, create
// its notification row, insert one send job per queued row, mark the rows
// relayed, commit. A crash before the commit leaves the rows for the next
// drain; after it, everything is in place.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/jobs"
)

// JobInserter inserts River jobs in the caller's transaction;
// *river.Client[pgx.Tx] implements it.
type JobInserter interface {
	InsertManyFastTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) (int, error)
}

// Defaults of RelayConfig.
const (
	DefaultBatchSize    = 500
	DefaultPollInterval = time.Second
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	Pool      *pgxpool.Pool // search_path set to the schema (sql.Open)
	Schema    string        // names the NOTIFY channel
	Jobs      JobInserter
	Ledger    *ledger.Ledger
	Validator Validator // the default channel's rules
	Template  string    // ONEMSG_TEMPLATE, recorded on each notification of the default channel

	// Channels are the channels besides the default one (described by
	// Validator, Template and PairInterval); a payload's "channel" key
	// names one.
	Channels []OneMsgChannel

	// BatchSize is how many rows one relay transaction takes. Defaults to
	// DefaultBatchSize.
	BatchSize int
	// PollInterval is the fallback poll when no NOTIFY arrives. Defaults to
	// DefaultPollInterval.
	PollInterval time.Duration
	// PairInterval spaces sends to the same phone (Meta's pair rate limit,
	// error 131056, is one message every 6s): a later cancellation for the
	// same customer is scheduled, not sent at once. 0 disables pacing.
	PairInterval time.Duration
	Logger       *slog.Logger
	// TracerProvider, when set, starts one trace per notification (span
	// "cancelnotify.relay", linked to its batch's "cancelnotify.relay.batch"),
	// which its jobs and status changes continue. Default nil: no spans.
	TracerProvider trace.TracerProvider
}

// OneMsgChannel is a 1MSG channel as the relay knows it.
type OneMsgChannel struct {
	Name         string
	Template     string
	Rules        Validator     // its language and body
	PairInterval time.Duration // its per-recipient spacing; 0 = off
}

// Relay moves outbox rows to send jobs.
type Relay struct {
	cfg       RelayConfig
	logger    *slog.Logger
	tracer    trace.Tracer // nil when traces are off
	listening atomic.Bool
	wake      chan struct{}
	channels  map[string]OneMsgChannel // by name, the default channel included

	progress     atomic.Int64 // rows relayed since start
	failures     atomic.Int64 // drains failed in a row
	failingSince atomic.Int64 // unix nanoseconds of the first of them; 0 while drains succeed
	lastErr      atomic.Pointer[string]
}

// Health is how the relay is doing, for /readyz and the metrics.
type Health struct {
	Relayed      int64     // rows relayed since the relay started
	Failures     int64     // drains that failed in a row (0: the last one succeeded)
	FailingSince time.Time // when the first of them failed; zero while drains succeed
	LastError    string    // the last drain's error, "" after a success
}

// Stalled reports a relay that makes no progress: its last three drains
// in a row failed (a row that cannot be settled, the database refusing).
func (h Health) Stalled() bool { return h.Failures >= 3 }

// Health returns the relay's progress so far.
func (r *Relay) Health() Health {
	h := Health{Relayed: r.progress.Load(), Failures: r.failures.Load()}
	if ns := r.failingSince.Load(); ns != 0 {
		h.FailingSince = time.Unix(0, ns)
	}
	if e := r.lastErr.Load(); e != nil {
		h.LastError = *e
	}
	return h
}

func (r *Relay) drained(err error) {
	if err == nil {
		r.failures.Store(0)
		r.failingSince.Store(0)
		r.lastErr.Store(nil)
		return
	}
	if r.failures.Add(1) == 1 {
		r.failingSince.Store(time.Now().UnixNano())
	}
	msg := err.Error()
	r.lastErr.Store(&msg)
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ledger == nil {
		cfg.Ledger = &ledger.Ledger{Schema: cfg.Schema}
	}
	r := &Relay{cfg: cfg, logger: cfg.Logger.With("component", "relay"), wake: make(chan struct{}, 1),
		channels: map[string]OneMsgChannel{ledger.DefaultChannel: {Name: ledger.DefaultChannel, Template: cfg.Template,
			Rules: cfg.Validator, PairInterval: cfg.PairInterval}}}
	if cfg.TracerProvider != nil {
		r.tracer = tracing.Tracer(cfg.TracerProvider)
	}
	if len(cfg.Channels) > 0 {
		r.cfg.Validator.Channels = map[string]Validator{}
		for _, c := range cfg.Channels {
			r.channels[c.Name] = c
			r.cfg.Validator.Channels[c.Name] = c.Rules
		}
	}
	return r
}

// Channel is the NOTIFY channel of the outbox trigger for schema.
func Channel(schema string) string { return schema + ".outbox" }

// Listening reports whether the relay holds a live LISTEN connection.
func (r *Relay) Listening() bool { return r.listening.Load() }

// SleepLockClass is the first key of the advisory lock a sleeping relay
// holds; the second is hashtext(schema). The outbox trigger (migration 009)
// NOTIFYs only when it cannot take this lock in shared mode.
const SleepLockClass = 1668182577

// sleepLockWait bounds one wait for the sleep lock: it waits for the OMS
// transactions that inserted rows without a NOTIFY to end, normally a few
// milliseconds. A longer wait means one of them stays open; the relay then
// drains and tries again, so rows committed meanwhile wait at most this long.
const sleepLockWait = 50 * time.Millisecond

// Run relays until ctx ends. It reconnects by itself when Postgres goes
// away; it returns only when ctx is done.
//
// The relay is awake or asleep. Awake, it holds no lock, and OMS
// transactions insert without NOTIFY: the relay drains until a drain finds
// nothing. To sleep it takes the sleep lock, which waits for every OMS
// transaction that inserted without a NOTIFY, looks for waiting rows once
// more, and waits on its LISTEN connection; from then on every insert
// NOTIFYs. The drain after a wake-up releases the lock in its first
// statement, so a burst costs the OMS no NOTIFY beyond its first row.
// Several relays may run: one sleeps holding the lock, the others sleep
// without it and are woken by the same NOTIFYs; each tries to take the
// lock again at every wake-up and fallback poll.
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, failures > 0)
		if r.listening.Swap(false) {
			failures = 0 // it was listening: this is a new outage
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		wait := min(time.Duration(failures)*time.Second, 30*time.Second)
		r.logger.Warn("relay LISTEN connection lost; polling until it is back", "error", err, "retry_in", wait)
		if err := r.pollFor(ctx, wait); err != nil {
			return nil
		}
	}
	return nil
}

// pollFor drains every PollInterval for d: the relay without its LISTEN
// connection.
func (r *Relay) pollFor(ctx context.Context, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		if _, err := r.drainRetrying(ctx); err != nil {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-time.After(min(left, r.cfg.PollInterval)):
		}
	}
}

// drainRetrying drains, retrying database errors with back-off; it fails
// only when ctx ends.
func (r *Relay) drainRetrying(ctx context.Context) (int, error) {
	for failures := 0; ; failures++ {
		n, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		r.drained(err)
		if err == nil {
			if n > 0 {
				r.logger.Debug("relayed", "rows", n)
			}
			return n, nil
		}
		wait := min(time.Duration(failures+1)*500*time.Millisecond, 10*time.Second)
		r.logger.Error("relay drain failed; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Wake asks the relay to drain now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listenOnce runs the relay on one LISTEN connection until it fails.
func (r *Relay) listenOnce(ctx context.Context, reconnect bool) error {
	conn, err := pgx.ConnectConfig(ctx, r.cfg.Pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var key int32
	if err := conn.QueryRow(ctx, "SELECT hashtext($1)", r.cfg.Schema).Scan(&key); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel(r.cfg.Schema)}.Sanitize()); err != nil {
		return err
	}
	r.listening.Store(true)
	if reconnect {
		r.logger.Info("relay LISTEN connection back")
	}
	s := &sleeper{conn: conn, key: key, pending: "SELECT EXISTS (SELECT FROM " +
		pgx.Identifier{r.cfg.Schema, "outbox"}.Sanitize() + " WHERE relayed_at IS NULL)"}
	for {
		// Awake: drain until a drain finds nothing. Trying to sleep while
		// rows still come would make every OMS transaction NOTIFY while the
		// lock is waited for. The drains run on this connection; the first
		// releases the lock in its first statement.
		for {
			n, err := r.drainAwake(ctx, s)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			// Let the next rows gather into one batch.
			if err := pause(ctx, awakePause); err != nil {
				return err
			}
		}
		// Going to sleep: take the lock, which waits for the OMS
		// transactions that inserted without a NOTIFY, then look again.
		// Holding the lock makes the OMS NOTIFY, so hold it awake only for
		// that look, never for a drain.
		s.discard(ctx) // older than the look below, which covers them
		got, more, err := s.lockAndLook(ctx)
		if err != nil {
			return err
		}
		if more {
			continue
		}
		for {
			wait := r.cfg.PollInterval
			if !got && !s.otherSleeps(ctx) {
				// An OMS transaction that inserted without a NOTIFY is still
				// open; try again soon.
				wait = sleepLockWait
			}
			woken, err := s.sleep(ctx, r.wake, wait)
			if err != nil {
				return err
			}
			if woken || !got {
				break
			}
			// The fallback poll. Holding the lock, every insert NOTIFYs, so
			// it finds rows only if a NOTIFY went missing.
			if _, more, err := s.lockAndLook(ctx); err != nil || more {
				if err != nil {
					return err
				}
				break
			}
		}
	}
}

// drainAwake drains on the LISTEN connection, releasing the sleep lock in
// the first transaction. It retries database errors while the connection
// lives; a lost connection ends it, and Run reconnects.
func (r *Relay) drainAwake(ctx context.Context, s *sleeper) (int, error) {
	begin := func(ctx context.Context) (pgx.Tx, error) {
		tx, err := s.conn.Begin(ctx)
		if err != nil || !s.held {
			return tx, err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", SleepLockClass, s.key); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("release the relay's sleep lock: %w", err)
		}
		s.held = false // a session lock: released now, whatever the transaction does
		return tx, nil
	}
	for failures := 0; ; failures++ {
		n, err := r.drain(ctx, begin)
		if ctx.Err() == nil {
			r.drained(err)
		}
		switch {
		case err == nil:
			if n > 0 {
				r.logger.Debug("relayed", "rows", n)
			}
			return n, nil
		case ctx.Err() != nil:
			return n, ctx.Err()
		case s.conn.IsClosed():
			return n, err
		}
		wait := min(time.Duration(failures+1)*500*time.Millisecond, 10*time.Second)
		r.logger.Error("relay drain failed; retrying", "error", err, "retry_in", wait)
		if err := pause(ctx, wait); err != nil {
			return n, err
		}
	}
}

// awakePause is how long an awake relay waits after a drain that found
// rows before it drains again.
const awakePause = 5 * time.Millisecond

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// sleeper is the relay's LISTEN connection and the sleep lock on it.
type sleeper struct {
	conn    *pgx.Conn
	key     int32
	held    bool
	pending string // query: is any outbox row waiting?
}

// lockAndLook takes the sleep lock, waiting at most sleepLockWait, and
// then reports whether an outbox row waits to be relayed, in one round
// trip and one transaction; the look is a statement of its own, so its
// snapshot comes after the lock. got is false when the lock is busy:
// another relay sleeps, or an OMS transaction that inserted without a
// NOTIFY is still open.
func (s *sleeper) lockAndLook(ctx context.Context) (got, more bool, err error) {
	lock := ""
	if !s.held {
		// lock_timeout for this statement only: the relay's drains run on
		// this connection too, and their commits must wait as long as they
		// need. A failed lock rolls the SET back with the implicit
		// transaction.
		lock = fmt.Sprintf("SET lock_timeout = %d; SELECT pg_advisory_lock(%d, %d); RESET lock_timeout; ",
			sleepLockWait/time.Millisecond, SleepLockClass, s.key)
	}
	res, err := s.conn.PgConn().Exec(ctx, lock+s.pending).ReadAll()
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available: lock_timeout passed
		// The look did not run: look alone.
		res, err = s.conn.PgConn().Exec(ctx, s.pending).ReadAll()
		if err != nil {
			return false, false, fmt.Errorf("look for unrelayed outbox rows: %w", err)
		}
		return false, lookedMore(res), nil
	case err != nil:
		return false, false, fmt.Errorf("take the relay's sleep lock and look for unrelayed rows: %w", err)
	}
	s.held = true // with rows waiting, the next drain's first statement releases it
	return true, lookedMore(res), nil
}

// lookedMore reads the answer of the pending query, the last result.
func lookedMore(res []*pgconn.Result) bool {
	if len(res) == 0 {
		return false
	}
	rows := res[len(res)-1].Rows
	return len(rows) == 1 && len(rows[0]) == 1 && string(rows[0][0]) == "t"
}

// otherSleeps reports whether another relay holds the sleep lock, so that
// the NOTIFYs it causes wake this one too.
func (s *sleeper) otherSleeps(ctx context.Context) bool {
	var other bool
	err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'
		AND classid = $1::bigint::oid AND objid = ($2::bigint & 4294967295)::oid AND objsubid = 2
		AND mode = 'ExclusiveLock' AND granted)`, SleepLockClass, s.key).Scan(&other)
	return err == nil && other
}

// discard drops the notifications already received.
func (s *sleeper) discard(ctx context.Context) {
	done, cancel := context.WithCancel(ctx)
	cancel()
	for {
		if n, _ := s.conn.WaitForNotification(done); n == nil {
			return
		}
	}
}

// sleep waits for a NOTIFY, a wake-up or d, whichever comes first; woken
// is false when d passed.
func (s *sleeper) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) (woken bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waked := make(chan struct{})
	go func() {
		select {
		case <-wake:
			close(waked)
			cancel()
		case <-wctx.Done():
		}
	}()
	_, err = s.conn.WaitForNotification(wctx)
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, err
	case wctx.Err() != nil:
		select {
		case <-waked:
			return true, nil
		default:
			return false, nil // the fallback poll is due
		}
	}
	return false, err
}

// Drain relays every row available now, batch by batch, and returns how
// many it relayed.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	return r.drain(ctx, r.cfg.Pool.Begin)
}

func (r *Relay) drain(ctx context.Context, begin func(context.Context) (pgx.Tx, error)) (int, error) {
	total := 0
	for {
		n, err := r.relayBatch(ctx, begin)
		total += n
		if err != nil || n < r.cfg.BatchSize {
			return total, err
		}
	}
}

type row struct {
	id        int64
	eventID   string
	eventType string
	payload   []byte // nil when larger than MaxPayloadBytes
	size      int
	createdAt time.Time
}

func (r *Relay) relayBatch(ctx context.Context, begin func(context.Context) (pgx.Tx, error)) (_ int, err error) {
	start := time.Now()
	tx, err := begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin relay transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	// Oversized payloads are not fetched: a 10 MB poison row must not cost
	// the relay 10 MB per attempt, or 5 GB per batch.
	rows, err := tx.Query(ctx, `SELECT o.id, o.event_id, o.event_type,
			CASE WHEN p.size <= $2 THEN o.payload::text END, p.size, o.created_at
		FROM outbox o, LATERAL (SELECT octet_length(o.payload::text) AS size) p
		WHERE o.relayed_at IS NULL
		ORDER BY o.id
		LIMIT $1
		FOR UPDATE OF o SKIP LOCKED`, r.cfg.BatchSize, MaxPayloadBytes)
	if err != nil {
		return 0, fmt.Errorf("select outbox rows: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		var x row
		var payload *string
		err := cr.Scan(&x.id, &x.eventID, &x.eventType, &payload, &x.size, &x.createdAt)
		if payload != nil {
			x.payload = []byte(*payload)
		}
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("select outbox rows: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	// Spans start only for a batch that has rows: an idle relay's polls
	// would be noise.
	ctx, end := r.traceBatch(ctx, start, len(batch))
	defer func() { end(err) }()

	decisions := make([]Decision, len(batch))
	for i, x := range batch {
		decisions[i] = r.decide(x)
	}
	err = r.relayRows(ctx, tx, batch, decisions)
	var stuck error
	if err != nil {
		if !rowFault(ctx, tx, err) {
			return 0, err
		}
		// Something in this batch makes the batch fail; find it row by row
		// so that it cannot hold back the rows behind it.
		r.logger.Warn("relay batch failed; relaying its rows one by one", "rows", len(batch), "error", err)
		if stuck, err = r.relayEach(ctx, tx, batch, decisions); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit relay transaction: %w", err)
	}
	r.progress.Add(int64(len(batch)))
	return len(batch), stuck
}

// relayEach relays rows one at a time, each in its own savepoint. A row
// whose relaying fails is settled as rejected with the reason; if even
// that cannot be written, it is rejected with its texts cut short. Only a
// row that cannot be written at all stays unrelayed: it is reported in the
// returned error (so /readyz and the metrics show the relay failing) while
// every other row of the batch goes on.
func (r *Relay) relayEach(ctx context.Context, tx pgx.Tx, batch []row, decisions []Decision) (stuck error, err error) {
	var stuckIDs []string
	for i, x := range batch {
		rowErr := r.relayRows(ctx, tx, batch[i:i+1], decisions[i:i+1])
		if rowErr == nil {
			continue
		}
		if !rowFault(ctx, tx, rowErr) {
			return nil, rowErr
		}
		r.logger.Error("outbox row cannot be relayed; rejecting it", "outbox_id", x.id, "event_id", clipForLog(x.eventID), "error", rowErr)
		reject := Decision{Status: ledger.StatusRejected, Code: "relay_failed", Channel: decisions[i].Channel, Language: decisions[i].Language, Phone: decisions[i].Phone,
			Reason: fmt.Sprintf("the relay could not record this row (%s); it was rejected so the rows behind it go on: fix the row's content and insert it again under a new event_id", valClip(rowErr.Error(), 300))}
		rowErr = r.relayRows(ctx, tx, batch[i:i+1], []Decision{reject})
		if rowErr != nil && rowFault(ctx, tx, rowErr) {
			// Last resort: nothing of the row's own texts but its id.
			short := batch[i]
			short.eventID = valClip(x.eventID, 40)
			reject.Phone = ""
			reject.Reason = fmt.Sprintf("the relay could not record this row (%s); it was rejected so the rows behind it go on, and its event_id is shortened here (outbox row %d has it in full)",
				valClip(rowErr.Error(), 200), x.id)
			rowErr = r.relayRows(ctx, tx, []row{short}, []Decision{reject})
		}
		if rowErr != nil {
			if !rowFault(ctx, tx, rowErr) {
				return nil, rowErr
			}
			r.logger.Error("outbox row cannot be settled; it stays unrelayed and is tried again", "outbox_id", x.id, "error", rowErr)
			stuckIDs = append(stuckIDs, strconv.FormatInt(x.id, 10))
		}
	}
	if len(stuckIDs) > 0 {
		return fmt.Errorf("%w: outbox rows %s", ErrRowStuck, strings.Join(stuckIDs, ", ")), nil
	}
	return nil, nil
}

// ErrRowStuck reports outbox rows that could not be relayed nor rejected;
// the rest of their batch was relayed.
var ErrRowStuck = errors.New("outbox rows cannot be relayed or rejected (see the log for why); the others were relayed")

// relayRows creates the notifications and send jobs of rows and marks them
// relayed, inside a savepoint of tx: on error, nothing of it remains and tx
// is still usable.
func (r *Relay) relayRows(ctx context.Context, outer pgx.Tx, batch []row, decisions []Decision) (err error) {
	tx, err := outer.Begin(ctx) // SAVEPOINT
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after release

	news := make([]ledger.New, len(batch))
	ids := make([]int64, len(batch))
	for i, x := range batch {
		ids[i] = x.id
		d := decisions[i]
		if d.Channel == "" {
			d.Channel = ledger.DefaultChannel // rejected before the payload named one
		}
		news[i] = ledger.New{
			OutboxID: x.id, EventID: x.eventID, EventCreatedAt: x.createdAt, Channel: d.Channel, Phone: d.Phone,
			Template: r.channels[d.Channel].Template, Language: d.Language, Params: d.Params, Shortened: d.Shortened,
			Status: d.Status, ErrorCode: d.Code, Error: d.Reason, OrderNumber: d.OrderNumber, CustomerName: d.CustomerName,
		}
	}
	if err := r.pace(ctx, tx, news); err != nil {
		return err
	}
	endNotifications := r.traceNotifications(ctx, news)
	created, err := r.cfg.Ledger.Create(ctx, tx, news)
	if err != nil {
		endNotifications(nil, err)
		return err
	}
	defer func() { endNotifications(created, err) }()
	var params []river.InsertManyParams
	for i, n := range created {
		switch n.Status {
		case ledger.StatusQueued:
			p := river.InsertManyParams{Args: jobs.SendArgsOf(n, 0)}
			opts := river.InsertOpts{Metadata: tracing.Metadata(n.TraceParent)}
			if nb := news[i].NotBefore; nb.After(time.Now()) {
				opts.ScheduledAt = nb
			}
			if opts.Metadata != nil || !opts.ScheduledAt.IsZero() {
				p.InsertOpts = &opts
			}
			params = append(params, p)
		default:
			r.logger.Warn("outbox row not sent", "event_id", clipForLog(n.EventID), "status", n.Status, "code", n.ErrorCode, "reason", n.Error)
		}
	}
	if len(params) > 0 {
		// COPY writes several jobs to a WAL record; a send job has no unique
		// options, the one thing the fast path cannot handle.
		if _, err := r.cfg.Jobs.InsertManyFastTx(ctx, tx, params); err != nil {
			return fmt.Errorf("insert send jobs: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE outbox SET relayed_at = now() WHERE id = ANY($1)", ids); err != nil {
		return fmt.Errorf("mark outbox rows relayed: %w", err)
	}
	if err := tx.Commit(ctx); err != nil { // RELEASE SAVEPOINT
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// rowFault tells whether err, from relaying some rows in tx, is about those
// rows (their content made a statement fail) rather than the database
// being unavailable, in which case nothing may be rejected for it. The
// savepoint has been rolled back by then, so a transaction that still
// answers proves the connection is fine.
func rowFault(ctx context.Context, tx pgx.Tx, err error) bool {
	if ctx.Err() != nil || tx.Conn().IsClosed() || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "25", "40", "53", "55", "57", "58": // connection, transaction state, conflicts, resources, operator, system
			return false
		}
	}
	var one int
	return tx.QueryRow(ctx, "SELECT 1").Scan(&one) == nil
}

// clipForLog keeps a row's own text short in a log line.
func clipForLog(s string) string { return valClip(s, 100) }

// traceBatch starts the batch's span, a root of its own; end records err.
func (r *Relay) traceBatch(ctx context.Context, begin time.Time, rows int) (context.Context, func(error)) {
	if r.tracer == nil {
		return ctx, func(error) {}
	}
	ctx, span := r.tracer.Start(ctx, "cancelnotify.relay.batch", trace.WithNewRoot(), trace.WithTimestamp(begin),
		trace.WithAttributes(attribute.Int("cancelnotify.rows", rows)))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// traceNotifications starts each row's trace and records it on the row to
// be created; end adds the notification ids and ends the spans.
func (r *Relay) traceNotifications(ctx context.Context, news []ledger.New) (end func([]*ledger.Notification, error)) {
	if r.tracer == nil {
		return func([]*ledger.Notification, error) {}
	}
	batch := trace.LinkFromContext(ctx)
	spans := make([]trace.Span, len(news))
	for i := range news {
		var sctx context.Context
		sctx, spans[i] = r.tracer.Start(ctx, "cancelnotify.relay", trace.WithNewRoot(), trace.WithLinks(batch),
			trace.WithAttributes(attribute.String("cancelnotify.event_id", news[i].EventID),
				attribute.String("cancelnotify.status", string(news[i].Status))))
		news[i].TraceParent = tracing.TraceParent(sctx)
	}
	return func(created []*ledger.Notification, err error) {
		for i, span := range spans {
			if i < len(created) {
				span.SetAttributes(attribute.Int64("cancelnotify.notification_id", created[i].ID))
			}
			if news[i].ErrorCode != "" {
				span.SetAttributes(attribute.String("cancelnotify.error_code", news[i].ErrorCode))
			}
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// pace sets NotBefore on queued rows whose phone had a send scheduled
// through the same channel within the channel's pair interval, so the send
// job is scheduled after it. Meta's pair limit is per business number and
// recipient, hence per channel and phone. A transaction-level advisory lock
// per channel and phone, taken in a fixed order, makes relays of several
// daemons pace one phone one after the other: the second reads the first's
// committed schedule.
func (r *Relay) pace(ctx context.Context, tx pgx.Tx, news []ledger.New) error {
	var chans, phones []string
	var gaps []time.Duration
	for _, n := range news {
		if n.Status != ledger.StatusQueued {
			continue
		}
		if gap := r.channels[n.Channel].PairInterval; gap > 0 {
			chans, phones, gaps = append(chans, n.Channel), append(phones, n.Phone), append(gaps, gap)
		}
	}
	if len(phones) == 0 {
		return nil
	}
	longest := slices.Max(gaps)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM (
			SELECT DISTINCT hashtextextended(current_schema() || '/' || c || '/' || p, 0) AS k
			FROM unnest($1::text[], $2::text[]) AS u(c, p) ORDER BY k) s`, chans, phones); err != nil {
		return fmt.Errorf("lock phones for pacing: %w", err)
	}
	// By the reversed phone: the index that serves this also serves the
	// support page's search by last digits (sql/013_room_on_the_page.sql).
	rows, err := tx.Query(ctx, `SELECT c, p, (SELECT max(n.not_before) FROM notification n
			WHERE reverse(n.phone) = reverse(p) AND n.phone <> '' AND n.channel = c AND n.not_before > now() - $3::interval)
		FROM unnest($1::text[], $2::text[]) AS u(c, p)`, chans, phones, longest)
	if err != nil {
		return fmt.Errorf("read recent sends per phone: %w", err)
	}
	type key struct{ channel, phone string }
	last := map[key]time.Time{}
	for rows.Next() {
		var k key
		var at *time.Time
		if err := rows.Scan(&k.channel, &k.phone, &at); err != nil {
			return err
		}
		if at != nil {
			last[k] = *at
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	now := time.Now()
	for i := range news {
		n := &news[i]
		gap := r.channels[n.Channel].PairInterval
		if n.Status != ledger.StatusQueued || gap <= 0 {
			continue
		}
		k := key{n.Channel, n.Phone}
		next := now
		if prev, ok := last[k]; ok && prev.Add(gap).After(next) {
			next = prev.Add(gap)
		}
		n.NotBefore = next
		last[k] = next
	}
	return nil
}

// decide validates one row; a panic in validation rejects that row only.
func (r *Relay) decide(x row) (d Decision) {
	defer func() {
		if p := recover(); p != nil {
			r.logger.Error("validation panicked; row rejected", "event_id", x.eventID, "panic", p)
			d = Decision{Status: ledger.StatusRejected, Code: "internal_error", Language: r.cfg.Validator.Language,
				Reason: fmt.Sprintf("validating this payload crashed (%v); the row was rejected so the rows behind it go on. Report it with the event_id", p)}
		}
	}()
	if len(x.eventID) > MaxEventIDBytes {
		return Decision{Status: ledger.StatusRejected, Code: "event_id_too_long", Language: r.cfg.Validator.Language,
			Reason: fmt.Sprintf("event_id is %d bytes; at most %d are accepted: use a short idempotency key such as \"order-10482-cancelled\"", len(x.eventID), MaxEventIDBytes)}
	}
	if x.payload == nil {
		return Decision{Status: ledger.StatusRejected, Code: "payload_too_large", Language: r.cfg.Validator.Language,
			Reason: tooLargeReason(x.size)}
	}
	return r.cfg.Validator.Validate(x.eventType, x.payload)
}
