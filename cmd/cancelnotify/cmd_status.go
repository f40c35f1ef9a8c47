package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "status")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s, "")
	statusOpt := s.add("", "status", "", "list notifications in this status (comma-separated), e.g. failed,in_doubt")
	since := s.add("", "since", "0s", "with --status: changed within this long, e.g. 2h")
	limit := s.add("", "limit", "100", "with --status: list at most this many")
	asJSON := s.addBool("", "json", false, "print JSON instead of tables")
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := db.values(s)
	window := s.duration(since)
	n := s.integer(limit, 1, 100000)
	jsonOut := s.boolean(asJSON)
	var statuses []ledger.Status
	for _, v := range strings.Split(statusOpt.raw, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		st, err := ledger.ParseStatus(v)
		if err != nil {
			s.fail("--status: %v", err)
		}
		statuses = append(statuses, st)
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && len(statuses) > 0) {
		return usageError("status takes one EVENT_ID, or --status filters, or nothing (counts)")
	}
	if err := s.err(); err != nil {
		return err
	}
	pool, err := cnsql.Open(ctx, url, schema, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := cnsql.Check(ctx, pool, schema); err != nil {
		return err
	}
	var v any
	var text func(io.Writer)
	switch {
	case fs.NArg() == 1:
		ev, err := readEvent(ctx, pool, fs.Arg(0))
		if err != nil {
			return err
		}
		v, text = ev, ev.print
	case len(statuses) > 0:
		list, err := readList(ctx, pool, redrive.Filter{Statuses: statuses, Since: window, Limit: n})
		if err != nil {
			return err
		}
		v, text = list, list.print
	default:
		c, err := readCounts(ctx, pool, schema)
		if err != nil {
			return err
		}
		v, text = c, c.print
	}
	if jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.stdout)
	return nil
}

// counts is `status` without arguments.
type counts struct {
	Schema           string           `json:"schema"`
	Total            int64            `json:"total"`
	ByStatus         map[string]int64 `json:"by_status"`
	Unrelayed        int64            `json:"unrelayed"`
	OldestUnrelayedS float64          `json:"oldest_unrelayed_seconds"`
}

func readCounts(ctx context.Context, pool *pgxpool.Pool, schema string) (*counts, error) {
	c := &counts{Schema: schema, ByStatus: map[string]int64{}}
	for _, st := range ledger.Statuses {
		c.ByStatus[string(st)] = 0
	}
	rows, err := pool.Query(ctx, "SELECT status, count(*) FROM notification GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count notifications: %w", err)
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		c.ByStatus[st] = n
		c.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
		FROM outbox WHERE relayed_at IS NULL`).Scan(&c.Unrelayed, &c.OldestUnrelayedS); err != nil {
		return nil, fmt.Errorf("count unrelayed outbox rows: %w", err)
	}
	return c, nil
}

func (c *counts) print(w io.Writer) {
	fmt.Fprintf(w, "schema %s: %d notifications\n", c.Schema, c.Total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, st := range ledger.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t\n", st, c.ByStatus[string(st)])
	}
	tw.Flush()
	if c.Unrelayed > 0 {
		fmt.Fprintf(w, "waiting for the relay: %d outbox rows, oldest %s ago\n", c.Unrelayed, (time.Duration(c.OldestUnrelayedS) * time.Second).Round(time.Second))
	}
	if n := c.ByStatus[string(ledger.StatusInDoubt)]; n > 0 {
		fmt.Fprintf(w, "%d in_doubt: 1MSG may or may not have sent them; list them with `cancelnotify status --status in_doubt`, settle with `cancelnotify resolve`\n", n)
	}
}

// listEntry is one row of `status --status …`.
type listEntry struct {
	EventID     string     `json:"event_id"`
	OrderNumber string     `json:"order_number"`
	Status      string     `json:"status"`
	Wamid       string     `json:"wamid,omitempty"`
	ErrorCode   string     `json:"error_code,omitempty"`
	Error       string     `json:"error,omitempty"`
	Attempts    int        `json:"attempts"`
	UpdatedAt   time.Time  `json:"updated_at"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
}

type list []listEntry

func readList(ctx context.Context, pool *pgxpool.Pool, f redrive.Filter) (list, error) {
	ids, err := redrive.Find(ctx, pool, f)
	if err != nil {
		return nil, err
	}
	out := list{}
	for _, id := range ids {
		n, err := ledger.GetByEventID(ctx, pool, id)
		if err != nil {
			return nil, err
		}
		out = append(out, listEntry{EventID: n.EventID, OrderNumber: n.OrderNumber(), Status: string(n.Status), Wamid: n.Wamid,
			ErrorCode: n.ErrorCode, Error: n.Error, Attempts: n.Attempts, UpdatedAt: n.UpdatedAt, SentAt: n.SentAt})
	}
	return out, nil
}

