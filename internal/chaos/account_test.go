package chaos

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// testChannels are a run's two channels.
var testChannels = []ChannelInfo{
	{Name: ledger.DefaultChannel, ID: "sandbox", Template: "order_cancelled", Namespace: "sandbox_ns"},
	{Name: SecondChannel, ID: "chaosbrandb", Template: "brand_b_order_cancelled", Namespace: "brand_b_ns"},
}

// run builds facts row by row, the way a chaos run collects them: a row
// goes out through the default channel unless on names another, and the
// ledger and the sandbox put it where its payload says.
type run struct{ f Facts }

func (r *run) write(id, order string, kind RowKind, outcome WriteOutcome) *run {
	ch := ledger.DefaultChannel
	if kind == KindInvalid {
		ch = ""
	}
	r.f.Writes = append(r.f.Writes, WriteResult{Row: PlannedRow{EventID: id, OrderNumber: order, Kind: kind, Channel: ch}, Outcome: outcome, Attempts: 1})
	return r
}

// on makes the last row written name channel in its payload.
func (r *run) on(channel string) *run {
	r.f.Writes[len(r.f.Writes)-1].Row.Channel = channel
	return r
}

// planned is the channel the row of event id or order names; the ledger's
// default channel for an invalid or unknown row.
func (r *run) planned(match func(PlannedRow) bool) string {
	for _, w := range r.f.Writes {
		if match(w.Row) && w.Row.Channel != "" {
			return w.Row.Channel
		}
	}
	return ledger.DefaultChannel
}

func (r *run) row(id, status, wamid, code string) *run {
	ch := r.planned(func(p PlannedRow) bool { return p.EventID == id })
	if status == "" {
		ch = "" // no notification, no channel
	}
	r.f.Outbox = append(r.f.Outbox, OutboxRow{EventID: id, Channel: ch, Status: status, Wamid: wamid, ErrorCode: code})
	return r
}

// msg is a message the channel of the order's row accepted, with that
// channel's template and token.
func (r *run) msg(wamid, order string) *run {
	ch := r.planned(func(p PlannedRow) bool { return p.OrderNumber == order })
	var info ChannelInfo
	for _, c := range testChannels {
		if c.Name == ch {
			info = c
		}
	}
	r.f.Messages = append(r.f.Messages, AcceptedMessage{Wamid: wamid, OrderNumber: order, Channel: ch,
		Template: info.Template, Namespace: info.Namespace})
	r.f.Requests = append(r.f.Requests, SentRequest{Channel: ch, Outcome: "accepted", TokenOK: true})
	return r
}

// healthy is a run where everything went right: three sent rows (one
// through the second channel, committed after an unknown COMMIT), an
// invalid row rejected, a failed message, a rollback on the second
// channel nobody saw, a request refused with a 5xx.
func healthy() *run {
	r := &run{f: Facts{Channels: testChannels}}
	r.write("e1", "1000001", KindValid, OutcomeCommitted).row("e1", "read", "w1", "").msg("w1", "1000001")
	r.write("e2", "1000002", KindValid, OutcomeFoundAfterUnknown).on(SecondChannel).row("e2", "delivered", "w2", "").msg("w2", "1000002")
	r.write("e3", "1000003", KindInvalid, OutcomeCommitted).row("e3", "rejected", "", "invalid_phone")
	r.write("e4", "1000004", KindValid, OutcomeCommitted).row("e4", "failed", "w4", "131026").msg("w4", "1000004")
	r.write("e5", "1000005", KindRollback, OutcomeRolledBack).on(SecondChannel)
	r.f.Requests = append(r.f.Requests, SentRequest{Channel: SecondChannel, Outcome: "fault_500", TokenOK: true})
	r.f.Kills, r.f.PGRestart, r.f.Quiesced = 5, 1, true
	return r
}

