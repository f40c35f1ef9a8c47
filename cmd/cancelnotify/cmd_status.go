package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "status")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s)
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
		return usageError("status takes one EVENT_ID or ORDER_NUMBER, or --status filters, or nothing (counts)")
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
		evs, err := readEvents(ctx, pool, schema, fs.Arg(0))
		if err != nil {
			return err
		}
		v, text = evs, evs.print
		if len(evs) == 1 {
			v = evs[0] // an event id: the object itself, as scripts expect
		}
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
	Schema   string           `json:"schema"`
	Total    int64            `json:"total"`
	ByStatus map[string]int64 `json:"by_status"`
	// ByChannel counts each channel's notifications by status.
	ByChannel        map[string]map[string]int64 `json:"by_channel"`
	Unrelayed        int64                       `json:"unrelayed"`
	OldestUnrelayedS float64                     `json:"oldest_unrelayed_seconds"`
	Channels         []health.Status             `json:"channels"`
}

func readCounts(ctx context.Context, pool *pgxpool.Pool, schema string) (*counts, error) {
	by, err := ledger.CountByStatusAndChannel(ctx, pool)
	if err != nil {
		return nil, err
	}
	c := &counts{Schema: schema, ByStatus: map[string]int64{}, ByChannel: map[string]map[string]int64{}}
	for _, st := range ledger.Statuses {
		c.ByStatus[string(st)] = 0
	}
	for k, n := range by {
		c.ByStatus[string(k.Status)] += n
		if c.ByChannel[k.Channel] == nil {
			c.ByChannel[k.Channel] = map[string]int64{}
		}
		c.ByChannel[k.Channel][string(k.Status)] = n
		c.Total += n
	}
	b, err := outbox.ReadBacklog(ctx, pool)
	if err != nil {
		return nil, err
	}
	c.Unrelayed, c.OldestUnrelayedS = b.Rows, b.Oldest.Seconds()
	if c.Channels, err = health.ReadAll(ctx, pool); err != nil {
		return nil, err
	}
	return c, nil
}

// printChannels says whether each channel sends, and if not, why and
// since when.
func printChannels(w io.Writer, chans []health.Status) {
	for _, ch := range chans {
		fmt.Fprintf(w, "channel %s: %s\n", ch.Channel, ch.Describe())
	}
}

func (c *counts) print(w io.Writer) {
	fmt.Fprintf(w, "schema %s: %d notifications\n", c.Schema, c.Total)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	chans := slices.Sorted(maps.Keys(c.ByChannel))
	if len(chans) > 1 {
		fmt.Fprintf(tw, "\tall\t%s\t\n", strings.Join(chans, "\t"))
	}
	for _, st := range ledger.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t", st, c.ByStatus[string(st)])
		if len(chans) > 1 {
			for _, ch := range chans {
				fmt.Fprintf(tw, "%d\t", c.ByChannel[ch][string(st)])
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	printChannels(w, c.Channels)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.EventID), printable(r.OrderNumber), r.Status, ts(&r.UpdatedAt), printable(dash(r.Wamid)), printable(textcut.Truncate(errText, 100)))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d notifications\n", len(l))
}

// events is `status EVENT_ID|ORDER_NUMBER`: every event that matches.
type events []*eventView

