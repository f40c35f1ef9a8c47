package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AnnounceLockClass is the first key of the advisory lock that lets one
// announcer at a time work a schema; the second is hashtext(schema).
const AnnounceLockClass = 1668182578

// MaxNotifyPayload is the largest NOTIFY payload Postgres accepts, in
// bytes (it refuses 8000 and more).
const MaxNotifyPayload = 7999

// Announcer NOTIFYs the status changes queued in status_announcement on
// StatusChannel. A NOTIFY carries one or more changes, one JSON object
// (Announcement) per line, in the order they were made, and at most
// MaxNotifyPayload bytes. One transaction takes the oldest changes, NOTIFYs
// them and deletes them, so each change is announced once, after it
// committed. Announcers of several daemons take turns (an advisory lock),
// which keeps the changes of one notification in order.
type Announcer struct {
	pool   *pgxpool.Pool
	schema string
	logger *slog.Logger
	linger time.Duration
	poll   time.Duration
	batch  int
	wake   chan struct{}
}

// AnnouncerConfig configures an Announcer.
type AnnouncerConfig struct {
	Pool   *pgxpool.Pool // search_path set to the schema (sql.Open)
	Schema string
	Logger *slog.Logger
	// Linger is how long a wake-up waits before announcing, so that the
	// waking transaction commits and others join it; default 50ms. At a
	// steady rate it bounds the announcer to 20 transactions a second.
	Linger time.Duration
	Poll   time.Duration // fallback poll, for changes other processes make; default 1s
	Batch  int           // changes per transaction; default 1000
}

// NewAnnouncer returns an announcer; Run starts it.
func NewAnnouncer(cfg AnnouncerConfig) *Announcer {
	a := &Announcer{pool: cfg.Pool, schema: cfg.Schema, logger: cfg.Logger, linger: cfg.Linger, poll: cfg.Poll,
		batch: cfg.Batch, wake: make(chan struct{}, 1)}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.linger <= 0 {
		a.linger = 50 * time.Millisecond
	}
	if a.poll <= 0 {
		a.poll = time.Second
	}
	if a.batch <= 0 {
		a.batch = 1000
	}
	return a
}

// Wake asks for an announcement soon.
func (a *Announcer) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run announces until ctx ends.
func (a *Announcer) Run(ctx context.Context) {
	poll := time.NewTicker(a.poll)
	defer poll.Stop()
	// followUp is one more pass after the last wake-up, for a transaction
	// that committed after the pass it woke.
	followUp := time.NewTimer(time.Hour)
	followUp.Stop()
	failures := 0
	for {
		woken := false
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
			woken = true
		case <-poll.C:
		case <-followUp.C:
		}
		if woken {
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.linger):
			}
		}
		for {
			n, err := a.Announce(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				failures++
				a.logger.Error("announcing status changes failed; retrying", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(time.Duration(failures)*500*time.Millisecond, 10*time.Second)):
				}
				continue
			}
			failures = 0
			if n < a.batch {
				break
			}
		}
		if woken {
			followUp.Reset(5 * a.linger)
		}
	}
}

// Announce NOTIFYs the changes queued now, up to one batch, and returns
// how many it announced. It returns 0 when another announcer holds the
// turn; that one announces them.
func (a *Announcer) Announce(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var turn bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1::int4, hashtext($2))", AnnounceLockClass, a.schema).Scan(&turn); err != nil {
			return err
		}
		if !turn {
			return nil
		}
		rows, err := tx.Query(ctx, `DELETE FROM status_announcement WHERE id IN (
				SELECT id FROM status_announcement ORDER BY id LIMIT $1)
			RETURNING id, payload`, a.batch)
		if err != nil {
			return err
		}
		type change struct {
			id      int64
			payload string
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (change, error) {
			var c change
			err := r.Scan(&c.id, &c.payload)
			return c, err
		})
		if err != nil || len(got) == 0 {
			return err
		}
		// RETURNING does not keep the subquery's order.
		slices.SortFunc(got, func(x, y change) int { return cmp.Compare(x.id, y.id) })
		payloads := make([]string, len(got))
		for i, c := range got {
			payloads[i] = c.payload
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) p", StatusChannel, Pack(payloads, MaxNotifyPayload))
		n = len(got)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("announce status changes: %w", err)
	}
	return n, nil
}

// Pack joins changes, one per line, into as few NOTIFY payloads of at most
// limit bytes as their order allows. A change longer than limit on its own
// is replaced by its identifying fields and "truncated": true.
func Pack(changes []string, limit int) []string {
	var out []string
	var cur strings.Builder
	for _, c := range changes {
		if len(c) > limit {
			c = shrink(c, limit)
		}
		if cur.Len() > 0 && cur.Len()+1+len(c) > limit {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(c)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// shrink keeps the fields a listener needs to look the change up.
func shrink(payload string, limit int) string {
	var full map[string]any
	_ = json.Unmarshal([]byte(payload), &full)
	keep := map[string]any{"truncated": true}
	for _, k := range []string{"schema", "notification_id", "event_id", "status", "from", "final", "source", "at"} {
		if v, ok := full[k]; ok {
			keep[k] = v
		}
	}
	b, _ := json.Marshal(keep)
	if len(b) > limit {
		return `{"truncated":true}`
	}
	return string(b)
}