func TestAccount(t *testing.T) {
	tests := []struct {
		name   string
		facts  func() *run
		failed []string // names of the checks that must fail; none = passes
		check  func(t *testing.T, r *Report)
	}{
		{
			name:  "healthy run passes",
			facts: healthy,
			check: func(t *testing.T, r *Report) {
				if r.OutboxRows != 4 || r.BelievedCommitted != 4 || r.AckedCommits != 3 || r.FoundAfterUnknown != 1 {
					t.Errorf("rows: outbox %d believed %d acked %d found %d", r.OutboxRows, r.BelievedCommitted, r.AckedCommits, r.FoundAfterUnknown)
				}
				if r.SentRows != 3 || r.SentExactlyOnce != 3 || r.AcceptedMessages != 3 {
					t.Errorf("sent %d, exactly once %d, accepted %d", r.SentRows, r.SentExactlyOnce, r.AcceptedMessages)
				}
				if r.RejectedByCode["invalid_phone"] != 1 || r.FailedByCode["131026"] != 1 {
					t.Errorf("rejected %v failed %v", r.RejectedByCode, r.FailedByCode)
				}
				if r.Transactions != 5 || r.PlannedRollbacks != 1 || r.PlannedInvalid != 1 || r.PlannedCommits != 4 {
					t.Errorf("plan counts: %+v", r)
				}
				wantChannels(t, r, channelWant{rows: 3, sent: 2, once: 2, accepted: 2, requests: 2, statuses: "failed 1, read 1, rejected 1"},
					channelWant{rows: 1, sent: 1, once: 1, accepted: 1, requests: 2, statuses: "delivered 1"})
			},
		},
		{
			name: "a second-channel row's message went out through the default channel",
			facts: func() *run {
				r := healthy()
				r.f.Messages[1].Channel, r.f.Messages[1].Template, r.f.Messages[1].Namespace = ledger.DefaultChannel, "order_cancelled", "sandbox_ns"
				return r
			},
			failed: []string{"messages accepted through another channel than their row names", exactlyOnceCheck(SecondChannel)},
			check: func(t *testing.T, r *Report) {
				wantList(func(r *Report) []string { return r.WrongChannelMessages },
					"e2 (names brand-b; w2 accepted by default with template sandbox_ns/order_cancelled)")(t, r)
				wantChannels(t, r, channelWant{rows: 3, sent: 2, once: 2, accepted: 3, requests: 2, statuses: "failed 1, read 1, rejected 1"},
					channelWant{rows: 1, sent: 1, once: 0, accepted: 0, requests: 2, statuses: "delivered 1"})
			},
		},
		{
			name: "the right channel sent the default channel's template",
			facts: func() *run {
				r := healthy()
				r.f.Messages[1].Template, r.f.Messages[1].Namespace = "order_cancelled", "sandbox_ns"
				return r
			},
			failed: []string{"messages accepted through another channel than their row names"},
		},
		{
			name: "the ledger put a second-channel row on the default channel",
			facts: func() *run {
				r := healthy()
				r.f.Outbox[1].Channel = ledger.DefaultChannel
				return r
			},
			failed: []string{"rows the ledger put on another channel than their payload names"},
			check: func(t *testing.T, r *Report) {
				wantList(func(r *Report) []string { return r.WrongChannelRows }, "e2 (names brand-b, ledger says default)")(t, r)
				if r.Channels[0].Rows != 4 || r.Channels[1].Rows != 0 {
					t.Errorf("rows by ledger channel: default %d, %s %d; want 4 and 0", r.Channels[0].Rows, SecondChannel, r.Channels[1].Rows)
				}
			},
		},
		{
			name: "a request reached the second channel with another token",
			facts: func() *run {
				r := healthy()
				r.f.Requests = append(r.f.Requests, SentRequest{Channel: SecondChannel, Outcome: "unauthorized"})
				return r
			},
			failed: []string{"sendTemplate requests without the channel's own token"},
			check: func(t *testing.T, r *Report) {
				if r.WrongTokenRequests != 1 || r.Channels[1].WrongToken != 1 || r.Channels[0].WrongToken != 0 || r.Channels[1].Requests != 3 {
					t.Errorf("wrong tokens: total %d, by channel %+v", r.WrongTokenRequests, r.Channels)
				}
			},
		},
		{
			name: "a second-channel row was accepted once on each channel",
			facts: func() *run {
				r := healthy()
				r.f.Messages = append(r.f.Messages, AcceptedMessage{Wamid: "w2b", OrderNumber: "1000002", Channel: ledger.DefaultChannel,
					Template: "order_cancelled", Namespace: "sandbox_ns"})
				return r
			},
			failed: []string{"sent rows with exactly 1 accepted message", "duplicates (>1 accepted, not in_doubt)",
				"messages accepted through another channel than their row names", exactlyOnceCheck(SecondChannel)},
			check: wantList(func(r *Report) []string { return r.Duplicates }, "e2 (2 accepted, delivered)"),
		},
		{
			name: "a status WhatsApp reported never reached the row",
			facts: func() *run {
				r := healthy()
				r.f.Messages[0].Status = "read"   // e1 is read, as WhatsApp said
				r.f.Messages[1].Status = "read"   // e2 stopped at delivered: the read was lost
				r.f.Messages[2].Status = "failed" // e4
				return r
			},
			failed: []string{"final status differs from WhatsApp's last report"},
			check:  wantList(func(r *Report) []string { return r.StatusMismatch }, "e2 (delivered, WhatsApp said read)"),
		},
		{
			name: "a commit the writer saw acknowledged is missing from the outbox",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted)
			},
			failed: []string{"committed rows = rows the writers believe committed"},
			check:  wantList(func(r *Report) []string { return r.LostCommits }, "e6"),
		},
		{
			name: "a row in the outbox no writer committed",
			facts: func() *run {
				return healthy().row("stranger", "read", "w9", "")
			},
			failed: []string{"committed rows = rows the writers believe committed"},
			check:  wantList(func(r *Report) []string { return r.UnbelievedRows }, "stranger"),
		},
		{
			name: "a write never resolved",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeUnresolved)
			},
			failed: []string{"committed rows = rows the writers believe committed"},
		},
		{
			name: "a rolled-back row reached the outbox and the customer",
			facts: func() *run {
				return healthy().row("e5", "read", "w5", "").msg("w5", "1000005")
			},
			failed: []string{"committed rows = rows the writers believe committed", "rolled-back rows sent"},
			check:  wantList(func(r *Report) []string { return r.RolledBackSent }, "e5"),
		},
		{
			name:   "a rolled-back order was accepted by the sandbox",
			facts:  func() *run { return healthy().msg("w5", "1000005") },
			failed: []string{"rolled-back rows sent"},
			check:  wantList(func(r *Report) []string { return r.RolledBackSent }, "e5"),
		},
		{
			name:  "a sent row has two accepted messages",
			facts: func() *run { return healthy().msg("w1b", "1000001") },
			failed: []string{"sent rows with exactly 1 accepted message", "duplicates (>1 accepted, not in_doubt)",
				exactlyOnceCheck(ledger.DefaultChannel)},
			check: wantList(func(r *Report) []string { return r.Duplicates }, "e1 (2 accepted, read)"),
		},
		{
			name: "an in_doubt row with two accepted messages is allowed",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted).row("e6", "in_doubt", "", "outcome_unknown").
					msg("w6a", "1000006").msg("w6b", "1000006")
			},
			check: func(t *testing.T, r *Report) {
				if len(r.InDoubt) != 1 || len(r.InDoubtDuplicates) != 1 || len(r.NotFinal) != 0 {
					t.Errorf("in_doubt %v, in_doubt duplicates %v, not final %v", r.InDoubt, r.InDoubtDuplicates, r.NotFinal)
				}
			},
		},
		{
			name: "a message accepted for a row that recorded none",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted).row("e6", "failed", "", "500").msg("w6", "1000006")
			},
			failed: []string{"accepted but not recorded (no wamid, not in_doubt)"},
		},
		{
			name: "a row still sending whose message was accepted is in flight, not lost",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted).row("e6", "sending", "", "").msg("w6", "1000006")
			},
			failed: []string{"rows without a final status"},
		},
		{
			name: "a recorded wamid the sandbox never accepted for that order",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted).row("e6", "read", "w1", "")
			},
			failed: []string{"sent rows with exactly 1 accepted message", exactlyOnceCheck(ledger.DefaultChannel)},
			check:  wantList(func(r *Report) []string { return r.SentUnknownWamid }, "e6 (w1)"),
		},
		{
			name: "rows left sending and without a notification",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindValid, OutcomeCommitted).row("e6", "sending", "", "").
					write("e7", "1000007", KindValid, OutcomeCommitted).row("e7", "", "", "")
			},
			failed: []string{"rows without a final status"},
			check: wantList(func(r *Report) []string { return r.NotFinal },
				"e6 (sending)", "e7 ((no notification))"),
		},
		{
			name:   "a message that belongs to no row",
			facts:  func() *run { return healthy().msg("w-stray", "4242") },
			failed: []string{"accepted messages that belong to no row"},
			check:  wantList(func(r *Report) []string { return r.StrayMessages }, "w-stray"),
		},
		{
			name: "an invalid row was sent, a valid one rejected",
			facts: func() *run {
				return healthy().write("e6", "1000006", KindInvalid, OutcomeCommitted).row("e6", "delivered", "w6", "").msg("w6", "1000006").
					write("e7", "1000007", KindValid, OutcomeCommitted).row("e7", "rejected", "", "invalid_phone")
			},
			failed: []string{"invalid rows not rejected", "valid rows rejected"},
		},
		{
			name: "jobs pending and a daemon that exited by itself",
			facts: func() *run {
				r := healthy()
				r.f.Pending = []PendingJob{{ID: 7, Kind: "cancelnotify_track", State: "scheduled"}}
				r.f.Exits = []DaemonExit{{Incarnation: 3, ExitCode: 1}}
				return r
			},
			failed: []string{"send/track jobs still pending", "daemon exits nobody asked for"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Account(tt.facts().f)
			var failed []string
			for _, c := range r.Failed() {
				failed = append(failed, c.Name)
			}
			slices.Sort(failed)
			want := slices.Clone(tt.failed)
			slices.Sort(want)
			if !slices.Equal(failed, want) {
				t.Errorf("failed checks = %q, want %q", failed, want)
			}
			if r.Passed != (len(want) == 0) {
				t.Errorf("Passed = %v with failed checks %q", r.Passed, failed)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
			// Every must the table prints points at a check, and the last
			// line names every failed one.
			var b strings.Builder
			if err := Render(&b, r); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "must be ?") {
				t.Errorf("the table has a must line with no check:\n%s", b.String())
			}
			for _, c := range r.Channels {
				if line := c.Name + " (" + c.ID + "): sent rows"; !strings.Contains(b.String(), line) {
					t.Errorf("the table has no line %q:\n%s", line, b.String())
				}
			}
			for _, name := range want {
				if !strings.Contains(Verdict(r), name) {
					t.Errorf("verdict %q does not name %q", Verdict(r), name)
				}
			}
		})
	}
}

// channelWant is what one channel's accounting must say.
type channelWant struct {
	rows, sent, once, accepted, requests int
	statuses                             string
}

func wantChannels(t *testing.T, r *Report, want ...channelWant) {
	t.Helper()
	if len(r.Channels) != len(want) {
		t.Fatalf("%d channels accounted, want %d", len(r.Channels), len(want))
	}
	for i, w := range want {
		c := r.Channels[i]
		var st []string
		for _, kv := range sortedCounts(c.StatusCounts) {
			st = append(st, kv.Key+" "+strconv.Itoa(kv.Count))
		}
		slices.Sort(st)
		got := channelWant{rows: c.Rows, sent: c.SentRows, once: c.SentExactlyOnce, accepted: c.AcceptedMessages,
			requests: c.Requests, statuses: strings.Join(st, ", ")}
		if got != w {
			t.Errorf("channel %s: %+v, want %+v", c.Name, got, w)
		}
	}
}

func wantList(get func(*Report) []string, want ...string) func(*testing.T, *Report) {
	return func(t *testing.T, r *Report) {
		t.Helper()
		if got := get(r); !slices.Equal(got, want) {
			t.Errorf("list = %q, want %q", got, want)
		}
	}
}
