package chaos

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// WriteOutcome is what a writer knows about its transaction at the end.
type WriteOutcome string

const (
	// OutcomeCommitted: COMMIT returned success.
	OutcomeCommitted WriteOutcome = "committed"
	// OutcomeFoundAfterUnknown: COMMIT failed with an unknown outcome
	// (connection lost) and the row was then found in the outbox.
	OutcomeFoundAfterUnknown WriteOutcome = "found_after_unknown_commit"
	// OutcomeRolledBack: a deliberate rollback.
	OutcomeRolledBack WriteOutcome = "rolled_back"
	// OutcomeUnresolved: the writer gave up (the run was stopped) without
	// knowing; counted as not committed, so the outbox comparison shows it.
	OutcomeUnresolved WriteOutcome = "unresolved"
)

// WriteResult is one planned row and what its writer did.
type WriteResult struct {
	Row     PlannedRow
	Outcome WriteOutcome
	// UnknownCommits counts COMMITs of this row whose outcome was unknown;
	// each was resolved by looking the row up before anything else.
	UnknownCommits int
	Attempts       int
}

// OutboxRow is an outbox row at the end of the run with its notification
// (Status "" when the relay never created one).
type OutboxRow struct {
	EventID   string `json:"event_id"`
	Channel   string `json:"channel,omitempty"` // notification.channel
	Status    string `json:"status"`
	Wamid     string `json:"wamid,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
}

// AcceptedMessage is a message the sandbox accepted: it reached the
// customer, whatever the daemon learnt about it.
type AcceptedMessage struct {
	Wamid       string
	OrderNumber string // params[1]
	Channel     string // the name of the channel that accepted it
	Template    string
	Namespace   string
	Dropped     bool   // accepted, then the connection was closed
	Status      string // the strongest status WhatsApp reported for it
	Planned     string // the status WhatsApp ends it with
}

// SentRequest is a sendTemplate request as a channel of the sandbox
// received it.
type SentRequest struct {
	Channel string // the name of the channel it was sent to
	Outcome string // sandbox.Outcome
	TokenOK bool   // it carried that channel's token
}

// PendingJob is a send or track job not finished at the end.
type PendingJob struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	Args  string `json:"args"`
}

// DaemonExit is a daemon incarnation that ended without being killed.
type DaemonExit struct {
	Incarnation int    `json:"incarnation"`
	ExitCode    int    `json:"exit_code"`
	Log         string `json:"log"`
	After       string `json:"after"` // how long it had run
}

// Facts is everything the run observed, collected before any judgement.
type Facts struct {
	Channels  []ChannelInfo // the default channel first
	Writes    []WriteResult
	Outbox    []OutboxRow
	Messages  []AcceptedMessage // of every channel
	Requests  []SentRequest     // of every channel
	Pending   []PendingJob
	Kills     int
	Exits     []DaemonExit
	PGRestart int
	Wall      time.Duration
	Writing   time.Duration // from the first insert to the last writer's end
	Quiesced  bool          // every row settled and no job pending before the deadline
}

// final reports whether a row's status ends its life (ledger.FinalStatuses);
// in_doubt is held for an operator and counts as settled, listed apart.
func final(status string) bool { return ledger.Status(status).Final() }

const statusInDoubt = string(ledger.StatusInDoubt)

// Check is one "must" of the run.
type Check struct {
	Name string `json:"name"`
	Got  string `json:"got"`
	Want string `json:"want"`
	OK   bool   `json:"ok"`
}

// RunInfo describes the run the report is about; Run fills it.
type RunInfo struct {
	Schema     string `json:"schema"`
	Seed       uint64 `json:"seed"`
	Rows       int    `json:"rows"`
	Writers    int    `json:"writers"`
	Kills      int    `json:"kills_planned"`
	PGRestarts int    `json:"postgres_restarts_planned"`
	Faults     string `json:"faults"`
	// SecondShare is the share of rows with a valid payload that name
	// SecondChannel.
	SecondShare float64         `json:"second_channel_share"`
	LogDir      string          `json:"log_dir,omitempty"` // kept when the run failed or --keep
	Sandbox     *SandboxSummary `json:"sandbox,omitempty"` // every channel together
	// SandboxByChannel is what each channel counted, by channel name.
	SandboxByChannel map[string]*SandboxSummary `json:"sandbox_by_channel,omitempty"`
}

// SandboxSummary is what the sandbox counted, from /_sandbox/stats.
type SandboxSummary struct {
	SendRequests  int64 `json:"send_requests"`
	Accepted      int64 `json:"accepted"`
	Dropped       int64 `json:"dropped"`
	Faulted       int64 `json:"faulted"`
	Throttled     int64 `json:"throttled"`
	Rejected      int64 `json:"rejected"`
	Unauthorized  int64 `json:"unauthorized"`
	HookInfoCalls int64 `json:"hookinfo_calls"`
	MessagesCalls int64 `json:"messages_calls"`
	AcksPushed    int64 `json:"acks_pushed"`
	PushFailures  int64 `json:"webhook_push_failures"`
	PushesDropped int64 `json:"webhook_pushes_dropped"`
}

// Report is the accounting of a run: the numbers of the table, the ids
// behind every non-zero problem count, and the verdicts.
type Report struct {
	Run RunInfo `json:"run"`

	Transactions       int               `json:"transactions"`
	PlannedCommits     int               `json:"planned_commits"`
	PlannedInvalid     int               `json:"planned_invalid"`
	PlannedRollbacks   int               `json:"planned_rollbacks"`
	OutboxRows         int               `json:"outbox_rows"`
	BelievedCommitted  int               `json:"believed_committed"`
	AckedCommits       int               `json:"acked_commits"`
	FoundAfterUnknown  int               `json:"found_after_unknown_commit"`
	UnknownCommits     int               `json:"unknown_commits"`
	UnresolvedWrites   int               `json:"unresolved_writes"`
	WriteAttempts      int               `json:"write_attempts"`
	LostCommits        []string          `json:"lost_commits"`     // believed committed, not in the outbox
	UnbelievedRows     []string          `json:"unbelieved_rows"`  // in the outbox, not believed committed
	RolledBackSent     []string          `json:"rolled_back_sent"` // rolled back, yet in the outbox or accepted by the sandbox
	NotFinal           []string          `json:"not_final"`        // "event_id (status)"
	InDoubt            []string          `json:"in_doubt"`
	StatusCounts       map[string]int    `json:"status_counts"`
	RejectedByCode     map[string]int    `json:"rejected_by_code"`
	RejectedExample    map[string]string `json:"rejected_example"` // one reason per code
	FailedByCode       map[string]int    `json:"failed_by_code"`
	InvalidNotRejected []string          `json:"invalid_not_rejected"`
	ValidRejected      []string          `json:"valid_rejected"`

	AcceptedMessages    int      `json:"accepted_messages"`
	SentRows            int      `json:"sent_rows"` // rows with a wamid
	SentExactlyOnce     int      `json:"sent_exactly_once"`
	SentUnknownWamid    []string `json:"sent_unknown_wamid"`    // wamid not among the sandbox's messages for that order
	Duplicates          []string `json:"duplicates"`            // >1 accepted, row not in_doubt
	InDoubtDuplicates   []string `json:"in_doubt_duplicates"`   // >1 accepted, row in_doubt: allowed
	AcceptedNotRecorded []string `json:"accepted_not_recorded"` // accepted, no wamid, not in_doubt
	StatusMismatch      []string `json:"status_mismatch"`       // final status differs from WhatsApp's last word
	StrayMessages       []string `json:"stray_messages"`        // wamids of messages that belong to no row

	// Channels is the accounting per channel, the default one first.
	Channels             []ChannelReport `json:"channels"`
	WrongChannelRows     []string        `json:"wrong_channel_rows"`     // the ledger put the row on another channel than its payload names
	WrongChannelMessages []string        `json:"wrong_channel_messages"` // accepted through another channel (or template) than the row names
	WrongTokenRequests   int             `json:"wrong_token_requests"`   // sendTemplate requests without the channel's own token

	PendingJobs     []PendingJob `json:"pending_jobs"`
	Kills           int          `json:"daemon_kills"`
	UnexpectedExits []DaemonExit `json:"daemon_unexpected_exits"`
	PGRestarts      int          `json:"postgres_restarts"`
	Wall            string       `json:"wall_time"`
	Writing         string       `json:"writing_time"`
	Quiesced        bool         `json:"quiesced"`

	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
	// Evidence is daemon log lines about the rows behind failed checks.
	Evidence []string `json:"evidence,omitempty"`
}

// ChannelReport is the accounting of one channel.
type ChannelReport struct {
	ChannelInfo
	// Rows counts the outbox rows the ledger put on the channel
	// (notification.channel), StatusCounts their statuses.
	Rows         int            `json:"rows"`
	StatusCounts map[string]int `json:"status_counts"`
	// SentRows counts the rows whose payload names the channel and that
	// have a wamid; SentExactlyOnce those of them with exactly one
	// accepted message, accepted through this channel.
	SentRows        int `json:"sent_rows"`
	SentExactlyOnce int `json:"sent_exactly_once"`
	// AcceptedMessages counts the messages this channel accepted.
	AcceptedMessages int `json:"accepted_messages"`
	// Requests counts the sendTemplate requests it received; WrongToken
	// those without its own token.
	Requests   int `json:"send_requests"`
	WrongToken int `json:"wrong_token_requests"`
}

// exactlyOnceCheck names the per-channel must.
func exactlyOnceCheck(channel string) string {
	return fmt.Sprintf("channel %s: sent rows with exactly 1 accepted message, through it", channel)
}

// Account turns the facts into the report. It only counts and compares, so
// it is tested without Postgres or processes.
func Account(f Facts) *Report {
	r := &Report{
		StatusCounts: map[string]int{}, RejectedByCode: map[string]int{}, RejectedExample: map[string]string{},
		FailedByCode: map[string]int{}, Kills: f.Kills, UnexpectedExits: f.Exits, PGRestarts: f.PGRestart,
		Wall: f.Wall.Round(time.Second).String(), Writing: f.Writing.Round(time.Second).String(),
		Quiesced: f.Quiesced, PendingJobs: f.Pending, AcceptedMessages: len(f.Messages),
	}
	byName := map[string]*ChannelReport{}
	r.Channels = make([]ChannelReport, len(f.Channels))
	for i, c := range f.Channels {
		r.Channels[i] = ChannelReport{ChannelInfo: c, StatusCounts: map[string]int{}}
		byName[c.Name] = &r.Channels[i]
	}
	for _, m := range f.Messages {
		if c, ok := byName[m.Channel]; ok {
			c.AcceptedMessages++
		}
	}
	for _, q := range f.Requests {
		if c, ok := byName[q.Channel]; ok {
			c.Requests++
			if !q.TokenOK {
				c.WrongToken++
			}
		}
		if !q.TokenOK {
			r.WrongTokenRequests++
		}
	}

	planned := map[string]WriteResult{} // by event id
	byOrder := map[string]WriteResult{}
	believed := map[string]bool{}
	for _, w := range f.Writes {
		planned[w.Row.EventID] = w
		byOrder[w.Row.OrderNumber] = w
		r.Transactions++
		r.WriteAttempts += w.Attempts
		r.UnknownCommits += w.UnknownCommits
		switch w.Row.Kind {
		case KindRollback:
			r.PlannedRollbacks++
		case KindInvalid:
			r.PlannedInvalid++
			r.PlannedCommits++
		default:
			r.PlannedCommits++
		}
		switch w.Outcome {
		case OutcomeCommitted:
			r.AckedCommits++
			believed[w.Row.EventID] = true
		case OutcomeFoundAfterUnknown:
			r.FoundAfterUnknown++
			believed[w.Row.EventID] = true
		case OutcomeUnresolved:
			r.UnresolvedWrites++
		}
	}
	r.BelievedCommitted = len(believed)

	// Messages by the order they carry: the one link between what the
	// customer got and the row that asked for it that the daemon cannot
	// fake.
	msgs := map[string][]AcceptedMessage{}
	for _, m := range f.Messages {
		msgs[m.OrderNumber] = append(msgs[m.OrderNumber], m)
	}

	inOutbox := map[string]bool{}
	for _, row := range f.Outbox {
		inOutbox[row.EventID] = true
		w, known := planned[row.EventID]
		if known && w.Row.Kind == KindRollback {
			r.RolledBackSent = append(r.RolledBackSent, row.EventID)
		}
		if !believed[row.EventID] {
			r.UnbelievedRows = append(r.UnbelievedRows, row.EventID)
		}
		r.OutboxRows++
		r.accountStatus(row, w, known)
		if c, ok := byName[row.Channel]; ok {
			c.Rows++
			c.StatusCounts[row.Status]++
		}
		if known {
			r.accountChannel(row, w, msgs[w.Row.OrderNumber], byName)
			r.accountMessages(row, msgs[w.Row.OrderNumber])
		}
	}
	for id := range believed {
		if !inOutbox[id] {
			r.LostCommits = append(r.LostCommits, id)
		}
	}
	for order, ms := range msgs {
		w, known := byOrder[order]
		switch {
		case known && w.Row.Kind == KindRollback:
			if !inOutbox[w.Row.EventID] { // already listed when in the outbox
				r.RolledBackSent = append(r.RolledBackSent, w.Row.EventID)
			}
		case known && inOutbox[w.Row.EventID]:
		default:
			for _, m := range ms {
				r.StrayMessages = append(r.StrayMessages, m.Wamid)
			}
		}
	}
	for _, s := range []*[]string{&r.LostCommits, &r.UnbelievedRows, &r.RolledBackSent, &r.NotFinal, &r.InDoubt,
		&r.InvalidNotRejected, &r.ValidRejected, &r.SentUnknownWamid, &r.Duplicates, &r.InDoubtDuplicates,
		&r.AcceptedNotRecorded, &r.StrayMessages, &r.WrongChannelRows, &r.WrongChannelMessages} {
		if *s == nil {
			*s = []string{} // [] rather than null in --json
		}
		slices.Sort(*s)
	}
	if r.PendingJobs == nil {
		r.PendingJobs = []PendingJob{}
	}
	if r.UnexpectedExits == nil {
		r.UnexpectedExits = []DaemonExit{}
	}
	r.judge()
	return r
}

// accountStatus counts the row's status and checks it against the kind of
// payload the writer put in.
func (r *Report) accountStatus(row OutboxRow, w WriteResult, known bool) {
	st := row.Status
	if st == "" {
		st = "(no notification)"
	}
	r.StatusCounts[st]++
	switch {
	case row.Status == statusInDoubt:
		r.InDoubt = append(r.InDoubt, row.EventID)
	case !final(row.Status):
		r.NotFinal = append(r.NotFinal, fmt.Sprintf("%s (%s)", row.EventID, st))
	}
	switch row.Status {
	case "rejected":
		r.RejectedByCode[row.ErrorCode]++
		if _, ok := r.RejectedExample[row.ErrorCode]; !ok {
			r.RejectedExample[row.ErrorCode] = row.Error
		}
	case "failed":
		r.FailedByCode[row.ErrorCode]++
	}
	if !known || !final(row.Status) {
		return // not final: already counted above
	}
	if w.Row.Kind == KindInvalid && row.Status != "rejected" {
		r.InvalidNotRejected = append(r.InvalidNotRejected, fmt.Sprintf("%s (%s, %s)", row.EventID, w.Row.Invalid, row.Status))
	}
	if w.Row.Kind == KindValid && row.Status == "rejected" {
		r.ValidRejected = append(r.ValidRejected, fmt.Sprintf("%s (%s: %s)", row.EventID, row.ErrorCode, row.Error))
	}
}

// accountChannel checks that a row went out through the channel its
// payload names: the ledger's notification.channel, and the channel,
// template and namespace of every message accepted for its order.
func (r *Report) accountChannel(row OutboxRow, w WriteResult, ms []AcceptedMessage, byName map[string]*ChannelReport) {
	want := w.Row.Channel
	if want == "" {
		return // an invalid row goes out through no channel
	}
	if row.Status != "" && row.Channel != want {
		r.WrongChannelRows = append(r.WrongChannelRows, fmt.Sprintf("%s (names %s, ledger says %s)", row.EventID, want, row.Channel))
	}
	c, ok := byName[want]
	for _, m := range ms {
		if !ok || m.Channel != want || m.Template != c.Template || m.Namespace != c.Namespace {
			r.WrongChannelMessages = append(r.WrongChannelMessages, fmt.Sprintf("%s (names %s; %s accepted by %s with template %s/%s)",
				row.EventID, want, m.Wamid, m.Channel, m.Namespace, m.Template))
		}
	}
	if !ok || row.Wamid == "" {
		return
	}
	c.SentRows++
	if len(ms) == 1 && ms[0].Wamid == row.Wamid && ms[0].Channel == want {
		c.SentExactlyOnce++
	}
}

// accountMessages compares what the ledger says was sent for a row with
// what the sandbox accepted for its order.
func (r *Report) accountMessages(row OutboxRow, ms []AcceptedMessage) {
	if len(ms) > 1 {
		entry := fmt.Sprintf("%s (%d accepted, %s)", row.EventID, len(ms), orNone(row.Status))
		if row.Status == statusInDoubt {
			r.InDoubtDuplicates = append(r.InDoubtDuplicates, entry)
		} else {
			r.Duplicates = append(r.Duplicates, entry)
		}
	}
	if row.Wamid == "" {
		// A row still on its way (sending, queued) may be between 1MSG's
		// acceptance and the commit of its wamid: "not final" covers it.
		if len(ms) > 0 && final(row.Status) {
			r.AcceptedNotRecorded = append(r.AcceptedNotRecorded, fmt.Sprintf("%s (%s, sandbox has %s)", row.EventID, orNone(row.Status), ms[0].Wamid))
		}
		return
	}
	r.SentRows++
	if !slices.ContainsFunc(ms, func(m AcceptedMessage) bool { return m.Wamid == row.Wamid }) {
		r.SentUnknownWamid = append(r.SentUnknownWamid, fmt.Sprintf("%s (%s)", row.EventID, row.Wamid))
		return
	}
	if len(ms) == 1 {
		r.SentExactlyOnce++
	}
	for _, m := range ms {
		if m.Wamid == row.Wamid && m.Status != "" && m.Status != row.Status && row.Status != statusInDoubt {
			r.StatusMismatch = append(r.StatusMismatch, fmt.Sprintf("%s (%s, WhatsApp said %s)", row.EventID, row.Status, m.Status))
		}
	}
}

func orNone(status string) string {
	if status == "" {
		return "no notification"
	}
	return status
}

// judge fills the checks: every "must" of the chaos run.
func (r *Report) judge() {
	zero := func(name string, ids []string) {
		r.Checks = append(r.Checks, Check{Name: name, Got: fmt.Sprint(len(ids)), Want: "0", OK: len(ids) == 0})
	}
	r.Checks = append(r.Checks, Check{
		Name: "committed rows = rows the writers believe committed",
		Got:  fmt.Sprintf("%d / %d", r.OutboxRows, r.BelievedCommitted),
		Want: "equal, same event ids",
		OK:   len(r.LostCommits) == 0 && len(r.UnbelievedRows) == 0 && r.UnresolvedWrites == 0,
	})
	zero("rolled-back rows sent", r.RolledBackSent)
	zero("rows without a final status", r.NotFinal)
	r.Checks = append(r.Checks, Check{
		Name: "sent rows with exactly 1 accepted message",
		Got:  fmt.Sprintf("%d of %d", r.SentExactlyOnce, r.SentRows),
		Want: "all",
		OK:   r.SentExactlyOnce == r.SentRows,
	})
	zero("duplicates (>1 accepted, not in_doubt)", r.Duplicates)
	zero("accepted but not recorded (no wamid, not in_doubt)", r.AcceptedNotRecorded)
	zero("accepted messages that belong to no row", r.StrayMessages)
	zero("final status differs from WhatsApp's last report", r.StatusMismatch)
	zero("rows the ledger put on another channel than their payload names", r.WrongChannelRows)
	zero("messages accepted through another channel than their row names", r.WrongChannelMessages)
	r.Checks = append(r.Checks, Check{Name: "sendTemplate requests without the channel's own token",
		Got: fmt.Sprint(r.WrongTokenRequests), Want: "0", OK: r.WrongTokenRequests == 0})
	for _, c := range r.Channels {
		r.Checks = append(r.Checks, Check{
			Name: exactlyOnceCheck(c.Name),
			Got:  fmt.Sprintf("%d of %d", c.SentExactlyOnce, c.SentRows),
			Want: "all",
			OK:   c.SentExactlyOnce == c.SentRows,
		})
	}
	zero("invalid rows not rejected", r.InvalidNotRejected)
	zero("valid rows rejected", r.ValidRejected)
	r.Checks = append(r.Checks, Check{Name: "send/track jobs still pending", Got: fmt.Sprint(len(r.PendingJobs)), Want: "0", OK: len(r.PendingJobs) == 0})
	r.Checks = append(r.Checks, Check{Name: "daemon exits nobody asked for", Got: fmt.Sprint(len(r.UnexpectedExits)), Want: "0", OK: len(r.UnexpectedExits) == 0})
	r.Passed = true
	for _, c := range r.Checks {
		r.Passed = r.Passed && c.OK
	}
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// ProblemEventIDs returns the event ids behind failed checks, for pulling
// their lines out of the daemon logs; at most limit.
func (r *Report) ProblemEventIDs(limit int) []string {
	var out []string
	seen := map[string]bool{}
	for _, list := range [][]string{r.Duplicates, r.AcceptedNotRecorded, r.StatusMismatch, r.SentUnknownWamid, r.RolledBackSent,
		r.WrongChannelRows, r.WrongChannelMessages,
		r.LostCommits, r.NotFinal, r.UnbelievedRows, r.InvalidNotRejected, r.ValidRejected} {
		for _, entry := range list {
			id := firstField(entry)
			if !seen[id] && len(out) < limit {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

func firstField(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

// sortedCounts returns a count map as (key, count) pairs, largest first.
func sortedCounts(m map[string]int) []struct {
	Key   string
	Count int
} {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]struct {
		Key   string
		Count int
	}, len(keys))
	for i, k := range keys {
		out[i].Key, out[i].Count = k, m[k]
	}
	return out
}
