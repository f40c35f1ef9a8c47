package chaos

import (
	"slices"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// TestPlanRows checks the plan against the daemon's own validation: a
// valid row that the validator rejected, or an invalid one it queued, would
// make the run blame the daemon for the plan's mistake.
func TestPlanRows(t *testing.T) {
	rows := PlanRows(42, 1000, 0.10, 0.01, 0.3)
	count := map[RowKind]int{}
	ids, orders := map[string]bool{}, map[string]bool{}
	byChannel := map[string]int{}
	rules := map[string]bool{}
	// The daemon of the run: the default channel and SecondChannel.
	v := outbox.Validator{Channels: map[string]outbox.Validator{SecondChannel: {}}}
	for _, r := range rows {
		count[r.Kind]++
		byChannel[r.Channel]++
		if ids[r.EventID] || orders[r.OrderNumber] {
			t.Fatalf("row %d: event id %s or order number %s used twice", r.Index, r.EventID, r.OrderNumber)
		}
		ids[r.EventID], orders[r.OrderNumber] = true, true
		d := v.Validate(outbox.EventTypeOrderCancelled, r.Payload)
		switch r.Kind {
		case KindInvalid:
			rules[r.Invalid] = true
			if d.Status != ledger.StatusRejected {
				t.Errorf("invalid row %s (%s) was %s: %s", r.EventID, r.Invalid, d.Status, r.Payload)
			}
			if r.Invalid == "unknown_channel" && d.Code != "unknown_channel" {
				t.Errorf("invalid row %s names an unknown channel, yet was rejected as %s: %s", r.EventID, d.Code, r.Payload)
			}
			if r.Channel != "" {
				t.Errorf("invalid row %s is planned to go out through %q", r.EventID, r.Channel)
			}
		default:
			if d.Status != ledger.StatusQueued {
				t.Errorf("valid row %s was %s (%s: %s): %s", r.EventID, d.Status, d.Code, d.Reason, r.Payload)
			} else if d.Params[1] != r.OrderNumber {
				t.Errorf("row %s would be sent with order number %q, planned %q", r.EventID, d.Params[1], r.OrderNumber)
			}
			if d.Channel != r.Channel {
				t.Errorf("row %s would go out through %q, planned %q: %s", r.EventID, d.Channel, r.Channel, r.Payload)
			}
		}
	}
	// 1000 committed (10 invalid) and rollbacks making 10% of all.
	if count[KindValid] != 990 || count[KindInvalid] != 10 || count[KindRollback] != 111 {
		t.Errorf("kinds = %v, want 990 valid, 10 invalid, 111 rollback", count)
	}
	// 30% of the 1101 rows with a valid payload name the second channel.
	if byChannel[SecondChannel] != 330 || byChannel[ledger.DefaultChannel] != 771 || byChannel[""] != 10 {
		t.Errorf("rows by channel = %v, want %s 330, default 771, none (invalid) 10", byChannel, SecondChannel)
	}
	if len(rules) < 3 {
		t.Errorf("the invalid rows break only %v: the plan should vary the rule", rules)
	}
	if again := PlanRows(42, 1000, 0.10, 0.01, 0.3); !slices.EqualFunc(rows, again, func(a, b PlannedRow) bool {
		return a.EventID == b.EventID && a.Kind == b.Kind && a.Channel == b.Channel && string(a.Payload) == string(b.Payload)
	}) {
		t.Error("the same seed planned different rows")
	}
	for _, r := range PlanRows(42, 100, 0.10, 0.01, 0) {
		if r.Channel == SecondChannel {
			t.Fatalf("with no second-channel share, row %s names %s: %s", r.EventID, SecondChannel, r.Payload)
		}
	}
}

func TestPlanActions(t *testing.T) {
	const writeFor, after = 60 * time.Second, 20 * time.Second
	for seed := uint64(1); seed <= 50; seed++ {
		acts := PlanActions(seed, 5, 1, writeFor, after)
		var kills []time.Duration
		restarts := 0
		for i, a := range acts {
			if i > 0 && a.At < acts[i-1].At {
				t.Fatalf("seed %d: actions not in order: %v", seed, acts)
			}
			switch a.Kind {
			case ActionKillDaemon:
				kills = append(kills, a.At)
				if a.Pause < 200*time.Millisecond || a.Pause > 2*time.Second {
					t.Errorf("seed %d: restart pause %s out of range", seed, a.Pause)
				}
			case ActionRestartPostgres:
				restarts++
				if a.At < writeFor*3/10 || a.At > writeFor*7/10 {
					t.Errorf("seed %d: Postgres restart at %s is not mid-writing", seed, a.At)
				}
			}
		}
		if len(kills) != 5 || restarts != 1 {
			t.Fatalf("seed %d: %d kills, %d restarts", seed, len(kills), restarts)
		}
		if kills[0] > writeFor || kills[len(kills)-1] < writeFor || kills[len(kills)-1] > writeFor+after {
			t.Errorf("seed %d: kills %v: want one while writing and one after", seed, kills)
		}
	}
}
