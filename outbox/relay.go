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
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/jobs"
)

// JobInserter inserts River jobs in the caller's transaction;
// *river.Client[pgx.Tx] implements it.
type JobInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	Pool      *pgxpool.Pool // search_path set to the schema (sql.Open)
	Schema    string        // names the NOTIFY channel
	Jobs      JobInserter
	Ledger    *ledger.Ledger
	Validator Validator
	Template  string // ONEMSG_TEMPLATE, recorded on each notification

	BatchSize    int           // rows per transaction, default 500
	PollInterval time.Duration // fallback poll when no NOTIFY arrives, default 1s
	// PairInterval spaces sends to the same phone (Meta's pair rate limit,
	// error 131056, is one message every 6s): a later cancellation for the
	// same customer is scheduled, not sent at once. 0 disables pacing.
	PairInterval time.Duration
	Logger       *slog.Logger
}

// Relay moves outbox rows to send jobs.
type Relay struct {
	cfg       RelayConfig
	logger    *slog.Logger
	listening atomic.Bool
	wake      chan struct{}
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ledger == nil {
		cfg.Ledger = &ledger.Ledger{Schema: cfg.Schema}
	}
	return &Relay{cfg: cfg, logger: cfg.Logger.With("component", "relay"), wake: make(chan struct{}, 1)}
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

func (r *Relay) relayBatch(ctx context.Context, begin func(context.Context) (pgx.Tx, error)) (int, error) {
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

	news := make([]ledger.New, len(batch))
	ids := make([]int64, len(batch))
	for i, x := range batch {
		ids[i] = x.id
		d := r.decide(x)
		news[i] = ledger.New{
			OutboxID: x.id, EventID: x.eventID, EventCreatedAt: x.createdAt, Phone: d.Phone,
			Template: r.cfg.Template, Language: d.Language, Params: d.Params, Shortened: d.Shortened,
			Status: d.Status, ErrorCode: d.Code, Error: d.Reason,
		}
	}
	if err := r.pace(ctx, tx, news); err != nil {
		return 0, err
	}
	created, err := r.cfg.Ledger.Create(ctx, tx, news)
	if err != nil {
		return 0, err
	}
	var params []river.InsertManyParams
	for i, n := range created {
		switch n.Status {
		case ledger.StatusQueued:
			p := river.InsertManyParams{Args: jobs.SendArgs{OutboxID: n.OutboxID, NotificationID: n.ID, EventID: n.EventID}}
			if nb := news[i].NotBefore; nb.After(time.Now()) {
				p.InsertOpts = &river.InsertOpts{ScheduledAt: nb}
			}
			params = append(params, p)
		default:
			r.logger.Warn("outbox row not sent", "event_id", n.EventID, "status", n.Status, "code", n.ErrorCode, "reason", n.Error)
		}
	}
	if len(params) > 0 {
		if _, err := r.cfg.Jobs.InsertManyTx(ctx, tx, params); err != nil {
			return 0, fmt.Errorf("insert send jobs: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE outbox SET relayed_at = now() WHERE id = ANY($1)", ids); err != nil {
		return 0, fmt.Errorf("mark outbox rows relayed: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit relay transaction: %w", err)
	}
	return len(batch), nil
}

// pace sets NotBefore on queued rows whose phone had a send scheduled
// within PairInterval, so the send job is scheduled after it. Two relays
// pacing the same phone at the same instant can still collide; 1MSG's 131056
// then snoozes the later send, which is correct, only less tidy.
func (r *Relay) pace(ctx context.Context, tx pgx.Tx, news []ledger.New) error {
	if r.cfg.PairInterval <= 0 {
		return nil
	}
	var phones []string
	for _, n := range news {
		if n.Status == ledger.StatusQueued {
			phones = append(phones, n.Phone)
		}
	}
	if len(phones) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT p, (SELECT max(n.not_before) FROM notification n
			WHERE n.phone = p AND n.not_before > now() - $2::interval)
		FROM unnest($1::text[]) p`, phones, r.cfg.PairInterval)
	if err != nil {
		return fmt.Errorf("read recent sends per phone: %w", err)
	}
	last := map[string]time.Time{}
	for rows.Next() {
		var phone string
		var at *time.Time
		if err := rows.Scan(&phone, &at); err != nil {
			return err
		}
		if at != nil {
			last[phone] = *at
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	now := time.Now()
	for i := range news {
		n := &news[i]
		if n.Status != ledger.StatusQueued {
			continue
		}
		next := now
		if prev, ok := last[n.Phone]; ok && prev.Add(r.cfg.PairInterval).After(next) {
			next = prev.Add(r.cfg.PairInterval)
		}
		n.NotBefore = next
		last[n.Phone] = next
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
	if x.payload == nil {
		return Decision{Status: ledger.StatusRejected, Code: "payload_too_large", Language: r.cfg.Validator.Language,
			Reason: fmt.Sprintf("payload is %d bytes; at most %d are accepted: send only the fields of design §2", x.size, MaxPayloadBytes)}
	}
	return r.cfg.Validator.Validate(x.eventType, x.payload)
}
