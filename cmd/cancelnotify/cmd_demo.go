package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// demoRow is one cancellation the demo inserts as an OMS would.
type demoRow struct {
	eventID string
	payload map[string]any
}

// demoRows returns the filled-in example of 1MSG's order-cancellation use case, a dozen generated
// cancellations (one to a phone the sandbox fails, one opted out) and two
// invalid rows.
func demoRows() []demoRow {
	rows := []demoRow{{"order-10482-cancelled", map[string]any{
		"phone":         "+7 900 123-45-67",
		"customer_name": "Alexey",
		"order_number":  10482,
		"product_name":  "Wireless headphones",
		"next_step":     "Payment will be refunded within 3–5 business days to the card used for the order.",
	}}}
	names := []string{"Maria", "John", "Aisha", "Carlos", "Yuki", "Olga", "Liam", "Fatima", "Noah", "Sofia", "Ivan", "Emma"}
	products := []string{"Smart watch", "Running shoes", "Coffee grinder", "Desk lamp", "Yoga mat", "Bluetooth speaker",
		"Backpack", "Electric kettle", "Phone case", "Board game", "Air fryer", "Winter jacket"}
	steps := []string{
		"Payment will be refunded within 3–5 business days",
		"The item was out of stock; your refund is on its way",
		"No payment was taken, so there is nothing to refund",
		"Your gift card balance has been restored",
	}
	phones := []string{"+49 151 23456701", "+44 7911 123456", "+1 415 555 0132", "+34 612 345 678", "+81 90 1234 5678",
		"+7 912 345-67-89", "+353 85 123 4567", "+971 50 123 4567", "+61 412 345 678", "+39 312 345 6789",
		"+7 916 000-00-99", "+33 6 12 34 56 78"}
	for i, name := range names {
		p := map[string]any{
			"phone":         phones[i],
			"customer_name": name,
			"order_number":  fmt.Sprint(10483 + i),
			"product_name":  products[i],
			"next_step":     steps[i%len(steps)],
		}
		if i == 8 {
			p["whatsapp_opt_in"] = false
		}
		rows = append(rows, demoRow{fmt.Sprintf("order-%d-cancelled", 10483+i), p})
	}
	rows = append(rows,
		demoRow{"order-10495-cancelled", map[string]any{"phone": "12345", "customer_name": "Bad Phone", "order_number": "10495",
			"product_name": "Headphones", "next_step": "Refund in 5 days"}},
		demoRow{"order-10496-cancelled", map[string]any{"phone": "+44 7911 654321", "customer_name": "No Product", "order_number": "10496",
			"next_step": "Refund in 5 days"}},
	)
	return rows
}

