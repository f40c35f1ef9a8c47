package main

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/jobs"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// operatorOptions are the settings of the commands that change rows.
type operatorOptions struct {
	db       dbOptions
	callback *option
}

func addOperatorOptions(s *settings) operatorOptions {
	return operatorOptions{
		db:       addDBOptions(s),
		callback: s.add("CANCELNOTIFY_CALLBACK_URL", "callback-url", "", "as for run: changes made here are called back to the CRM too"),
	}
}

// open connects for an operator command. Its changes have the effects the
// daemon's have (jobs.OnChange). Call after the settings are checked.
func (o operatorOptions) open(ctx context.Context, url, schema string) (*redrive.Operator, func(), error) {
	pool, err := cnsql.Open(ctx, url, schema, 4)
	if err != nil {
		return nil, nil, err
	}
	if err := cnsql.Check(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, nil, err
	}
	// Insert-only: the daemon's clients work the jobs.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	l := &ledger.Ledger{Schema: schema, OnChange: jobs.OnChange(client, schema, strings.TrimSpace(o.callback.raw) != "")}
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return &redrive.Operator{Pool: pool, Jobs: client, Ledger: l, Who: who}, pool.Close, nil
}

func cmdRetry(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "retry")
	s := newSettings(fs, e.getenv)
	oo := addOperatorOptions(s)
	status := s.add("", "status", "", "re-drive every notification in this status (failed or expired)")
	since := s.add("", "since", "0s", "with --status: only those changed within this long, e.g. 2h")
	codes := s.add("", "error-code", "", "with --status: only those whose error_code is one of these, comma-separated, e.g. http_401,132015")
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := oo.db.values(s)
	window := s.duration(since)
	var filter *redrive.Filter
	switch {
	case status.raw != "" && fs.NArg() > 0:
		s.fail("give EVENT_IDs or --status, not both")
	case status.raw != "":
		st, err := ledger.ParseStatus(status.raw)
		if err != nil || !st.Retryable() {
			s.fail("--status %q: retry re-drives failed or expired notifications", status.raw)
		}
		filter = &redrive.Filter{Statuses: []ledger.Status{st}, ErrorCodes: errorCodes(codes.raw), Since: window, Limit: 10000}
	case codes.raw != "":
		s.fail("--error-code selects among --status failed or expired: add --status failed")
	case fs.NArg() == 0:
		return usageError("name the events to retry (cancelnotify retry EVENT_ID…) or select them (cancelnotify retry --status failed --since 2h)")
	}
	if err := s.err(); err != nil {
		return err
	}
	op, closeDB, err := oo.open(ctx, url, schema)
	if err != nil {
		return err
	}
	defer closeDB()
	ids := fs.Args()
	if filter != nil {
		if ids, err = redrive.Find(ctx, op.Pool, *filter); err != nil {
			return err
		}
		if len(ids) == 0 {
			with := ""
			if len(filter.ErrorCodes) > 0 {
				with = " with error code " + strings.Join(filter.ErrorCodes, " or ")
			}
			fmt.Fprintf(e.stdout, "retry: no %s notifications%s changed within %s; nothing to do\n", status.raw, with, sinceText(window))
			return nil
		}
	}
	return report(e, "retry", "re-queued", op.Retry(ctx, ids))
}

// errorCodes splits --error-code's comma-separated list.
func errorCodes(raw string) []string {
	var out []string
	for _, c := range strings.Split(raw, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func sinceText(d time.Duration) string {
	if d == 0 {
		return "any time"
	}
	return d.String()
}

func cmdResolve(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "resolve")
	s := newSettings(fs, e.getenv)
	oo := addOperatorOptions(s)
	sent := s.add("", "sent", "", "the message did go out: its wamid (from the 1MSG dashboard or GET /messages)")
	resend := s.addBool("", "resend", false, "the message did not go out: send it again")
	abandon := s.addBool("", "abandon", false, "give up: mark it failed without sending")
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := oo.db.values(s)
	r := redrive.Resolution{SentAs: strings.TrimSpace(sent.raw), Resend: s.boolean(resend), Abandon: s.boolean(abandon)}
	actions := 0
	for _, b := range []bool{r.SentAs != "", r.Resend, r.Abandon} {
		if b {
			actions++
		}
	}
	if fs.NArg() != 1 || actions != 1 {
		return usageError("name one in_doubt event and exactly one action: cancelnotify resolve EVENT_ID --sent WAMID | --resend | --abandon")
	}
	if err := s.err(); err != nil {
		return err
	}
	op, closeDB, err := oo.open(ctx, url, schema)
	if err != nil {
		return err
	}
	defer closeDB()
	return report(e, "resolve", "settled", []redrive.Outcome{op.Resolve(ctx, fs.Arg(0), r)})
}

// report prints one line per outcome and a summary; it fails when any
// outcome failed.
func report(e *env, verb, done string, outs []redrive.Outcome) error {
	var failed []string
	ok := 0
	for _, o := range outs {
		if o.Err != nil {
			failed = append(failed, o.EventID)
			fmt.Fprintf(e.stdout, "  %s: not changed: %s\n", printable(o.EventID), printable(o.Err.Error()))
			continue
		}
		ok++
		fmt.Fprintf(e.stdout, "  %s: %s → %s\n", printable(o.EventID), o.From, o.To)
	}
	fmt.Fprintf(e.stdout, "%s: %d %s, %d not changed\n", verb, ok, done, len(failed))
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, ", ") + " not changed (see above)")
	}
	return nil
}
