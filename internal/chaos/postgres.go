package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Job kinds of the daemon's River workers (jobs.SendArgs, jobs.TrackArgs).
var pipelineJobKinds = []string{"cancelnotify_send", "cancelnotify_track"}

// unfinishedJobStates are River states of a job that still has work to do.
var unfinishedJobStates = []string{"available", "pending", "retryable", "running", "scheduled"}

// openPool connects the run's own pool: the writers and the observer. It
// names itself so the run's sessions are told apart in pg_stat_activity.
func openPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--database-url is not a Postgres URL: %w", err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "cancelnotify-chaos"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the database pool: %w", err)
	}
	return pool, nil
}

func newSchemaName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "cnchaos_" + hex.EncodeToString(b)
}

// db is the run's view of its schema.
type db struct {
	pool   *pgxpool.Pool
	schema string
}

func (d db) table(name string) string { return pgx.Identifier{d.schema, name}.Sanitize() }

// retry runs fn until it succeeds or the deadline: the observer's queries
// must ride out the Postgres restart just as the writers do.
func retry(ctx context.Context, what string, within time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// progress is the observer's view of the pipeline at one moment.
type progress struct {
	outbox, settled, pending int
}

// settledStatuses are the final statuses and in_doubt.
func settledStatuses() []string {
	return ledger.Strings(append(ledger.FinalStatuses(), ledger.StatusInDoubt))
}

// progress counts outbox rows, rows settled (final or in_doubt) and send or
// track jobs with work left.
func (d db) progress(ctx context.Context) (progress, error) {
	var p progress
	err := d.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT (SELECT count(*) FROM %[1]s),
		       (SELECT count(*) FROM %[1]s o JOIN %[2]s n ON n.outbox_id = o.id
		         WHERE n.status = ANY($3)),
		       (SELECT count(*) FROM %[3]s WHERE kind = ANY($1) AND state::text = ANY($2))`,
		d.table("outbox"), d.table("notification"), d.table("river_job")),
		pipelineJobKinds, unfinishedJobStates, settledStatuses()).Scan(&p.outbox, &p.settled, &p.pending)
	if err != nil {
		return p, fmt.Errorf("count the pipeline's progress: %w", err)
	}
	return p, nil
}

// outboxRows reads every outbox row with its notification.
func (d db) outboxRows(ctx context.Context) ([]OutboxRow, error) {
	rows, err := d.pool.Query(ctx, fmt.Sprintf(`
		SELECT o.event_id, coalesce(n.channel, ''), coalesce(n.status, ''), coalesce(n.wamid, ''), coalesce(n.error_code, ''), coalesce(n.error, '')
		FROM %s o LEFT JOIN %s n ON n.outbox_id = o.id ORDER BY o.id`, d.table("outbox"), d.table("notification")))
	if err != nil {
		return nil, fmt.Errorf("read the outbox and notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxRow, error) {
		var o OutboxRow
		err := r.Scan(&o.EventID, &o.Channel, &o.Status, &o.Wamid, &o.ErrorCode, &o.Error)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the outbox and notifications: %w", err)
	}
	return out, nil
}

// pendingJobs lists send and track jobs with work left.
func (d db) pendingJobs(ctx context.Context) ([]PendingJob, error) {
	rows, err := d.pool.Query(ctx, fmt.Sprintf(`
		SELECT id, kind, state::text, args::text FROM %s
		WHERE kind = ANY($1) AND state::text = ANY($2) ORDER BY id`, d.table("river_job")),
		pipelineJobKinds, unfinishedJobStates)
	if err != nil {
		return nil, fmt.Errorf("read River's unfinished jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PendingJob, error) {
		var j PendingJob
		err := r.Scan(&j.ID, &j.Kind, &j.State, &j.Args)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("read River's unfinished jobs: %w", err)
	}
	return out, nil
}

func (d db) dropSchema(ctx context.Context) error {
	return retry(ctx, "drop schema "+d.schema, 30*time.Second, func(ctx context.Context) error {
		_, err := d.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{d.schema}.Sanitize()+" CASCADE")
		return err
	})
}

// defaultPGRestart is pg_ctlcluster for the machine's one cluster: the
// version is the only directory under /etc/postgresql, the cluster "main"
// when there are several. --skip-systemctl-redirect makes it work without
// systemd (containers) and as root.
func defaultPGRestart() ([]string, error) {
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil {
		return nil, fmt.Errorf("find the Postgres cluster to restart: %w (pass --pg-restart-cmd)", err)
	}
	var vs []string
	for _, v := range versions {
		if v.IsDir() {
			vs = append(vs, v.Name())
		}
	}
	if len(vs) != 1 {
		return nil, fmt.Errorf("find the Postgres cluster to restart: /etc/postgresql has versions %v, want exactly one (pass --pg-restart-cmd)", vs)
	}
	clusters, err := os.ReadDir(filepath.Join("/etc/postgresql", vs[0]))
	if err != nil {
		return nil, fmt.Errorf("find the Postgres cluster to restart: %w", err)
	}
	var cs []string
	for _, c := range clusters {
		if c.IsDir() {
			cs = append(cs, c.Name())
		}
	}
	cluster := ""
	switch {
	case slices.Contains(cs, "main"):
		cluster = "main"
	case len(cs) == 1:
		cluster = cs[0]
	default:
		return nil, fmt.Errorf("find the Postgres cluster to restart: version %s has clusters %v (pass --pg-restart-cmd)", vs[0], cs)
	}
	return []string{"pg_ctlcluster", "--skip-systemctl-redirect", vs[0], cluster, "restart"}, nil
}

// restartPostgres runs the restart command (which returns once the server
// is up again: pg_ctl waits) and then waits until it answers queries.
func restartPostgres(ctx context.Context, argv []string, pool *pgxpool.Pool, logPath string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return time.Since(start), fmt.Errorf("restart Postgres (%v): %w: %s", argv, err, lastLines(string(out), 5))
	}
	err = retry(ctx, "wait for Postgres after its restart", time.Minute, func(ctx context.Context) error {
		_, err := pool.Exec(ctx, "SELECT 1")
		return err
	})
	return time.Since(start), err
}