func (l list) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tORDER\tSTATUS\tUPDATED\tWAMID\tERROR")
	for _, r := range l {
		errText := r.Error
		if r.ErrorCode != "" {
			errText = r.ErrorCode + ": " + errText
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.EventID), printable(r.OrderNumber), r.Status, ts(&r.UpdatedAt), printable(dash(r.Wamid)), printable(cut(errText, 100)))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d notifications\n", len(l))
}

// eventView is `status EVENT_ID`.
type eventView struct {
	EventID      string               `json:"event_id"`
	EventType    string               `json:"event_type"`
	OutboxID     int64                `json:"outbox_id"`
	CommittedAt  time.Time            `json:"committed_at"`
	RelayedAt    *time.Time           `json:"relayed_at"`
	Notification *ledger.Notification `json:"notification"`
	History      []ledger.Event       `json:"history"`
	Jobs         []jobView            `json:"river_jobs"`
}

type jobView struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	ScheduledAt time.Time `json:"scheduled_at"`
	LastError   string    `json:"last_error,omitempty"`
}

func readEvent(ctx context.Context, pool *pgxpool.Pool, eventID string) (*eventView, error) {
	v := &eventView{EventID: eventID}
	err := pool.QueryRow(ctx, "SELECT id, event_type, created_at, relayed_at FROM outbox WHERE event_id = $1", eventID).
		Scan(&v.OutboxID, &v.EventType, &v.CommittedAt, &v.RelayedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no outbox row has event_id %q: check the id the OMS wrote (SELECT event_id FROM outbox ORDER BY id DESC LIMIT 10)", eventID)
	}
	if err != nil {
		return nil, err
	}
	n, err := ledger.GetByEventID(ctx, pool, eventID)
	if errors.Is(err, ledger.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	v.Notification = n
	if v.History, err = ledger.Events(ctx, pool, n.ID); err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT id, kind, state::text, attempt, max_attempts, scheduled_at,
			coalesce(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE kind LIKE 'cancelnotify_%' AND args @> jsonb_build_object('notification_id', $1::bigint) ORDER BY id`, n.ID)
	if err != nil {
		return nil, fmt.Errorf("read River jobs: %w", err)
	}
	v.Jobs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (jobView, error) {
		var j jobView
		err := r.Scan(&j.ID, &j.Kind, &j.State, &j.Attempt, &j.MaxAttempts, &j.ScheduledAt, &j.LastError)
		return j, err
	})
	return v, err
}

func (v *eventView) print(w io.Writer) {
	fmt.Fprintf(w, "event      %s (%s, outbox row %d, committed %s)\n", printable(v.EventID), printable(v.EventType), v.OutboxID, ts(&v.CommittedAt))
	n := v.Notification
	if n == nil {
		fmt.Fprintln(w, "status     not relayed yet: the relay has not picked the row up (is `cancelnotify run` running?)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "status\t%s\n", n.Status)
	fmt.Fprintf(tw, "wamid\t%s\n", printable(dash(n.Wamid)))
	fmt.Fprintf(tw, "to\t%s\n", dash(ledger.MaskPhone(n.Phone)))
	fmt.Fprintf(tw, "template\t%s (%s)\n", printable(n.Template), printable(n.Language))
	if len(n.Params) > 0 {
		fmt.Fprintf(tw, "params\t%s\n", printable(strings.Join(quoteAll(n.Params), " · ")))
	}
	if len(n.Shortened) > 0 {
		fmt.Fprintf(tw, "shortened\t%s\n", printable(strings.Join(n.Shortened, ", ")))
	}
	if n.Error != "" {
		fmt.Fprintf(tw, "error\t%s: %s\n", printable(dash(n.ErrorCode)), printable(n.Error))
	}
	fmt.Fprintf(tw, "attempts\t%d\n", n.Attempts)
	fmt.Fprintf(tw, "times\tsent %s · delivered %s · read %s · failed %s\n", ts(n.SentAt), ts(n.DeliveredAt), ts(n.ReadAt), ts(n.FailedAt))
	tw.Flush()

	fmt.Fprintln(w, "\nhistory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range v.History {
		mark := ""
		if !ev.Applied {
			mark = "(not applied)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", ts(&ev.RecordedAt), ev.Source, printable(ev.Status), mark, printable(cut(detailLine(ev.Detail), 160)))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nRiver jobs")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, j := range v.Jobs {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\tattempt %d/%d\tscheduled %s\t%s\n", j.ID, j.Kind, j.State, j.Attempt, j.MaxAttempts, ts(&j.ScheduledAt), printable(j.LastError))
	}
	tw.Flush()
	if len(v.Jobs) == 0 {
		fmt.Fprintln(w, "  none (finished jobs are deleted after River's retention period)")
	}
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

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func detailLine(d []byte) string {
	if s := string(d); s != "{}" {
		return s
	}
	return ""
}
