package chaos

import (
	"slices"
	"strings"
	"testing"
)

// run builds facts row by row, the way a chaos run collects them.
type run struct{ f Facts }

func (r *run) write(id, order string, kind RowKind, outcome WriteOutcome) *run {
	r.f.Writes = append(r.f.Writes, WriteResult{Row: PlannedRow{EventID: id, OrderNumber: order, Kind: kind}, Outcome: outcome, Attempts: 1})
	return r
}

func (r *run) row(id, status, wamid, code string) *run {
	r.f.Outbox = append(r.f.Outbox, OutboxRow{EventID: id, Status: status, Wamid: wamid, ErrorCode: code})
	return r
}

func (r *run) msg(wamid, order string) *run {
	r.f.Messages = append(r.f.Messages, AcceptedMessage{Wamid: wamid, OrderNumber: order})
	return r
}

// healthy is a run where everything went right: two sent rows (one
// committed after an unknown COMMIT), an invalid row rejected, a failed
// message, a rollback nobody saw.
func healthy() *run {
	r := &run{}
	r.write("e1", "1000001", KindValid, OutcomeCommitted).row("e1", "read", "w1", "").msg("w1", "1000001")
	r.write("e2", "1000002", KindValid, OutcomeFoundAfterUnknown).row("e2", "delivered", "w2", "").msg("w2", "1000002")
	r.write("e3", "1000003", KindInvalid, OutcomeCommitted).row("e3", "rejected", "", "invalid_phone")
	r.write("e4", "1000004", KindValid, OutcomeCommitted).row("e4", "failed", "w4", "131026").msg("w4", "1000004")
	r.write("e5", "1000005", KindRollback, OutcomeRolledBack)
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
			},
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
			name:   "a sent row has two accepted messages",
			facts:  func() *run { return healthy().msg("w1b", "1000001") },
			failed: []string{"sent rows with exactly 1 accepted message", "duplicates (>1 accepted, not in_doubt)"},
			check:  wantList(func(r *Report) []string { return r.Duplicates }, "e1 (2 accepted, read)"),
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
			failed: []string{"sent rows with exactly 1 accepted message"},
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
			for _, name := range want {
				if !strings.Contains(Verdict(r), name) {
					t.Errorf("verdict %q does not name %q", Verdict(r), name)
				}
			}
		})
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
