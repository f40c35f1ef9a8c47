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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"golang.org/x/time/rate"

	"github.com/cancelnotify/cancelnotify/jobs"
	"github.com/cancelnotify/cancelnotify/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
	"github.com/cancelnotify/cancelnotify/webhook"
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

	// RiverID names this process's River client (default generated).
	RiverID string
	// TestOnly makes River start and stop faster (tests).
	TestOnly bool

	Logger *slog.Logger
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

	webhook   *webhook.Receiver
	webhookLn net.Listener
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
	api, err := onemsg.NewClient(cfg.OneMsg)
	if err != nil {
		return nil, err
	}
	pool, err := cnsql.Open(ctx, cfg.DatabaseURL, cfg.Schema, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, logger: cfg.Logger, pool: pool, api: api}
	if err := cnsql.Check(ctx, pool, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	d.ledger = &ledger.Ledger{Schema: cfg.Schema}
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
		ID: cfg.RiverID, Logger: riverLogger(cfg.Logger), TestOnly: cfg.TestOnly,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.CallbackURL != "" {
		d.ledger.OnChange = jobs.Callbacks(d.river, cfg.Schema)
	}
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
			Channel: cfg.OneMsg.Channel, Logger: cfg.Logger})
	}
	d.relay = outbox.NewRelay(outbox.RelayConfig{
		Pool: pool, Schema: cfg.Schema, Jobs: d.river, Ledger: d.ledger,
		Validator: outbox.Validator{Language: cfg.Language, Body: cfg.Body}, Template: cfg.Template,
		BatchSize: cfg.RelayBatchSize, PollInterval: cfg.RelayPollInterval, PairInterval: cfg.PairInterval, Logger: cfg.Logger,
	})
	return d, nil
}

// Pool returns the daemon's database pool (search_path set to the schema).
func (d *Daemon) Pool() *pgxpool.Pool { return d.pool }

// River returns the River client.
func (d *Daemon) River() *river.Client[pgx.Tx] { return d.river }

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
// relay stops taking rows, River lets in-flight jobs finish (up to the
// shutdown timeout), and the pool closes. It returns an error only when the
// daemon could not start or could not stop cleanly.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.pool.Close()

	// River's job contexts must outlive ctx so SoftStopTimeout governs
	// in-flight sends rather than the signal.
	if err := d.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start River: %w", err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.relay.Run(relayCtx) })

	var hookSrv *http.Server
	writersCtx, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriters()
	var writers sync.WaitGroup
	if d.webhook != nil {
		writers.Go(func() { _ = d.webhook.Run(writersCtx) })
		hookSrv = &http.Server{
			Handler:           d.webhook,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(d.logger.Handler(), slog.LevelDebug),
		}
		wg.Go(func() {
			if err := hookSrv.Serve(d.webhookLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.logger.Error("webhook listener stopped", "error", err)
			}
		})
		d.logger.Info("webhook receiver listening", "addr", d.webhookLn.Addr().String(), "path", webhook.PathPrefix+"{secret}")
	} else {
		d.logger.Info("webhooks off (no CANCELNOTIFY_WEBHOOK_SECRET): statuses come from polling hookInfo")
	}

	d.logger.Info("cancelnotify running", "schema", d.cfg.Schema, "channel", d.api.Channel(), "template", d.cfg.Template)
	<-ctx.Done()

	d.logger.Info("shutting down: relay stops taking rows, in-flight sends finish", "timeout", d.cfg.ShutdownTimeout)
	stopRelay()
	if hookSrv != nil {
		// In-flight webhook requests finish (their batches commit) first.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = hookSrv.Shutdown(sctx)
		cancel()
	}
	stopWriters()
	writers.Wait()
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	err := d.river.Stop(stopCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Cancel what is still running: a send interrupted here stays
		// `sending` and is reconciled after the restart, never resent blindly.
		hardCtx, cancelHard := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelHard()
		_ = d.river.StopAndCancel(hardCtx)
		return fmt.Errorf("jobs still running after the shutdown timeout (%s) were interrupted; they resume after a restart", d.cfg.ShutdownTimeout)
	}
	if err != nil {
		return fmt.Errorf("stop River: %w", err)
	}
	d.logger.Info("stopped")
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
