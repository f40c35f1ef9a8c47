package chaos

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// RowKind is what an OMS-like writer does with one planned cancellation.
type RowKind string

const (
	// KindValid is committed with a payload the daemon must send.
	KindValid RowKind = "valid"
	// KindInvalid is committed with a payload the daemon must reject.
	KindInvalid RowKind = "invalid"
	// KindRollback is inserted and then rolled back: it must never be sent.
	KindRollback RowKind = "rollback"
)

// PlannedRow is one OMS transaction of the run.
type PlannedRow struct {
	Index       int
	EventID     string
	OrderNumber string // unique in the run; params[1] of the message sent for it
	Kind        RowKind
	Invalid     string // which rule an invalid row breaks
	// Channel is the channel the row must go out through: the payload's
	// "channel" key, ledger.DefaultChannel when it has none; "" for an
	// invalid row, which goes out through none.
	Channel string
	Payload []byte // the outbox payload, as JSON
}

// firstOrderNumber keeps every order number of a run seven digits long, so
// one can never be a substring of another in a message body.
const firstOrderNumber = 1_000_000

// PlanRows lays out the run's transactions: committed rows exactly (of
// which invalidShare are invalid) plus enough rolled-back transactions that
// they make rollbackShare of all transactions, in a seeded random order.
// secondShare of the rows with a valid payload (committed or rolled back)
// name SecondChannel in their payload; of the others every third names
// the default channel explicitly and the rest name none. Counts are exact
// rather than drawn so two runs with different seeds are comparable.
func PlanRows(seed uint64, committed int, rollbackShare, invalidShare, secondShare float64) []PlannedRow {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	invalid := int(math.Round(float64(committed) * invalidShare))
	rollbacks := 0
	if rollbackShare > 0 && rollbackShare < 1 {
		rollbacks = int(math.Round(float64(committed) * rollbackShare / (1 - rollbackShare)))
	}
	kinds := make([]RowKind, 0, committed+rollbacks)
	for range invalid {
		kinds = append(kinds, KindInvalid)
	}
	for range committed - invalid {
		kinds = append(kinds, KindValid)
	}
	for range rollbacks {
		kinds = append(kinds, KindRollback)
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	withPayload := len(kinds) - invalid
	second := make([]bool, withPayload)
	for i := range int(math.Round(float64(withPayload) * secondShare)) {
		second[i] = true
	}
	rng.Shuffle(len(second), func(i, j int) { second[i], second[j] = second[j], second[i] })

	rows := make([]PlannedRow, len(kinds))
	for i, k := range kinds {
		n := firstOrderNumber + i
		r := PlannedRow{
			Index:       i,
			EventID:     fmt.Sprintf("order-%d-cancelled", n),
			OrderNumber: strconv.Itoa(n),
			Kind:        k,
		}
		p := validPayload(rng, i, n)
		if k == KindInvalid {
			r.Invalid = invalidRules[rng.IntN(len(invalidRules))]
			r.Payload = breakPayload(p, r.Invalid)
			rows[i] = r
			continue
		}
		r.Channel = ledger.DefaultChannel
		switch {
		case second[0]:
			r.Channel = SecondChannel
			p["channel"] = SecondChannel
		case i%3 == 0:
			p["channel"] = ledger.DefaultChannel // the README allows naming it
		}
		second = second[1:]
		r.Payload = mustJSON(p)
		rows[i] = r
	}
	return rows
}

var (
	names = []string{"Alexey", "Jürgen", "Анна", "María José", "Siobhán O'Brien", "Li Wei", "Fatima", "Ola"}
	goods = []string{"Wireless headphones", "Espresso machine “Barista Pro”", "Детское автокресло",
		"Trail running shoes, size 42", "USB-C hub (7 ports)", "Gift card"}
	steps = []string{
		"Payment will be refunded within 3–5 business days to the card used for the order",
		"No payment was taken, so there is nothing to refund",
		"Your store credit has been restored",
		"Please return the parcel with the prepaid label we e-mailed you",
	}
	// Every notation of one German mobile number the validator accepts.
	phoneFormats = []string{"+49 151 %08d", "+49151%08d", "0049151%08d", "+49 (151) %08d"} // bare digits need CANCELNOTIFY_PHONE_REGION
)

// validPayload is an order.cancelled payload the daemon must send. Each row
// has its own phone, so Meta's per-recipient pacing never delays the run.
func validPayload(rng *rand.Rand, i, orderNumber int) map[string]any {
	var order any = strconv.Itoa(orderNumber)
	if i%2 == 0 {
		order = orderNumber // the README allows a number too
	}
	return map[string]any{
		"phone":         fmt.Sprintf(phoneFormats[rng.IntN(len(phoneFormats))], 10_000_000+i),
		"customer_name": names[rng.IntN(len(names))],
		"order_number":  order,
		"product_name":  goods[rng.IntN(len(goods))],
		"next_step":     steps[rng.IntN(len(steps))],
	}
}

// invalidRules are the ways an invalid row is broken, each one the README
// says is rejected with a reason.
var invalidRules = []string{"bad_phone", "missing_field", "blank_text", "wrong_type", "not_an_object", "unknown_channel"}

func breakPayload(p map[string]any, rule string) []byte {
	switch rule {
	case "bad_phone":
		p["phone"] = "12345"
	case "missing_field":
		delete(p, "product_name")
	case "blank_text":
		p["customer_name"] = " \n\t "
	case "wrong_type":
		p["order_number"] = map[string]any{"id": p["order_number"]}
	case "not_an_object":
		return []byte(`["order", "cancelled"]`)
	case "unknown_channel":
		p["channel"] = "brand-z" // configured in no run
	}
	return mustJSON(p)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and numbers are marshalled here
	}
	return b
}

// ActionKind is a fault the run injects into the processes.
type ActionKind string

const (
	ActionKillDaemon      ActionKind = "kill_daemon"
	ActionRestartPostgres ActionKind = "restart_postgres"
)

// Action is one planned fault, At after the writers start.
type Action struct {
	At   time.Duration
	Kind ActionKind
	// Pause is how long a killed daemon stays down before its restart.
	Pause time.Duration
}

// PlanActions spreads kills over the writing and the time after it (at
// least one of each when there are two or more) and puts the Postgres
// restarts in the middle of the writing, where they hit open transactions
// and commits in flight.
func PlanActions(seed uint64, kills, pgRestarts int, writeFor, after time.Duration) []Action {
	rng := rand.New(rand.NewPCG(seed^0x5bd1e995, seed))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	window := writeFor + after
	var out []Action
	for i := range kills {
		lo, hi := window/20, window
		switch {
		case kills >= 2 && i == 0:
			hi = writeFor // one while the writers write
		case kills >= 2 && i == kills-1:
			lo = writeFor // one after
		}
		out = append(out, Action{At: between(lo, hi), Kind: ActionKillDaemon,
			Pause: between(200*time.Millisecond, 2*time.Second)})
	}
	for range pgRestarts {
		out = append(out, Action{At: between(writeFor*3/10, writeFor*7/10), Kind: ActionRestartPostgres})
	}
	slices.SortStableFunc(out, func(a, b Action) int { return int(a.At - b.At) })
	return out
}
