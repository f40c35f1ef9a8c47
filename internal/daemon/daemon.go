// Package daemon assembles cancelnotify's running parts: the database pool,
// the outbox relay, the River client with the send and track workers, and
// the listeners. `cancelnotify run` and `cancelnotify demo` start one; tests
// start them against real Postgres and the sandbox.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"golang.org/x/time/rate"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/metrics"
	"github.com/cancelnotify/cancelnotify/internal/preflight"
	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/jobs"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// Config is everything the daemon needs. cmd/cancelnotify fills it from the
// environment and flags.
type Config struct {
	DatabaseURL string
	Schema      string
	MaxConns    int32 // database pool size; default 40

	OneMsg    onemsg.Config // API URL, channel, token, call timeout
	Template  string        // ONEMSG_TEMPLATE
	Namespace string        // ONEMSG_NAMESPACE
	Language  string        // ONEMSG_LANGUAGE
	Body      string        // template body text, for the 1024-character rule; default the seed's

	RelayBatchSize    int
	RelayPollInterval time.Duration

	// Rate is the send rate limit of this process, in messages per second
	// (Meta's default per number: 80); 0 = unlimited. With several
	// instances on one channel, give each its share.
	Rate float64
	// PairInterval spaces messages to one phone (Meta: 6s); 0 = off.
	PairInterval time.Duration

	// Retention deletes final notifications older than this (default 90
	// days; <0 keeps everything). River's own finished-job retention:
	// RiverCompleted/Cancelled/DiscardedRetention (River's defaults if 0).
	Retention               time.Duration
	RiverCompletedRetention time.Duration
	RiverCancelledRetention time.Duration
	RiverDiscardedRetention time.Duration

	SendWorkers     int
	TrackWorkers    int
	TrackFor        time.Duration
	TrackFirstPoll  time.Duration
	SendFor         time.Duration
	ShutdownTimeout time.Duration

	// WebhookAddr is the public listener for 1MSG's pushes; it serves only
	// POST /webhooks/1msg/{WebhookSecret}. No secret, no listener: statuses
	// then come from polling alone.
	WebhookAddr   string
	WebhookSecret string

	// CallbackURL receives each final status and in_doubt, signed with
	// CallbackSecret.
	CallbackURL    string
	CallbackSecret string

	// AdminAddr serves /healthz, /readyz, /metrics, /riverui/ and
	// /debug/pprof/ ("" = no admin listener). AdminUser and AdminPassword,
	// when set, protect all but the probes with basic auth.
	AdminAddr     string
	AdminUser     string
	AdminPassword string

	// Preflight checks the channel, template and webhook registration at
	// start (as `cancelnotify check` does): findings are logged, and a
	// template missing from the channel stops the start.
	Preflight bool

	// Notifier tells systemd about readiness, stopping and liveness
	// (sdnotify); nil outside systemd.
	Notifier Notifier

	// RiverID names this process's River client (default generated).
	RiverID string
	// TestOnly makes River start and stop faster (tests).
	TestOnly bool

	Logger *slog.Logger
}

// Notifier is systemd's notify protocol as the daemon uses it.
type Notifier interface {
	Ready() error
	Stopping() error
	Watchdog() error
	WatchdogInterval() (time.Duration, bool)
}

// Daemon is a configured, not yet running, cancelnotify.
type Daemon struct {
	cfg    Config
	logger *slog.Logger
	pool   *pgxpool.Pool
	api    *onemsg.Client
	river  *river.Client[pgx.Tx]
	relay  *outbox.Relay
	ledger *ledger.Ledger
	// announcer NOTIFYs the status changes the ledger queues.
	announcer *ledger.Announcer

	webhook   *webhook.Receiver
	webhookLn net.Listener
	adminLn   net.Listener
	metrics   *metrics.Metrics

	riverRunning atomic.Bool
}