// readEvents finds the events whose event id or order number is term,
// newest first: an order cancelled twice, or an order number that is also
// some event's id, shows them all.
func readEvents(ctx context.Context, pool *pgxpool.Pool, schema, term string) (events, error) {
	ids, err := ledger.Lookup(ctx, pool, term)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no event has event_id or order number %q: check what the OMS wrote (SELECT event_id, payload->>'order_number' FROM %s ORDER BY id DESC LIMIT 10); rows not relayed yet are found by event_id only",
			term, pgx.Identifier{schema, "outbox"}.Sanitize())
	}
	out := make(events, 0, len(ids))
	for _, id := range ids {
		ev, err := readEvent(ctx, pool, schema, id)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func (es events) print(w io.Writer) {
	for i, ev := range es {
		if i > 0 {
			fmt.Fprintln(w)
		}
		ev.print(w)
	}
	if len(es) > 1 {
		fmt.Fprintf(w, "\n%d events match\n", len(es))
	}
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
	Jobs         []ledger.Job         `json:"river_jobs"`
	// LanguageFallbackFrom is the payload's language when the template
	// lacked it and the message went in the channel's default instead.
	LanguageFallbackFrom string         `json:"language_fallback_from,omitempty"`
	Channel              *health.Status `json:"channel,omitempty"` // when the channel holds this queued row
}

func readEvent(ctx context.Context, pool *pgxpool.Pool, schema, eventID string) (*eventView, error) {
	row, err := outbox.Lookup(ctx, pool, eventID)
	if errors.Is(err, outbox.ErrNoRow) {
		return nil, fmt.Errorf("no outbox row has event_id %q: check the id the OMS wrote (SELECT event_id FROM %s ORDER BY id DESC LIMIT 10)",
			eventID, pgx.Identifier{schema, "outbox"}.Sanitize())
	}
	if err != nil {
		return nil, err
	}
	v := &eventView{EventID: eventID, EventType: row.EventType, OutboxID: row.ID, CommittedAt: row.CreatedAt, RelayedAt: row.RelayedAt}
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
	if v.LanguageFallbackFrom, err = ledger.LanguageFallback(ctx, pool, n.ID); err != nil {
		return nil, err
	}
	if n.Status == ledger.StatusQueued || n.Status == ledger.StatusSending {
		chans, err := health.Read(ctx, pool, n.Channel)
		if err != nil {
			return nil, err
		}
		if !chans[0].Healthy() {
			v.Channel = &chans[0]
		}
	}
	v.Jobs, err = ledger.Jobs(ctx, pool, n.ID)
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
	fmt.Fprintf(tw, "order\t%s (%s)\n", printable(dash(n.OrderNumber())), printable(dash(n.CustomerName())))
	fmt.Fprintf(tw, "to\t%s via channel %s\n", dash(ledger.MaskPhone(n.Phone)), printable(n.Channel))
	if v.LanguageFallbackFrom != "" {
		fmt.Fprintf(tw, "template\t%s (%s: fallback, the template lacks the payload's %s)\n", printable(n.Template), printable(n.Language), printable(v.LanguageFallbackFrom))
	} else {
		fmt.Fprintf(tw, "template\t%s (%s)\n", printable(n.Template), printable(n.Language))
	}
	if v.Channel != nil {
		fmt.Fprintf(tw, "held\tchannel %s %s\n", printable(v.Channel.Channel), printable(v.Channel.Describe()))
	}
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
	fmt.Fprintf(tw, "pricing\t%s\n", pricingText(n.Pricing))
	fmt.Fprintf(tw, "times\tsent %s · delivered %s · read %s · failed %s\n", ts(n.SentAt), ts(n.DeliveredAt), ts(n.ReadAt), ts(n.FailedAt))
	tw.Flush()

	fmt.Fprintln(w, "\nhistory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range v.History {
		mark := ""
		if !ev.Applied {
			mark = "(not applied)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", ts(&ev.RecordedAt), ev.Source, printable(ev.Status), mark, printable(textcut.Truncate(detailLine(ev.Detail), 160)))
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

// pricingText is what Meta says the message costs, in one line.
func pricingText(p *ledger.Pricing) string {
	if p == nil {
		return "not known yet (Meta reports it with the sent or delivered status)"
	}
	billable := "billable unknown"
	if p.Billable != nil {
		billable = map[bool]string{true: "billable", false: "not billable"}[*p.Billable]
	}
	return fmt.Sprintf("%s · %s · %s · %s", dash(p.Category), dash(p.Model), dash(p.Type), billable)
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
	if s := string(d); s != "{}" {
		return s
	}
	return ""
}
