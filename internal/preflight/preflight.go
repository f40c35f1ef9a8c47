// Package preflight checks, before the daemon relies on them, the things it
// cannot fix itself: the database is migrated, the 1MSG channel is
// connected, the configured template exists, is approved and takes four body
// variables, and 1MSG pushes statuses to our webhook. `cancelnotify check`
// prints the report; `cancelnotify run` logs it and refuses to start when
// the template is missing.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/onemsg"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// API is what the checks read from 1MSG; *onemsg.Client implements it.
type API interface {
	Status(ctx context.Context) (*onemsg.ChannelStatus, error)
	Templates(ctx context.Context) ([]onemsg.Template, error)
	Webhooks(ctx context.Context) ([]string, error)
	Settings(ctx context.Context) (*onemsg.Settings, error)
}

// Level says how bad a finding is.
type Level string

const (
	OK   Level = "ok"
	Warn Level = "warn" // works, but not as it should (e.g. webhooks off)
	Fail Level = "fail" // sends will fail or cannot be checked
)

// Finding is one check's result.
type Finding struct {
	Name   string `json:"name"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
}

// Report is every finding, and the template as 1MSG has it.
type Report struct {
	Findings []Finding `json:"findings"`
	// TemplateMissing is set when no template of the configured name
	// exists on the channel: run refuses to start.
	TemplateMissing bool `json:"template_missing"`
	// Body is the approved template's body text, when found.
	Body string `json:"-"`
}

// Failed reports whether any finding failed.
func (r *Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Level == Fail {
			return true
		}
	}
	return false
}

// Detail returns the named check's detail.
func (r *Report) Detail(name string) string {
	for _, f := range r.Findings {
		if f.Name == name {
			return f.Detail
		}
	}
	return ""
}

func (r *Report) add(name string, level Level, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Name: name, Level: level, Detail: fmt.Sprintf(format, args...)})
}

// Config is what to check.
type Config struct {
	Pool   *pgxpool.Pool // nil skips the database check
	Schema string
	// Channels names the channels whose recorded health the database check
	// reports; default: the default channel.
	Channels  []string
	API       API
	Template  string
	Namespace string
	Language  string
	// WebhookSecret, when set, means webhooks are on: the check looks for a
	// registered URL ending in /webhooks/1msg/<secret>.
	WebhookSecret string
}

// Run performs every check; it never stops at the first problem.
func Run(ctx context.Context, c Config) *Report {
	r := &Report{}
	if c.Pool != nil {
		if err := cnsql.Check(ctx, c.Pool, c.Schema); err != nil {
			r.add("database", Fail, "%v", err)
		} else {
			r.add("database", OK, "reachable; schema %s migrated (version %d)", c.Schema, cnsql.Latest())
			checkHealth(ctx, r, c)
		}
	}
	checkChannel(ctx, r, c)
	checkTemplate(ctx, r, c)
	checkWebhook(ctx, r, c)
	return r
}

// checkHealth reports what the daemons recorded about the channel: held
// sends wait for a probe, and resume by themselves (README "Channel health").
func checkHealth(ctx context.Context, r *Report, c Config) {
	names := c.Channels
	if len(names) == 0 {
		names = []string{health.Default}
	}
	st, err := health.Read(ctx, c.Pool, names...)
	if err != nil {
		r.add("health", Warn, "channel health unreadable: %v", err)
		return
	}
	for _, s := range st {
		if s.Healthy() {
			r.add("health", OK, "channel %s: sends go out (no channel-wide refusal recorded)", s.Channel)
		} else {
			r.add("health", Warn, "channel %s %s; the daemon resumes it by itself once 1MSG answers again", s.Channel, s.Describe())
		}
	}
}

func checkChannel(ctx context.Context, r *Report, c Config) {
	st, err := c.API.Status(ctx)
	switch {
	case err != nil:
		r.add("channel", Fail, "GET /status failed: %v", err)
	case st.Status == "connected":
		r.add("channel", OK, "1MSG channel %s is connected", channelOf(c.API))
	case st.Status == "connecting":
		r.add("channel", Warn, "1MSG channel is connecting; sends may be refused until it is connected")
	default:
		r.add("channel", Fail, "1MSG channel status is %q, not connected: reconnect the number in the 1MSG dashboard", st.Status)
	}
}

func channelOf(api API) string {
	if c, ok := api.(interface{ Channel() string }); ok {
		return c.Channel()
	}
	return ""
}

func checkTemplate(ctx context.Context, r *Report, c Config) {
	tpls, err := c.API.Templates(ctx)
	if err != nil {
		r.add("template", Fail, "GET /templates failed: %v", err)
		return
	}
	var named []onemsg.Template
	for _, t := range tpls {
		if t.Name == c.Template {
			named = append(named, t)
		}
	}
	if len(named) == 0 {
		r.TemplateMissing = true
		r.add("template", Fail, "no template named %q on the channel (it has: %s): fix ONEMSG_TEMPLATE or create and approve the template", c.Template, names(tpls))
		return
	}
	var match *onemsg.Template
	var langs []string
	for i, t := range named {
		langs = append(langs, t.Language)
		if strings.EqualFold(t.Language, c.Language) {
			match = &named[i]
		}
	}
	switch {
	case match == nil:
		r.add("template", Fail, "template %q has no %q translation (it has %s): fix ONEMSG_LANGUAGE or add the translation", c.Template, c.Language, strings.Join(langs, ", "))
	case match.Namespace != c.Namespace:
		r.add("template", Fail, "template %q is in namespace %q, not %q: set ONEMSG_NAMESPACE=%s", c.Template, match.Namespace, c.Namespace, match.Namespace)
	case !match.Approved():
		r.add("template", Fail, "template %q (%s) is %q, not approved by Meta: sends will be refused until it is (%s)", c.Template, c.Language, match.Status, dashIfEmpty(match.RejectedReason))
	case match.BodyParams() != 4:
		r.add("template", Fail, "template %q (%s) has %d body variables; cancelnotify sends 4 (name, order number, product, next step): 1MSG would answer 422", c.Template, c.Language, match.BodyParams())
	default:
		r.Body = match.Body()
		r.add("template", OK, "template %q (%s, namespace %s) is approved with 4 body variables", c.Template, c.Language, c.Namespace)
	}
}

func checkWebhook(ctx context.Context, r *Report, c Config) {
	if c.WebhookSecret == "" {
		r.add("webhook", Warn, "webhooks are off (CANCELNOTIFY_WEBHOOK_SECRET unset): statuses come from polling hookInfo, later and at a cost")
		return
	}
	urls, err := c.API.Webhooks(ctx)
	if err != nil {
		r.add("webhook", Fail, "GET /webhook failed: %v", err)
		return
	}
	ours := false
	for _, u := range urls {
		if strings.HasSuffix(strings.TrimRight(u, "/"), webhook.PathPrefix+c.WebhookSecret) {
			ours = true
		}
	}
	st, err := c.API.Settings(ctx)
	switch {
	case !ours:
		r.add("webhook", Fail, "1MSG does not push to this daemon (%d other URL(s) registered): run `cancelnotify webhook register https://<public host>`", len(urls))
	case err != nil:
		r.add("webhook", Fail, "GET /settings failed: %v", err)
	case !st.AckNotificationsOn:
		r.add("webhook", Fail, "webhook registered but ackNotificationsOn is off, so 1MSG pushes no statuses: run `cancelnotify webhook register …` again")
	default:
		r.add("webhook", OK, "1MSG pushes statuses to this daemon's webhook (ackNotificationsOn)")
	}
}

func names(ts []onemsg.Template) string {
	if len(ts) == 0 {
		return "none"
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		if !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t.Name)
		}
	}
	return strings.Join(out, ", ")
}

func dashIfEmpty(s string) string {
	if s == "" || s == "NONE" {
		return "no reason given"
	}
	return "reason: " + s
}

// ErrTemplateMissing is wrapped by the daemon's start error when the
// configured template does not exist on the channel.
var ErrTemplateMissing = errors.New("the configured template does not exist on the 1MSG channel")