// New connects to the database, verifies the schema is migrated, and builds
// every part. It does not start anything.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 40
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.TrackFirstPoll <= 0 && cfg.WebhookSecret != "" {
		// A healthy webhook brings every status first: poll once, late.
		cfg.TrackFirstPoll = 60 * time.Second
	}
	pool, err := cnsql.Open(ctx, cfg.DatabaseURL, cfg.Schema, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	m := metrics.New(pool, 10*time.Second, cfg.Logger)
	cfg.OneMsg.Observer = m
	api, err := onemsg.NewClient(cfg.OneMsg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	d := &Daemon{cfg: cfg, logger: cfg.Logger, pool: pool, api: api, metrics: m}
	if err := cnsql.Check(ctx, pool, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.Preflight {
		body, err := d.preflight(ctx)
		if err != nil {
			pool.Close()
			return nil, err
		}
		if cfg.Body == "" {
			cfg.Body = body
		}
	}
	d.announcer = ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: cfg.Schema, Logger: cfg.Logger})
	d.ledger = &ledger.Ledger{Schema: cfg.Schema, Observer: m, Announcer: d.announcer}
	var limiter jobs.Limiter
	if cfg.Rate > 0 {
		// Burst 1: sends are spread evenly, so 1MSG's and Meta's per-second
		// windows never see more than the rate, whatever the backlog.
		limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	d.river, err = jobs.NewClient(jobs.Config{
		Pool: pool, Schema: cfg.Schema, Ledger: d.ledger, API: api, Namespace: cfg.Namespace, Limiter: limiter,
		SendWorkers: cfg.SendWorkers, TrackWorkers: cfg.TrackWorkers,
		TrackFor: cfg.TrackFor, TrackFirstPoll: cfg.TrackFirstPoll, SendFor: cfg.SendFor,
		CallTimeout: cfg.OneMsg.Timeout, CallbackURL: cfg.CallbackURL, CallbackSecret: cfg.CallbackSecret,
		Retention: cfg.Retention, CompletedJobRetention: cfg.RiverCompletedRetention,
		CancelledJobRetention: cfg.RiverCancelledRetention, DiscardedJobRetention: cfg.RiverDiscardedRetention,
		ID: cfg.RiverID, Logger: cfg.Logger, RiverLogger: riverLogger(cfg.Logger), TestOnly: cfg.TestOnly,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	d.ledger.OnChange = jobs.OnChange(d.river, cfg.Schema, cfg.CallbackURL != "")
	if cfg.WebhookSecret != "" {
		if cfg.WebhookAddr == "" {
			cfg.WebhookAddr = "127.0.0.1:8080"
		}
		d.webhookLn, err = net.Listen("tcp", cfg.WebhookAddr)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("webhook listener on %s (CANCELNOTIFY_WEBHOOK_ADDR): %w", cfg.WebhookAddr, err)
		}
		d.webhook = webhook.New(webhook.Config{Pool: pool, Ledger: d.ledger, Secret: cfg.WebhookSecret,
			Channel: cfg.OneMsg.Channel, Logger: cfg.Logger, Observer: m})
	}
	if cfg.AdminAddr != "" {
		d.adminLn, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			d.closeListeners()
			pool.Close()
			return nil, fmt.Errorf("admin listener on %s (CANCELNOTIFY_ADMIN_ADDR): %w", cfg.AdminAddr, err)
		}
	}
	d.relay = outbox.NewRelay(outbox.RelayConfig{
		Pool: pool, Schema: cfg.Schema, Jobs: d.river, Ledger: d.ledger,
		Validator: outbox.Validator{Language: cfg.Language, Body: cfg.Body}, Template: cfg.Template,
		BatchSize: cfg.RelayBatchSize, PollInterval: cfg.RelayPollInterval, PairInterval: cfg.PairInterval, Logger: cfg.Logger,
	})
	return d, nil
}

// preflight logs what `cancelnotify check` would report and refuses to
// start without the template. It returns the template's body text.
func (d *Daemon) preflight(ctx context.Context) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := preflight.Run(pctx, preflight.Config{API: d.api, Template: d.cfg.Template, Namespace: d.cfg.Namespace,
		Language: d.cfg.Language, WebhookSecret: d.cfg.WebhookSecret})
	for _, f := range r.Findings {
		switch f.Level {
		case preflight.OK:
			d.logger.Info("preflight: "+f.Name, "result", f.Detail)
		default:
			d.logger.Warn("preflight: "+f.Name+" needs attention", "problem", f.Detail)
		}
	}
	if r.TemplateMissing {
		return "", fmt.Errorf("%w: %s", preflight.ErrTemplateMissing, r.Detail("template"))
	}
	return r.Body, nil
}

