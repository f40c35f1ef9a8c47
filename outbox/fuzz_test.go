package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

// Payload modes of FuzzRelay: how the OMS turns the text into jsonb.
const (
	viaOutboxPayload = iota // cancelnotify.outbox_payload(text), README's advice
	viaCast                 // text::jsonb
	viaNull                 // NULL
)

// FuzzRelay puts generated outbox rows through the real relay, each with an
// ordinary row behind it in the same batch: whatever Postgres stores, the
// row settles (queued, rejected or skipped, with a reason when not queued),
// nothing is left unrelayed, and the row behind is queued with its send job.
// Only what Postgres itself refuses at INSERT (README.md, "How the OMS
// inserts a row") never reaches the relay.
//
// `make test` runs the seeds below and a few hundred generated ones; `make
// fuzz` searches for a minute more (go test -fuzz).
func FuzzRelay(f *testing.F) {
	ctx := context.Background()
	pool, schema := dbtest.New(f)
	r := newRelay(f, pool, schema, 500)
	good := `{"phone": "+49 151 23456789", "customer_name": "C", "order_number": 1, "product_name": "P", "next_step": "N"}`
	seeds := []struct {
		eventID, eventType, payload string
		mode                        int
	}{
		{"order-1", "order.cancelled", good, viaCast},
		{strings.Repeat("x", 7800), "order.cancelled", good, viaCast},
		{strings.Repeat("<", 1300), "order.cancelled", good, viaCast},
		{strings.Repeat("\x1b", 2000), "order.cancelled", good, viaCast},
		{strings.Repeat("é", 100), "order.cancelled", good, viaOutboxPayload},
		{"nul", "order.cancelled", strings.Replace(good, `"C"`, `"C\u0000"`, 1), viaOutboxPayload},
		{"nul-cast", "order.cancelled", strings.Replace(good, `"C"`, `"C\u0000"`, 1), viaCast},
		{"surrogate", "order.cancelled", strings.Replace(good, `"C"`, `"\ud800"`, 1), viaOutboxPayload},
		{"null", "order.cancelled", "", viaNull},
		{"empty-type", "", good, viaCast},
		{"other-type", "order.refunded", good, viaCast},
		{"string", "order.cancelled", `"just text"`, viaCast},
		{"deep", "order.cancelled", strings.Repeat("[", 5000) + strings.Repeat("]", 5000), viaCast},
		{"huge", "order.cancelled", `{"pad":"` + strings.Repeat("p", 200<<10) + `"}`, viaCast},
		{"long-texts", "order.cancelled", fmt.Sprintf(`{"phone": "+49 151 23456789", "customer_name": %q, "order_number": %q, "product_name": %q, "next_step": %q}`,
			strings.Repeat("<\"", 2000), strings.Repeat("\u2028", 2000), strings.Repeat("\u202e", 3000), strings.Repeat("👩\u200d💻", 2000)), viaCast},
		{"opt-out", "order.cancelled", `{"whatsapp_opt_in": false}`, viaCast},
		{"number-phone", "order.cancelled", `{"phone": 79001234567}`, viaCast},
		{"big-number", "order.cancelled", strings.Replace(good, "1,", "1e999999,", 1), viaCast},
	}
	for _, s := range seeds {
		f.Add(s.eventID, s.eventType, s.payload, s.mode)
	}
	gen := rand.New(rand.NewPCG(15, 15))
	for range 300 {
		idLen := 1 + gen.IntN(40)
		if gen.IntN(10) == 0 {
			idLen = 1 + gen.IntN(3000)
		}
		f.Add(genText(gen, idLen), pick(gen, "order.cancelled", "order.cancelled", "order.cancelled", "order.cancelled", "order.cancelled", "order.cancelled", "order.cancelled", "order.cancelled", "", "x"), genPayload(gen), gen.IntN(3))
	}

	var n atomic.Int64
	f.Cleanup(func() {
		rows, err := pool.Query(ctx, `SELECT n.status || coalesce(':' || n.error_code, ''), count(*) FROM notification n
			WHERE n.event_id NOT LIKE 'behind-%' GROUP BY 1 ORDER BY 2 DESC`)
		if err != nil {
			return
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			var c int
			_ = rows.Scan(&k, &c)
			out = append(out, fmt.Sprintf("%s=%d", k, c))
		}
		f.Logf("%d inputs; stored and settled: %s", n.Load(), strings.Join(out, " "))
	})
	f.Fuzz(func(t *testing.T, eventID, eventType, payload string, mode int) {
		i := n.Add(1)
		eventID = fmt.Sprintf("%d-%s", i, eventID) // unique, so ON CONFLICT is not what is tested
		sql := `INSERT INTO outbox (event_id, event_type, payload) VALUES ($1, $2, `
		args := []any{eventID, eventType}
		switch ((mode % 3) + 3) % 3 {
		case viaOutboxPayload:
			sql, args = sql+`outbox_payload($3))`, append(args, payload)
		case viaCast:
			sql, args = sql+`$3::jsonb)`, append(args, payload)
		default:
			sql += `NULL)`
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			return // refused by Postgres at INSERT: the OMS's own transaction fails, nothing stored
		}
		behind := fmt.Sprintf("behind-%d", i)
		insertRow(t, pool, behind, "Maria")
		for {
			got, err := r.Drain(ctx)
			if err != nil {
				t.Fatalf("Drain: %v", err)
			}
			if got == 0 {
				break
			}
		}
		if st, code, reason, jobs := notificationOf(t, pool, eventID); !settled(st, code, reason, jobs) {
			t.Errorf("row %.60q: %s %s %q with %d send jobs; want settled with a reason", eventID, st, code, reason, jobs)
		}
		if st, _, reason, jobs := notificationOf(t, pool, behind); st != "queued" || jobs != 1 {
			t.Errorf("row behind %.60q: %s (%s) with %d jobs; want queued with one", eventID, st, reason, jobs)
		}
		var unrelayed int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE relayed_at IS NULL").Scan(&unrelayed); err != nil || unrelayed != 0 {
			t.Errorf("%d rows unrelayed (%v)", unrelayed, err)
		}
	})
}

