package chaos

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/cancelnotify/cancelnotify/internal/textcut"
)

// listLimit is how many ids a table line shows; --json has them all.
const listLimit = 10

// Render writes the report as the one accounting table of the run, ending
// with a line that says whether it passed and, if not, which musts failed.
func Render(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cancelnotify chaos run: %d rows, %d writers, seed %d, schema %s\n",
		r.Run.Rows, r.Run.Writers, r.Run.Seed, r.Run.Schema)
	fmt.Fprintf(&b, "sandbox faults: %s\n", r.Run.Faults)
	var chans []string
	for i, c := range r.Channels {
		share := 1 - r.Run.SecondShare
		if i > 0 {
			share = r.Run.SecondShare
		}
		chans = append(chans, fmt.Sprintf("%s (%s, template %s/%s, %s of valid rows)", c.Name, c.ID, c.Namespace, c.Template, pct(share)))
	}
	if len(chans) > 0 {
		fmt.Fprintf(&b, "channels: %s\n", strings.Join(chans, "; "))
	}
	b.WriteString("\n")

	var t table
	line := func(label string, value any, note ...string) {
		t.add(tableRow{label: label, value: fmt.Sprint(value), note: strings.Join(note, " ")})
	}
	must := func(label string, value any, check string) {
		c := r.check(check)
		verdict := "ok"
		if !c.OK {
			verdict = "FAIL"
		}
		t.add(tableRow{label: label, value: fmt.Sprint(value), note: "must be " + c.Want, verdict: verdict})
	}
	section := func(title string) { t.add(tableRow{text: title}) }
	note := func(text string) { t.add(tableRow{text: "      " + text}) }
	ids := func(label string, list []string) {
		if len(list) == 0 {
			return
		}
		more := ""
		if len(list) > listLimit {
			more = fmt.Sprintf(" … and %d more (--json lists all)", len(list)-listLimit)
		}
		note(label + ": " + strings.Join(list[:min(len(list), listLimit)], ", ") + more)
	}

	section("ROWS")
	line("OMS transactions", r.Transactions, fmt.Sprintf("%d to commit (%d invalid), %d rolled back; %d attempts",
		r.PlannedCommits, r.PlannedInvalid, r.PlannedRollbacks, r.WriteAttempts))
	must("committed rows (outbox) / writers believe committed", fmt.Sprintf("%d / %d", r.OutboxRows, r.BelievedCommitted),
		"committed rows = rows the writers believe committed")
	line("  COMMIT acknowledged", r.AckedCommits)
	line("  COMMIT outcome unknown, row found by lookup", r.FoundAfterUnknown, fmt.Sprintf("of %d unknown COMMITs", r.UnknownCommits))
	if r.UnresolvedWrites > 0 {
		line("  writes never resolved (run stopped)", r.UnresolvedWrites)
	}
	ids("believed committed, missing from the outbox", r.LostCommits)
	ids("in the outbox, not believed committed", r.UnbelievedRows)
	must("rolled-back rows sent (outbox or sandbox)", len(r.RolledBackSent), "rolled-back rows sent")
	ids("rolled back yet sent", r.RolledBackSent)
	must("rows without a final status", len(r.NotFinal), "rows without a final status")
	ids("not final", r.NotFinal)
	line("in_doubt rows (settled, held for an operator)", len(r.InDoubt))
	ids("in_doubt", r.InDoubt)
	var st []string
	for _, kv := range sortedCounts(r.StatusCounts) {
		st = append(st, fmt.Sprintf("%s %d", kv.Key, kv.Count))
	}
	line("statuses", "", strings.Join(st, ", "))
	must("invalid rows not rejected", len(r.InvalidNotRejected), "invalid rows not rejected")
	ids("invalid, not rejected", r.InvalidNotRejected)
	must("valid rows rejected", len(r.ValidRejected), "valid rows rejected")
	ids("valid, rejected", r.ValidRejected)

	section("MESSAGES (accepted by the sandbox, matched to rows by order number)")
	line("accepted messages", r.AcceptedMessages)
	must("sent rows (wamid) with exactly 1 accepted message", fmt.Sprintf("%d of %d", r.SentExactlyOnce, r.SentRows),
		"sent rows with exactly 1 accepted message")
	ids("wamid unknown to the sandbox for that order", r.SentUnknownWamid)
	must("duplicates: >1 accepted, row not in_doubt", len(r.Duplicates), "duplicates (>1 accepted, not in_doubt)")
	ids("duplicates", r.Duplicates)
	line("in_doubt rows with >1 accepted", len(r.InDoubtDuplicates), "allowed")
	ids("in_doubt with >1", r.InDoubtDuplicates)
	must("accepted, but the row has no wamid (not in_doubt)", len(r.AcceptedNotRecorded),
		"accepted but not recorded (no wamid, not in_doubt)")
	ids("accepted, not recorded", r.AcceptedNotRecorded)
	must("accepted messages that belong to no row", len(r.StrayMessages), "accepted messages that belong to no row")
	ids("stray wamids", r.StrayMessages)
	must("final status differs from WhatsApp's last report", len(r.StatusMismatch), "final status differs from WhatsApp's last report")
	ids("status mismatch", r.StatusMismatch)

	if len(r.Channels) > 0 {
		section("CHANNELS (rows by notification.channel; sent rows by the channel the payload names)")
		for _, c := range r.Channels {
			must(fmt.Sprintf("%s (%s): sent rows with 1 message through it", c.Name, c.ID),
				fmt.Sprintf("%d of %d", c.SentExactlyOnce, c.SentRows), exactlyOnceCheck(c.Name))
			var st []string
			for _, kv := range sortedCounts(c.StatusCounts) {
				st = append(st, fmt.Sprintf("%s %d", kv.Key, kv.Count))
			}
			if len(st) == 0 {
				st = []string{"none"}
			}
			text := fmt.Sprintf("%d rows (%s); accepted %d; sendTemplate requests %d", c.Rows, strings.Join(st, ", "),
				c.AcceptedMessages, c.Requests)
			if s := r.Run.SandboxByChannel[c.Name]; s != nil {
				text += fmt.Sprintf(" (faulted %d, throttled %d, answer dropped %d, 401 %d)", s.Faulted, s.Throttled, s.Dropped, s.Unauthorized)
			}
			note(text)
		}
		must("rows the ledger put on another channel", len(r.WrongChannelRows), "rows the ledger put on another channel than their payload names")
		ids("ledger channel differs", r.WrongChannelRows)
		must("messages through another channel than the row names", len(r.WrongChannelMessages),
			"messages accepted through another channel than their row names")
		ids("wrong channel", r.WrongChannelMessages)
		must("sendTemplate requests without the channel's own token", r.WrongTokenRequests,
			"sendTemplate requests without the channel's own token")
	}

	section("REJECTED rows by reason")
	if len(r.RejectedByCode) == 0 {
		line("(none)", "")
	}
	for _, kv := range sortedCounts(r.RejectedByCode) {
		line(kv.Key, kv.Count, "e.g. "+textcut.Truncate(r.RejectedExample[kv.Key], 70))
	}
	section("FAILED rows by error code")
	if len(r.FailedByCode) == 0 {
		line("(none)", "")
	}
	for _, kv := range sortedCounts(r.FailedByCode) {
		line(kv.Key, kv.Count)
	}

	section("CHAOS")
	line("daemon kills (SIGKILL)", r.Kills, fmt.Sprintf("planned %d", r.Run.Kills))
	must("daemon exits nobody asked for", len(r.UnexpectedExits), "daemon exits nobody asked for")
	for _, e := range r.UnexpectedExits {
		note(fmt.Sprintf("incarnation %d exited with code %d after %s; log %s", e.Incarnation, e.ExitCode, e.After, e.Log))
	}
	line("Postgres restarts", r.PGRestarts, fmt.Sprintf("planned %d", r.Run.PGRestarts))
	must("send/track jobs still pending", len(r.PendingJobs), "send/track jobs still pending")
	for i, j := range r.PendingJobs {
		if i == listLimit {
			note(fmt.Sprintf("… and %d more", len(r.PendingJobs)-listLimit))
			break
		}
		note(fmt.Sprintf("job %d %s %s %s", j.ID, j.Kind, j.State, textcut.Truncate(j.Args, 80)))
	}
	if s := r.Run.Sandbox; s != nil {
		line("sandbox sendTemplate requests", s.SendRequests, fmt.Sprintf("accepted %d (answer dropped %d), faulted %d, throttled %d, rejected %d",
			s.Accepted, s.Dropped, s.Faulted, s.Throttled, s.Rejected))
		line("sandbox history / hookInfo calls", fmt.Sprintf("%d / %d", s.MessagesCalls, s.HookInfoCalls),
			fmt.Sprintf("acks pushed %d, push failures %d, pushes given up %d", s.AcksPushed, s.PushFailures, s.PushesDropped))
	}
	quiet := "quiescent"
	if !r.Quiesced {
		quiet = "NOT quiescent at the deadline"
	}
	line("wall time", r.Wall, fmt.Sprintf("writing %s; %s", r.Writing, quiet))
	t.write(&b)

	if len(r.Evidence) > 0 {
		b.WriteString("\nEVIDENCE (daemon log lines about the rows above)\n")
		for _, l := range r.Evidence {
			b.WriteString("  " + l + "\n")
		}
	}
	if r.Run.LogDir != "" {
		fmt.Fprintf(&b, "\nlogs: %s\n", r.Run.LogDir)
	}
	b.WriteString("\n" + Verdict(r) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// table aligns label, value and note columns; text rows (sections, id
// lists) are printed as they are and do not widen the columns.
type table struct{ rows []tableRow }

type tableRow struct {
	text                        string
	label, value, note, verdict string
}

func (t *table) add(r tableRow) { t.rows = append(t.rows, r) }

func (t *table) write(b *strings.Builder) {
	lw, vw, nw := 0, 0, 0
	for _, r := range t.rows {
		if r.text == "" {
			lw = max(lw, utf8.RuneCountInString(r.label))
			vw = max(vw, utf8.RuneCountInString(r.value))
			if r.verdict != "" {
				nw = max(nw, utf8.RuneCountInString(r.note))
			}
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s))) }
	for _, r := range t.rows {
		var l string
		switch {
		case r.text != "":
			l = r.text
		case r.verdict != "":
			l = "  " + pad(r.label, lw) + "  " + pad(r.value, vw) + "  " + pad(r.note, nw) + "  " + r.verdict
		default:
			l = "  " + pad(r.label, lw) + "  " + pad(r.value, vw) + "  " + r.note
		}
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
}

// Verdict is the table's last line: PASS, or FAIL with every must that
// failed.
func Verdict(r *Report) string {
	if r.Passed {
		return "RESULT: PASS, every must holds"
	}
	var names []string
	for _, c := range r.Failed() {
		names = append(names, fmt.Sprintf("%s (got %s, must be %s)", c.Name, c.Got, c.Want))
	}
	return "RESULT: FAIL: " + strings.Join(names, "; ")
}

func (r *Report) check(name string) Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	// A label pointing at no check is a bug in Render, not in the daemon.
	return Check{Name: name, Want: "?", OK: false}
}