func (d *Daemon) closeListeners() {
	for _, ln := range []net.Listener{d.webhookLn, d.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// AdminURL is the admin listener's base URL ("" when off).
func (d *Daemon) AdminURL() string {
	if d.adminLn == nil {
		return ""
	}
	return "http://" + d.adminLn.Addr().String()
}

// Relay returns the outbox relay.
func (d *Daemon) Relay() *outbox.Relay { return d.relay }

// Webhook returns the webhook receiver, nil when webhooks are off.
func (d *Daemon) Webhook() *webhook.Receiver { return d.webhook }

// WebhookURL is the URL 1MSG must push to, secret included ("" when
// webhooks are off). It is for registering the webhook; never log it.
func (d *Daemon) WebhookURL() string {
	if d.webhookLn == nil {
		return ""
	}
	return "http://" + d.webhookLn.Addr().String() + webhook.PathPrefix + d.cfg.WebhookSecret
}

// Run starts everything and blocks until ctx ends, then stops in order: the
// relay stops taking rows, the listeners drain, River lets in-flight jobs
// finish (up to the shutdown timeout), and the pool closes. It returns an
// error only when the daemon could not start or could not stop cleanly.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.pool.Close()
	defer d.closeListeners()

	// Job contexts must outlive ctx: on SIGTERM, in-flight sends finish
	// under ShutdownTimeout instead of being cut off by the signal.
	if err := d.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start River: %w", err)
	}
	d.riverRunning.Store(true)
	defer d.riverRunning.Store(false)

	// Listeners and webhook writers live until River has stopped, so that
	// statuses keep arriving while in-flight sends finish.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var bgWG sync.WaitGroup
	var servers []*http.Server
	serve := func(name string, ln net.Listener, h http.Handler, timeouts bool) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelDebug)}
		if timeouts {
			srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
		}
		servers = append(servers, srv)
		bgWG.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.logger.Error(name+" listener stopped", "error", err)
			}
		})
	}
	bgWG.Go(func() {
		d.announcer.Run(bg)
		// What the last transactions changed, announced before exiting.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if n, err := d.announcer.Announce(fctx); err != nil || n == 0 {
				return
			}
		}
	})
	if d.webhook != nil {
		bgWG.Go(func() { d.webhook.AdoptHeld(bg, time.Second) })
		serve("webhook", d.webhookLn, d.webhook, true)
		d.logger.Info("webhook receiver listening", "addr", d.webhookLn.Addr().String(), "path", webhook.PathPrefix+"{secret}")
	} else {
		d.logger.Info("webhooks off (no CANCELNOTIFY_WEBHOOK_SECRET): statuses come from polling hookInfo")
	}
	if d.adminLn != nil {
		h, err := d.adminHandler(bg)
		if err != nil {
			return fmt.Errorf("admin endpoints: %w", err)
		}
		serve("admin", d.adminLn, h, false)
		d.logger.Info("admin endpoints listening", "addr", d.adminLn.Addr().String(), "basic_auth", d.cfg.AdminUser != "")
	}

	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	var relayWG sync.WaitGroup
	relayWG.Go(func() { _ = d.relay.Run(relayCtx) })

	d.logger.Info("cancelnotify running", "schema", d.cfg.Schema, "channel", d.api.Channel(), "template", d.cfg.Template)
	d.mainLoop(ctx)

	d.logger.Info("shutting down: relay stops taking rows, in-flight sends finish", "timeout", d.cfg.ShutdownTimeout)
	d.notify(func(n Notifier) error { return n.Stopping() })
	stopRelay()
	relayWG.Wait()
	err := d.stopRiver()

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx) // in-flight webhook requests commit and answer first
	}
	stopBG()
	bgWG.Wait()
	if err == nil {
		d.logger.Info("stopped")
	}
	return err
}

// mainLoop waits for ctx, telling systemd when the daemon is ready (River
// started, relay listening) and pinging its watchdog meanwhile.
func (d *Daemon) mainLoop(ctx context.Context) {
	var watchdog <-chan time.Time
	if n := d.cfg.Notifier; n != nil {
		if every, ok := n.WatchdogInterval(); ok {
			t := time.NewTicker(every / 2)
			defer t.Stop()
			watchdog = t.C
		}
	}
	readyCheck := time.NewTicker(50 * time.Millisecond)
	defer readyCheck.Stop()
	ready := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog:
			d.notify(func(n Notifier) error { return n.Watchdog() })
		case <-readyCheck.C:
			if ready || !d.relay.Listening() {
				continue
			}
			ready = true
			readyCheck.Stop()
			d.notify(func(n Notifier) error { return n.Ready() })
			d.logger.Info("ready: River started, relay listening")
		}
	}
}

func (d *Daemon) notify(fn func(Notifier) error) {
	if d.cfg.Notifier == nil {
		return
	}
	if err := fn(d.cfg.Notifier); err != nil {
		d.logger.Warn("systemd notification failed", "error", err)
	}
}

// stopRiver lets running jobs finish within the shutdown timeout, then
// cancels the rest: a send interrupted there stays `sending` and is
// reconciled after the restart, never resent blindly.
func (d *Daemon) stopRiver() error {
	stopCtx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	err := d.river.Stop(stopCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		hardCtx, cancelHard := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelHard()
		_ = d.river.StopAndCancel(hardCtx)
		return fmt.Errorf("jobs still running after the shutdown timeout (%s) were interrupted; they resume after a restart", d.cfg.ShutdownTimeout)
	}
	if err != nil {
		return fmt.Errorf("stop River: %w", err)
	}
	return nil
}

// riverLogger keeps River's own logging at warnings and above: its info
// lines are about internals an operator of cancelnotify does not act on.
func riverLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= h.min && h.Handler.Enabled(ctx, lvl)
}
func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }
