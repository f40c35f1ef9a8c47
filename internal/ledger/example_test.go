package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// A LISTEN client of cancelnotify_status, as README.md shows it: each
// NOTIFY carries one or more status changes, one JSON object per line.
func ExampleAnnouncer() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	schema := dbtest.NewSchemaName("cnexample")
	pool, err := cnsql.Open(ctx, dbtest.URL(), schema, 4)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	defer pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
	if _, err := cnsql.Migrate(ctx, pool, schema, nil); err != nil {
		log.Fatal(err)
	}
	l := &ledger.Ledger{Schema: schema}
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN cancelnotify_status"); err != nil {
		log.Fatal(err)
	}

	// The daemon: a row created, then sent, then announced.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ns, err := l.Create(ctx, tx, []ledger.New{{OutboxID: 1, EventID: "order-10482-cancelled", EventCreatedAt: time.Now(),
			Phone: "79001234567", Template: "order_cancelled", Language: "en",
			Params: []string{"Alexey", "10482", "Wireless headphones", "Refund in 3–5 days"}, Status: ledger.StatusQueued}})
		if err != nil {
			return err
		}
		return l.Move(ctx, tx, ns[0], ledger.Move{To: ledger.StatusSending, Attempt: true})
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: schema}).Announce(ctx); err != nil {
		log.Fatal(err)
	}

	// The listener.
	for seen := 0; seen < 2; {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, line := range strings.Split(n.Payload, "\n") { // one status change per line
			var c struct {
				Schema  string `json:"schema"`
				EventID string `json:"event_id"`
				From    string `json:"from"`
				Status  string `json:"status"`
			}
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				log.Fatal(err)
			}
			if c.Schema == schema { // other tests share the channel
				fmt.Printf("%s: %q → %s\n", c.EventID, c.From, c.Status)
				seen++
			}
		}
	}
	// Output:
	// order-10482-cancelled: "" → queued
	// order-10482-cancelled: "queued" → sending
}
