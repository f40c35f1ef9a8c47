// Command cancelnotify sends a WhatsApp message through 1MSG when an order is
// cancelled, tracks it to a final status and keeps the record. See README.md.
//
// main only wires: it reads configuration, builds the parts from their
// packages and runs the chosen command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
)

// command is one subcommand.
type command struct {
	name    string
	args    string
	summary string
	example string
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what a command sees of the process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	name   string // the command's name, for usage lines
}

// exitError carries an exit code; a plain error exits 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

var commands []command

func init() {
	commands = []command{
		{"migrate", "", "create or update the schema (River's tables and cancelnotify's)", "cancelnotify migrate", cmdMigrate},
		{"check", "", "preflight: database migrated, 1MSG channel connected, template approved with 4 variables, webhook registered", "cancelnotify check", cmdCheck},
		{"run", "", "run the daemon: relay, workers, webhook receiver, admin endpoints", "cancelnotify run", cmdRun},
		{"sandbox", "", "serve the local 1MSG simulator", "cancelnotify sandbox --addr 127.0.0.1:8089", cmdSandbox},
		{"demo", "", "the whole pipeline on embedded defaults against the built-in sandbox", "cancelnotify demo", cmdDemo},
		{"webhook", "register URL | show", "register the daemon's webhook with 1MSG (keeping other URLs) and turn on ack notifications", "cancelnotify webhook register https://hooks.shop.example", cmdWebhook},
		{"bench", "", "measure throughput, latency and Postgres cost against a separate sandbox and daemon", "cancelnotify bench", cmdBench},
		{"retry", "EVENT_ID… | --status failed [--since 2h]", "re-drive failed or expired notifications (a new send; the history stays)", "cancelnotify retry --status failed --since 2h", cmdRetry},
		{"resolve", "EVENT_ID --sent WAMID | --resend | --abandon", "settle a notification held in_doubt", "cancelnotify resolve order-10482-cancelled --resend", cmdResolve},
		{"status", "[EVENT_ID | ORDER_NUMBER]", "an event's (or an order's) full history and cost, or counts by status", "cancelnotify status 10482", cmdStatus},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], &env{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}))
}

func runMain(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e.name = c.name
		err := c.run(ctx, e, args[1:])
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(e.stderr, "cancelnotify %s: %v\n", c.name, err)
		var ee *exitError
		var ce *configError
		switch {
		case errors.As(err, &ee):
			return ee.code
		case errors.As(err, &ce):
			return 2
		}
		return 1
	}
	hint := ""
	if near := closest(args[0]); near != "" {
		hint = fmt.Sprintf(" (did you mean `cancelnotify %s`?)", near)
	}
	fmt.Fprintf(e.stderr, "cancelnotify: unknown command %q%s; run `cancelnotify help` for the list\n", args[0], hint)
	return 2
}

// closest returns the command a mistyped name most likely meant: one that
// starts with it, or one at most two edits away; "" when none is close.
func closest(name string) string {
	best, bestDist := "", 3
	for _, c := range commands {
		if len(name) >= 2 && strings.HasPrefix(c.name, name) {
			return c.name
		}
		if d := editDistance(name, c.name); d < bestDist {
			best, bestDist = c.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (command names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "cancelnotify: WhatsApp order-cancellation notifications through 1MSG")
	fmt.Fprintln(w, "\nUsage: cancelnotify COMMAND [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\nEvery setting is an environment variable and a flag; `cancelnotify COMMAND --help` lists them.")
}

// newFlagSet returns a flag set whose --help prints the command's usage,
// example and flags. A bad flag gets the one usage line instead (parse).
func newFlagSet(e *env, c string) *flag.FlagSet {
	fs := flag.NewFlagSet(c, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "%s\n\n%s.\n\nExample:\n  %s\n\nFlags:\n", usageLine(c), lookupCommand(c).summary, lookupCommand(c).example)
		fs.SetOutput(e.stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

func lookupCommand(name string) command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return command{name: name}
}

// usageLine is a command's synopsis.
func usageLine(name string) string {
	return strings.TrimSpace(fmt.Sprintf("Usage: cancelnotify %s [flags] %s", name, lookupCommand(name).args))
}

// parse parses args; --help returns flag.ErrHelp (exit 0), a bad flag exits
// 2 with the command's usage line. Flags may follow positional arguments
// (status EVENT_ID --json).
func parse(fs *flag.FlagSet, args []string) error {
	// The flag package calls Usage on every error; the whole flag list is
	// for --help only.
	help := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(interspersed(fs, args))
	fs.Usage = help
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		help()
		return err
	}
	return &exitError{code: 2, err: fmt.Errorf("%w\n%s\nRun `cancelnotify %s --help` for every flag.", err, usageLine(fs.Name()), fs.Name())}
}

// interspersed moves positional arguments after the flags, so that the
// flag package, which stops at the first positional one, sees every flag.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			return append(append(flags, "--"), positional...)
		case !strings.HasPrefix(a, "-") || a == "-":
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package will report it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(positional) > 0 {
		flags = append(flags, "--")
	}
	return append(flags, positional...)
}

// logOptions are the logging settings every long-running command takes.
type logOptions struct{ level, format *option }

func addLogOptions(s *settings) logOptions {
	return logOptions{
		level:  s.add("CANCELNOTIFY_LOG_LEVEL", "log-level", "info", "log level: debug, info, warn or error"),
		format: s.add("CANCELNOTIFY_LOG_FORMAT", "log-format", "auto", "log format: auto (colour on a terminal, plain key=value otherwise), text or json"),
	}
}

// logger builds the process logger from the options, reporting bad values
// through s.
func (l logOptions) logger(s *settings, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.TrimSpace(l.level.raw))); err != nil {
		s.fail("%s = %s is not a log level: use debug, info, warn or error", l.level.name(), l.level.shown())
	}
	switch f := strings.TrimSpace(l.format.raw); f {
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	case "auto", "text", "":
		color := f != "text" && isTerminal(w)
		opts := &tint.Options{Level: level, NoColor: !color, TimeFormat: time.DateTime + ".000"}
		if f == "auto" && s.getenv("JOURNAL_STREAM") != "" {
			// journald stamps every line itself.
			opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			}
		}
		return slog.New(tint.NewHandler(w, opts))
	default:
		s.fail("%s = %s is not a log format: use auto, text or json", l.format.name(), l.format.shown())
		return slog.New(slog.DiscardHandler)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
