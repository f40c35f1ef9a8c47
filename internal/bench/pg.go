package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/jobs"
)

// appPrefix starts the application_name of every session the bench
// starts, the daemon's included. Any other active session on the server
// during a measurement competes for the same cores and WAL, and in the same
// database it is noise in the commit counters too.
const appPrefix = "cancelnotify-bench"

// statsFlushWait is how long the bench waits after a phase before it reads
// pg_stat_database. A backend publishes its counters at most once a second
// while busy and, once idle, within PGSTAT_IDLE_INTERVAL (10 s in
// Postgres 15); reading earlier would miss the last commits of idle pool
// connections.
const statsFlushWait = 11 * time.Second

// monitor is the bench's one connection during measurements. It counts its
// statements: each runs in its own transaction, which pg_stat_database
// counts as a commit, so they are taken out of the daemon's figures.
type monitor struct {
	conn       *pgx.Conn
	statements int64
}

func connectMonitor(ctx context.Context, dsn, schema string) (*monitor, error) {
	cfg, err := pgx.ParseConfig(withAppName(dsn, appPrefix+"-monitor"))
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect the monitoring connection: %w", err)
	}
	return &monitor{conn: conn}, nil
}

func (m *monitor) close() {
	if m != nil {
		_ = m.conn.Close(context.Background())
	}
}

func (m *monitor) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	m.statements++
	return m.conn.QueryRow(ctx, sql, args...)
}

func (m *monitor) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	m.statements++
	return m.conn.Query(ctx, sql, args...)
}

// counters reads Postgres's cumulative counters. The next transaction id is
// read from the current snapshot's xmax, which assigns none.
func (m *monitor) counters(ctx context.Context) (Counters, error) {
	c := Counters{Monitor: m.statements}
	err := m.queryRow(ctx, `SELECT
			(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
			pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
			pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).
		Scan(&c.XactCommit, &c.NextXid, &c.WAL)
	c.At = time.Now()
	if err != nil {
		return c, fmt.Errorf("read pg_stat_database and the WAL position: %w", err)
	}
	return c, nil
}

// settledStatuses are those after which nothing more is expected in the
// bench: the sandbox plans every message to be read.
var settledStatuses = []string{"read", "failed", "rejected", "skipped", "expired"}

// messageJobKinds are the River jobs of a message's life; the daemon's
// maintenance jobs are not waited for.
var messageJobKinds = []string{jobs.SendArgs{}.Kind(), jobs.TrackArgs{}.Kind()}

// progress is one look at a phase's rows.
type progress struct {
	Rows     int        // notification rows of the phase (relayed)
	Sent     int        // with a wamid
	Settled  int        // in a settled status
	LastSent *time.Time // max(sent_at)
	LastDone *time.Time // max(updated_at): the last status change
	JobsLeft int        // send and track jobs not finished, any phase
	Others   int        // other sessions active on this Postgres, any database
}

func (m *monitor) progress(ctx context.Context, p phase) (progress, error) {
	var pr progress
	err := m.queryRow(ctx, `SELECT count(*)::int, count(wamid)::int,
			count(*) FILTER (WHERE status = ANY($2))::int, max(sent_at), max(updated_at),
			(SELECT count(*)::int FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded') AND kind = ANY($4)),
			(SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend'
				AND state <> 'idle' AND pid <> pg_backend_pid() AND application_name NOT LIKE $3)
		FROM notification WHERE event_id LIKE $1`, p.eventPattern(), settledStatuses, appPrefix+"%", messageJobKinds).
		Scan(&pr.Rows, &pr.Sent, &pr.Settled, &pr.LastSent, &pr.LastDone, &pr.JobsLeft, &pr.Others)
	if err != nil {
		return pr, fmt.Errorf("read the progress of the %s rows: %w", p.name, err)
	}
	return pr, nil
}

func (m *monitor) statuses(ctx context.Context, p phase) (map[string]int, error) {
	rows, err := m.query(ctx, "SELECT status, count(*)::int FROM notification WHERE event_id LIKE $1 GROUP BY status", p.eventPattern())
	if err != nil {
		return nil, fmt.Errorf("count the %s rows by status: %w", p.name, err)
	}
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count the %s rows by status: %w", p.name, err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// sentAt returns notification.sent_at by event id for p's rows: the
// daemon's clock when it began the transaction that records the wamid, a
// few milliseconds before that transaction commits. It is read after the
// phase rather than observed live: a LISTEN connection would be woken by
// every NOTIFY in the database, and each wake-up is a transaction that
// pg_stat_database counts, inflating the daemon's commits; polling would
// cost commits and CPU on the same two cores.
func (m *monitor) sentAt(ctx context.Context, p phase) (map[string]time.Time, error) {
	rows, err := m.query(ctx, "SELECT event_id, sent_at FROM notification WHERE event_id LIKE $1 AND sent_at IS NOT NULL", p.eventPattern())
	if err != nil {
		return nil, fmt.Errorf("read sent_at of the %s rows: %w", p.name, err)
	}
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("read sent_at of the %s rows: %w", p.name, err)
		}
		out[id] = at
	}
	return out, rows.Err()
}