// settled: a final decision with a reason, reached by the rules, not by
// the relay's last-resort isolation (relay_failed means a limit is missing).
func settled(status, code, reason string, jobs int) bool {
	switch status {
	case "queued":
		return jobs == 1
	case "rejected", "skipped":
		return jobs == 0 && code != "" && code != "relay_failed" && reason != ""
	}
	return false
}

func pick(g *rand.Rand, options ...string) string { return options[g.IntN(len(options))] }

// genText mixes what breaks encoders: escapes, quotes, controls, bidi,
// emoji, multi-byte letters.
func genText(g *rand.Rand, n int) string {
	alphabet := []string{"a", "Z", "7", " ", "<", ">", "&", `"`, `\`, "\x1b", "\x01", "\t", "\n", "é", "Я", "中", "\u202e", "\u200b", "\u200d", "👩", "💻", "\u2028", "\ufeff", "{", "}"}
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[g.IntN(len(alphabet))])
	}
	return b.String()
}

// genPayload is a JSON-ish text: mostly objects with the right keys and
// wrong values, sometimes not JSON at all.
func genPayload(g *rand.Rand) string {
	value := func() any {
		switch g.IntN(8) {
		case 0:
			return nil
		case 1:
			return g.IntN(2) == 0
		case 2:
			return g.Float64() * 1e12
		case 3:
			return []any{genText(g, 3), 1}
		case 4:
			return map[string]any{"x": genText(g, 5)}
		default:
			return genText(g, g.IntN(1500))
		}
	}
	obj := map[string]any{}
	for _, k := range []string{"phone", "customer_name", "order_number", "product_name", "next_step", "language", "whatsapp_opt_in", "extra"} {
		switch {
		case g.IntN(2) == 0 && k != "language" && k != "whatsapp_opt_in" && k != "extra":
			obj[k] = genText(g, 1+g.IntN(300)) // right type, hostile text
		case k == "language" || k == "whatsapp_opt_in":
			if g.IntN(8) == 0 {
				obj[k] = value()
			}
		case g.IntN(6) > 0:
			obj[k] = value()
		}
	}
	if g.IntN(3) > 0 {
		obj["phone"] = pick(g, "+7 900 123-45-67", "8 (495) 123-45-67", "0049 30 123456", "+1 (201) 555-0123", "79001234567")
	}
	b, _ := json.Marshal(obj)
	switch g.IntN(10) {
	case 0:
		return string(b[:g.IntN(len(b))]) // cut short: invalid JSON
	case 1:
		return strings.Replace(string(b), `"`, `"\u0000`, 1+g.IntN(3))
	case 2:
		return strings.Replace(string(b), `"`, `"\udc00`, 1)
	}
	return string(b)
}