// demoFailSuffix makes the sandbox fail the message to +7 916 000-00-99,
// as WhatsApp does for a number that cannot receive it.
const demoFailSuffix = "0099"

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo")
	s := newSettings(fs, e.getenv)
	dbURL := s.add("DATABASE_URL", "database-url", DefaultDatabaseURL, "the Postgres to run the demo in")
	schemaOpt := s.add("", "schema", "cancelnotify_demo", "schema the demo owns: dropped and recreated on every run")
	timeout := s.add("", "timeout", "30s", "give up when not every row is final after this long")
	lo := addLogOptions(s)
	lo.level.raw = "error" // the live line and the table are the demo's output
	if err := parse(fs, args); err != nil {
		return err
	}
	url := s.databaseURL(dbURL)
	schema := schemaOpt.raw
	if err := cnsql.ValidateSchemaName(schema); err != nil {
		s.fail("--schema: %v", err)
	} else if !strings.Contains(schema, "demo") {
		s.fail("--schema %q: the demo drops its schema, so the name must contain \"demo\"", schema)
	}
	wait := s.duration(timeout)
	logger := lo.logger(s, e.stderr)
	if err := s.err(); err != nil {
		return err
	}
	out := e.stdout
	start := time.Now()

	// 1. A fresh schema.
	pool, err := cnsql.Open(ctx, url, schema, 8)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := cnsql.Drop(ctx, pool, schema); err != nil {
		return fmt.Errorf("cannot reach Postgres at DATABASE_URL (%s): %w; start it or set DATABASE_URL", redactDSN(url), err)
	}
	if _, err := cnsql.Migrate(ctx, pool, schema, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "database  %s, schema %s (recreated and migrated)\n", redactDSN(url), schema)

	// 2. The 1MSG sandbox, in process, on a free port.
	sbcfg := sandbox.DefaultConfig()
	sbcfg.FailSuffixes = []string{demoFailSuffix}
	sb := sandbox.New(sbcfg)
	defer sb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start the sandbox: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	sbURL := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "sandbox   %s/%s (1MSG simulator: sent at once, delivered after %s, read after %s)\n",
		sbURL, sbcfg.Channel, sbcfg.DeliveredAfter, sbcfg.ReadAfter)

	// 3. The daemon, in process, with its webhook registered at the sandbox
	// the way `cancelnotify webhook register` does it at 1MSG.
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	d, err := daemon.New(ctx, daemon.Config{
		DatabaseURL: url, Schema: schema, MaxConns: 20,
		OneMsg:   onemsg.Config{BaseURL: sbURL, Channel: sbcfg.Channel, Token: sbcfg.Token, Timeout: 5 * time.Second},
		Template: sandbox.DefaultTemplate, Namespace: sandbox.DefaultNamespace, Language: sandbox.DefaultLanguage,
		WebhookAddr: "127.0.0.1:0", WebhookSecret: hex.EncodeToString(secret),
		Rate: daemon.DefaultRate, PairInterval: daemon.DefaultPairInterval,
		RelayPollInterval: 500 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: sbURL, Channel: sbcfg.Channel, Token: sbcfg.Token})
	if err != nil {
		return err
	}
	if _, err := api.RegisterWebhook(ctx, d.WebhookURL()); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	fmt.Fprintf(out, "daemon    relay, send and track workers; webhook receiver registered with the sandbox\n")
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// 4. Cancellations, inserted as the OMS would: one row per order, in the
	// cancelling transaction.
	rows := demoRows()
	for _, r := range rows {
		b, _ := json.Marshal(r.payload)
		if err := outbox.Insert(ctx, pool, r.eventID, b); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "inserted  %d cancellations into %s.outbox (1MSG's use-case example, 12 generated, 2 invalid)\n\n", len(rows), schema)

	// 5. Live progress until every row is final.
	// Delivered is final, but a read may follow: wait until the record
	// matches what the sandbox (WhatsApp) ends up reporting.
	settled := func(counts map[string]int) bool {
		want := map[string]int{}
		for _, m := range sb.Messages() {
			if m.Status != m.Planned {
				return false
			}
			want[m.Planned]++
		}
		for st, n := range want {
			if counts[st] != n {
				return false
			}
		}
		return true
	}
	finished, err := demoProgress(ctx, out, pool, len(rows), wait, isTerminal(out), settled)
	stop()
	if runErr := <-done; runErr != nil && err == nil {
		err = runErr
	}
	if err != nil {
		return err
	}

	// 6. The record CRM and finance read.
	if err := demoTable(ctx, out, pool); err != nil {
		return err
	}
	st := sb.Stats()
	fmt.Fprintf(out, "\nsandbox: %d sendTemplate requests, %d messages accepted, %d statuses pushed to the webhook, %d hookInfo polls. Done in %s.\n",
		st.SendRequests, st.Accepted, st.AcksPushed, st.HookInfoCalls, time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(out, "Look closer: ./bin/cancelnotify status --database-url %s --schema %s order-10482-cancelled\n", redactDSN(url), schema)
	if !finished {
		return errors.New("not every row reached a final status in time; see the table above")
	}
	return nil
}

// demoProgress prints queued / sent / delivered / read / failed / rejected
// counts until every row is final or wait passes.
func demoProgress(ctx context.Context, w io.Writer, pool *pgxpool.Pool, total int, wait time.Duration, live bool,
	settled func(counts map[string]int) bool) (bool, error) {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		by, err := ledger.CountByStatus(ctx, pool)
		if err != nil {
			return false, err
		}
		counts := map[string]int{}
		final := 0
		for st, n := range by {
			counts[string(st)] = int(n)
			if st.Final() {
				final += int(n)
			}
		}
		waiting := total
		for _, n := range counts {
			waiting -= n
		}
		line := fmt.Sprintf("queued %d · sending %d · sent %d · delivered %d · read %d · failed %d · rejected %d · skipped %d",
			counts["queued"]+waiting, counts["sending"], counts["sent"], counts["delivered"], counts["read"],
			counts["failed"], counts["rejected"], counts["skipped"])
		done := final == total && settled(counts)
		switch {
		case live:
			fmt.Fprintf(w, "\r%s  [%d/%d final]\033[K", line, final, total)
			if done {
				fmt.Fprintln(w)
			}
		case line != last:
			fmt.Fprintf(w, "%s  [%d/%d final]\n", line, final, total)
		}
		last = line
		if done {
			return true, nil
		}
		if time.Now().After(deadline) {
			if live {
				fmt.Fprintln(w)
			}
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func demoTable(ctx context.Context, w io.Writer, pool *pgxpool.Pool) error {
	rows, err := ledger.ReadReport(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nEVENT\tORDER\tSTATUS\tWAMID\tNOTE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.EventID, r.OrderNumber, r.Status, dash(r.Wamid), textcut.Truncate(r.Error, 90))
	}
	return tw.Flush()
}

// redactDSN hides a password in a database URL for display.
func redactDSN(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DATABASE_URL)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
