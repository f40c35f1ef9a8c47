package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/ledger"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "status")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := db.values(s)
	if err := s.err(); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageError("status takes at most one EVENT_ID, got %d arguments", fs.NArg())
	}
	pool, err := cnsql.Open(ctx, url, schema, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := cnsql.Check(ctx, pool, schema); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		return printEvent(ctx, e.stdout, pool, fs.Arg(0))
	}
	return printCounts(ctx, e.stdout, pool, schema)
}

func printCounts(ctx context.Context, w io.Writer, pool *pgxpool.Pool, schema string) error {
	rows, err := pool.Query(ctx, "SELECT status, count(*) FROM notification GROUP BY status")
	if err != nil {
		return fmt.Errorf("count notifications: %w", err)
	}
	counts := map[string]int64{}
	var total int64
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return err
		}
		counts[st] = n
		total += n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var pending int64
	var oldest *time.Time
	if err := pool.QueryRow(ctx, "SELECT count(*), min(created_at) FROM outbox WHERE relayed_at IS NULL").Scan(&pending, &oldest); err != nil {
		return fmt.Errorf("count unrelayed outbox rows: %w", err)
	}
	fmt.Fprintf(w, "schema %s: %d notifications\n", schema, total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, st := range ledger.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t\n", st, counts[string(st)])
	}
	tw.Flush()
	if pending > 0 {
		fmt.Fprintf(w, "waiting for the relay: %d outbox rows, oldest %s ago\n", pending, time.Since(*oldest).Round(time.Second))
	}
	if n := counts[string(ledger.StatusInDoubt)]; n > 0 {
		fmt.Fprintf(w, "%d in_doubt: 1MSG may or may not have sent them; see `cancelnotify status EVENT_ID`\n", n)
	}
	return nil
}

func printEvent(ctx context.Context, w io.Writer, pool *pgxpool.Pool, eventID string) error {
	var outboxID int64
	var createdAt time.Time
	var relayedAt *time.Time
	var eventType string
	err := pool.QueryRow(ctx, "SELECT id, event_type, created_at, relayed_at FROM outbox WHERE event_id = $1", eventID).
		Scan(&outboxID, &eventType, &createdAt, &relayedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("no outbox row has event_id %q: check the id the OMS wrote (SELECT event_id FROM outbox ORDER BY id DESC LIMIT 10)", eventID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "event      %s (%s, outbox row %d, committed %s)\n", eventID, eventType, outboxID, ts(&createdAt))
	n, err := ledger.GetByEventID(ctx, pool, eventID)
	if errors.Is(err, ledger.ErrNotFound) {
		fmt.Fprintln(w, "status     not relayed yet: the relay has not picked the row up (is `cancelnotify run` running?)")
		return nil
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "status\t%s\n", n.Status)
	fmt.Fprintf(tw, "wamid\t%s\n", dash(n.Wamid))
	fmt.Fprintf(tw, "to\t%s\n", dash(ledger.MaskPhone(n.Phone)))
	fmt.Fprintf(tw, "template\t%s (%s)\n", n.Template, n.Language)
	if len(n.Params) > 0 {
		fmt.Fprintf(tw, "params\t%s\n", strings.Join(quoteAll(n.Params), " · "))
	}
	if len(n.Shortened) > 0 {
		fmt.Fprintf(tw, "shortened\t%s\n", strings.Join(n.Shortened, ", "))
	}
	if n.Error != "" {
		fmt.Fprintf(tw, "error\t%s: %s\n", dash(n.ErrorCode), n.Error)
	}
	fmt.Fprintf(tw, "attempts\t%d\n", n.Attempts)
	fmt.Fprintf(tw, "times\tsent %s · delivered %s · read %s · failed %s\n", ts(n.SentAt), ts(n.DeliveredAt), ts(n.ReadAt), ts(n.FailedAt))
	tw.Flush()

	events, err := ledger.Events(ctx, pool, n.ID)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nhistory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range events {
		mark := ""
		if !ev.Applied {
			mark = "(not applied)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", ts(&ev.RecordedAt), ev.Source, ev.Status, mark, detailLine(ev.Detail))
	}
	tw.Flush()

	rows, err := pool.Query(ctx, `SELECT id, kind, state, attempt, max_attempts, scheduled_at, coalesce(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE kind LIKE 'cancelnotify_%' AND args @> jsonb_build_object('notification_id', $1::bigint) ORDER BY id`, n.ID)
	if err != nil {
		return fmt.Errorf("read River jobs: %w", err)
	}
	fmt.Fprintln(w, "\nRiver jobs")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	count := 0
	for rows.Next() {
		var id int64
		var kind, state, lastErr string
		var attempt, maxAttempts int
		var scheduled time.Time
		if err := rows.Scan(&id, &kind, &state, &attempt, &maxAttempts, &scheduled, &lastErr); err != nil {
			return err
		}
		count++
		fmt.Fprintf(tw, "  #%d\t%s\t%s\tattempt %d/%d\tscheduled %s\t%s\n", id, kind, state, attempt, maxAttempts, ts(&scheduled), lastErr)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	tw.Flush()
	if count == 0 {
		fmt.Fprintln(w, "  none (finished jobs are deleted after River's retention period)")
	}
	return nil
}

func ts(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func detailLine(d []byte) string {
	s := string(d)
	if s == "{}" || s == "" {
		return ""
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
