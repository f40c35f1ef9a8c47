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
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/metrics"
	"github.com/cancelnotify/cancelnotify/internal/pending"
	"github.com/cancelnotify/cancelnotify/internal/preflight"
	"github.com/cancelnotify/cancelnotify/internal/sendrate"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
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
	// MaxConns is the database pool's size. Defaults to DefaultMaxConns.
	MaxConns int32

	OneMsg    onemsg.Config // API URL, channel, token, call timeout
	Template  string        // ONEMSG_TEMPLATE
	Namespace string        // ONEMSG_NAMESPACE
	Language  string        // ONEMSG_LANGUAGE
	// SendTTL is ONEMSG_SEND_TTL in seconds, sent as messageSendTtlSeconds
	// (utility templates: 30–43200, or -1); 0 leaves Meta's default.
	SendTTL int
	// ProbeBackoffMin and ProbeBackoffMax pace the probes of a held channel
	// (defaults 1s and 1m); ProbeTick is how often each daemon looks at the
	// channels' health (default 500ms).
	ProbeBackoffMin, ProbeBackoffMax, ProbeTick time.Duration
	// MetricsCacheFor is how long the gauges read from Postgres are reused
	// between scrapes; default 10s.
	MetricsCacheFor time.Duration
	Body            string // template body, for the 1024-character rule; default: the one preflight reads, else outbox.DefaultBody
	// PhoneRegion reads phones written without a country code
	// (outbox.Validator.PhoneRegion); "" (default) sends only numbers
	// written with + or 00.
	PhoneRegion string

	// RelayBatchSize and RelayPollInterval default to
	// outbox.DefaultBatchSize and outbox.DefaultPollInterval.
	RelayBatchSize    int
	RelayPollInterval time.Duration

	// Rate is the default channel's send rate in messages per second for
	// every daemon on the schema together (Meta's default per number: 80);
	// 0 = unlimited. See internal/sendrate.
	Rate float64
	// PairInterval spaces messages to one phone through the default
	// channel (Meta: 6s); 0 = off.
	PairInterval time.Duration

	// Channels are the 1MSG channels besides the default one, which the
	// fields above (OneMsg, Template, Namespace, Language, Body, Rate,
	// PairInterval) describe. A payload's "channel" key names one.
	Channels []Channel

	// Retention deletes final notifications older than this; negative
	// keeps everything. River's own finished-job retention:
	// RiverCompleted/Cancelled/DiscardedRetention. Their defaults are
	// jobs.DefaultRetention and jobs.Default*JobRetention.
	Retention               time.Duration
	RiverCompletedRetention time.Duration
	RiverCancelledRetention time.Duration
	RiverDiscardedRetention time.Duration

	// SendWorkers, TrackWorkers, TrackFor and SendFor default to
	// jobs.DefaultSendWorkers, jobs.DefaultTrackWorkers,
	// jobs.DefaultTrackFor and jobs.DefaultSendFor.
	SendWorkers  int
	TrackWorkers int
	// PollRate is the most hookInfo calls per second, all channels
	// together; jobs.Config.PollRate (0: jobs.DefaultPollRate; negative:
	// unpaced).
	PollRate float64
	TrackFor time.Duration
	SendFor  time.Duration
	// TrackFirstPoll is the pause before a sent message's first hookInfo
	// poll. Defaults to DefaultTrackFirstPollWebhook with a webhook
	// (WebhookSecret set), else to jobs.DefaultTrackFirstPoll.
	TrackFirstPoll time.Duration
	// ShutdownTimeout is how long Run waits for sends in flight after its
	// context ends. Defaults to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// WebhookAddr is the public listener for 1MSG's pushes; it serves only
	// POST /webhooks/1msg/{WebhookSecret}. No secret, no listener: statuses
	// then come from polling alone. Defaults to DefaultWebhookAddr.
	WebhookAddr   string
	WebhookSecret string

	// CallbackURL receives each final status and in_doubt, signed with
	// CallbackSecret.
	CallbackURL    string
	CallbackSecret string

	// AdminAddr serves /healthz, /readyz, /metrics, /riverui/ and
	// /debug/pprof/ ("" = no admin listener; the command line defaults to
	// DefaultAdminAddr). AdminUser and AdminPassword,
	// when set, protect all but the probes with basic auth.
	AdminAddr     string
	AdminUser     string
	AdminPassword string
	// Pprof serves Go's profiles under /debug/pprof/ on the admin listener
	// (default off). The command line is never served: secrets may be
	// flags.
	Pprof bool

	// Preflight checks the channel, template and webhook registration at
	// start (as `cancelnotify check` does): findings are logged, and a
	// template missing from the channel stops the start.
	Preflight bool

	// Notifier tells systemd about readiness, stopping and liveness
	// (Systemd); nil: nobody is told.
	Notifier Notifier

	// TracerProvider traces the relay, the jobs, the 1MSG calls, the webhook
	// requests and every status change (internal/tracing.FromEnv builds it
	// from OTEL_*). Default nil: traces off, nothing instrumented.
	TracerProvider trace.TracerProvider

	// RiverID names this process's River client (default generated).
	RiverID string
	// TestOnly makes River start and stop faster (tests).
	TestOnly bool

	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxConns        = 40
	DefaultShutdownTimeout = 30 * time.Second
	DefaultWebhookAddr     = "127.0.0.1:8080"
	DefaultAdminAddr       = "127.0.0.1:9090"
	// DefaultTrackFirstPollWebhook is the first poll's pause with a
	// webhook: a healthy webhook brings every status first, so poll once,
	// late.
	DefaultTrackFirstPollWebhook = 60 * time.Second
	// DefaultRate is Meta's default throughput per business number.
	DefaultRate = 80
	// DefaultPairInterval is Meta's pair rate limit: one message to a
	// recipient every 6 s (error 131056).
	DefaultPairInterval = 6 * time.Second
)

// Channel is one 1MSG channel: its own client (id, token), template and
// send rate. Its OneMsg.BaseURL and Timeout default to the default
// channel's.
type Channel struct {
	Name         string
	OneMsg       onemsg.Config
	Template     string
	Namespace    string
	Language     string
	Body         string // template body text; default: read by the preflight, else the seed's
	Rate         float64
	PairInterval time.Duration
	PhoneRegion  string // reads phones without a country code; see Config.PhoneRegion
}

// ErrAdminExposed refuses an admin listener reachable from other machines
// without basic auth.
var ErrAdminExposed = errors.New("CANCELNOTIFY_ADMIN_ADDR is not a loopback address, so River UI and the metrics would be open to the network: " +
	"set CANCELNOTIFY_ADMIN_USER and CANCELNOTIFY_ADMIN_PASSWORD, or listen on 127.0.0.1")

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
	chans  []channel // the default channel first
	river  *river.Client[pgx.Tx]
	relay  *outbox.Relay
	ledger *ledger.Ledger
	// announcer NOTIFYs the status changes the ledger queues.
	announcer *ledger.Announcer

	webhook   *webhook.Receiver
	webhookLn net.Listener
	adminLn   net.Listener
	metrics   *metrics.Metrics
	health    *health.Monitor

	riverRunning atomic.Bool
}

// channel is a configured channel with its running parts.
type channel struct {
	Channel
	api     *onemsg.Client
	limiter *sendrate.Limiter // nil = unlimited
}

// channels lists every configured channel, the default one first.
func (cfg *Config) channels() []Channel {
	def := Channel{Name: ledger.DefaultChannel, OneMsg: cfg.OneMsg, Template: cfg.Template, Namespace: cfg.Namespace,
		Language: cfg.Language, Body: cfg.Body, Rate: cfg.Rate, PairInterval: cfg.PairInterval, PhoneRegion: cfg.PhoneRegion}
	out := []Channel{def}
	for _, c := range cfg.Channels {
		if c.OneMsg.BaseURL == "" {
			c.OneMsg.BaseURL = cfg.OneMsg.BaseURL
		}
		if c.OneMsg.Timeout == 0 {
			c.OneMsg.Timeout = cfg.OneMsg.Timeout
		}
		out = append(out, c)
	}
	return out
}

// New connects to the database, verifies the schema is migrated, and builds
// every part. It does not start anything.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.TrackFirstPoll <= 0 && cfg.WebhookSecret != "" {
		cfg.TrackFirstPoll = DefaultTrackFirstPollWebhook
	}
	pool, err := cnsql.Open(ctx, cfg.DatabaseURL, cfg.Schema, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	if cfg.MetricsCacheFor <= 0 {
		cfg.MetricsCacheFor = 10 * time.Second
	}
	var names []string
	for _, c := range cfg.channels() {
		names = append(names, c.Name)
	}
	m := metrics.New(pool, cfg.MetricsCacheFor, cfg.Logger, names)
	d := &Daemon{cfg: cfg, logger: cfg.Logger, pool: pool, metrics: m}
	for _, c := range cfg.channels() {
		oc := c.OneMsg
		oc.Observer = m.Channel(c.Name)
		oc.TracerProvider = cfg.TracerProvider
		api, err := onemsg.NewClient(oc)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("channel %s: %w", c.Name, err)
		}
		ch := channel{Channel: c, api: api}
		if c.Rate > 0 {
			ch.limiter = sendrate.New(pool, c.Name, c.Rate, cfg.Logger)
		}
		d.chans = append(d.chans, ch)
	}
	if err := cnsql.Check(ctx, pool, cfg.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.Preflight {
		for i := range d.chans {
			body, err := d.preflight(ctx, &d.chans[i])
			if err != nil {
				pool.Close()
				return nil, err
			}
			if d.chans[i].Body == "" {
				d.chans[i].Body = body
			}
		}
	}
	ttl := time.Duration(cfg.SendTTL) * time.Second
	if cfg.SendTTL < 0 {
		ttl = 30 * 24 * time.Hour // -1: Meta's 30 days
	}
	d.announcer = ledger.NewAnnouncer(ledger.AnnouncerConfig{Pool: pool, Schema: cfg.Schema, Logger: cfg.Logger})
	d.ledger = &ledger.Ledger{Schema: cfg.Schema, Observer: m, SendTTL: ttl, Announcer: d.announcer}
	var jch []jobs.Channel
	var hch []health.Channel
	for _, c := range d.chans {
		jc := jobs.Channel{Name: c.Name, API: c.api, Namespace: c.Namespace, Language: c.Language}
		if c.limiter != nil {
			jc.Limiter = c.limiter
		}
		jch = append(jch, jc)
		hch = append(hch, health.Channel{Name: c.Name, API: c.api, Template: c.Template, Namespace: c.Namespace, Language: c.Language})
	}
	d.health = health.New(health.Config{Pool: pool, Owner: cfg.RiverID, Wake: jobs.WakeHeld(pool),
		Channels: hch,
		Tick:     cfg.ProbeTick, BackoffMin: cfg.ProbeBackoffMin, BackoffMax: cfg.ProbeBackoffMax, Lease: 2*cfg.OneMsg.Timeout + 30*time.Second,
		Logger: cfg.Logger})
	// The health view must be current before the first send asks it: a
	// channel held before a restart stays held.
	if err := d.health.Refresh(ctx); err != nil {
		cfg.Logger.Warn("channel health unreadable at start; sends proceed until it is read", "error", err)
	}
	// The webhook receiver waits for the sends in flight before it holds a
	// status for a wamid it does not know yet.
	sends := pending.New()
	d.river, err = jobs.NewClient(jobs.Config{
		Pool: pool, Schema: cfg.Schema, Ledger: d.ledger, Channels: jch, SendTTL: cfg.SendTTL, Health: d.health,
		SendWorkers: cfg.SendWorkers, TrackWorkers: cfg.TrackWorkers, PollRate: cfg.PollRate,
		TrackFor: cfg.TrackFor, TrackFirstPoll: cfg.TrackFirstPoll, SendFor: cfg.SendFor,
		CallTimeout: cfg.OneMsg.Timeout, CallbackURL: cfg.CallbackURL, CallbackSecret: cfg.CallbackSecret,
		Retention: cfg.Retention, CompletedJobRetention: cfg.RiverCompletedRetention,
		CancelledJobRetention: cfg.RiverCancelledRetention, DiscardedJobRetention: cfg.RiverDiscardedRetention,
		ID: cfg.RiverID, Logger: cfg.Logger, RiverLogger: riverLogger(cfg.Logger), TracerProvider: cfg.TracerProvider,
		TestOnly: cfg.TestOnly, Sends: sends,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	d.ledger.OnChange = jobs.OnChange(d.river, cfg.Schema, cfg.CallbackURL != "")
	if cfg.TracerProvider != nil {
		d.ledger.OnChange = ledger.Chain(d.ledger.OnChange, tracing.StatusSpans(cfg.TracerProvider))
	}
	if cfg.WebhookSecret != "" {
		if cfg.WebhookAddr == "" {
			cfg.WebhookAddr = DefaultWebhookAddr
		}
		d.webhookLn, err = net.Listen("tcp", cfg.WebhookAddr)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("webhook listener on %s (CANCELNOTIFY_WEBHOOK_ADDR): %w", cfg.WebhookAddr, err)
		}
		ids := make([]string, len(d.chans))
		for i, c := range d.chans {
			ids[i] = c.OneMsg.Channel
		}
		d.webhook = webhook.New(webhook.Config{Pool: pool, Ledger: d.ledger, Secret: cfg.WebhookSecret,
			Channels: ids, Sends: sends, Logger: cfg.Logger, Observer: m})
	}
	if cfg.AdminAddr != "" && cfg.AdminUser == "" && !LoopbackAddr(cfg.AdminAddr) {
		d.closeListeners()
		pool.Close()
		return nil, fmt.Errorf("%w: %s", ErrAdminExposed, cfg.AdminAddr)
	}
	if cfg.AdminAddr != "" {
		d.adminLn, err = net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			d.closeListeners()
			pool.Close()
			return nil, fmt.Errorf("admin listener on %s (CANCELNOTIFY_ADMIN_ADDR): %w", cfg.AdminAddr, err)
		}
	}
	def := d.chans[0]
	var more []outbox.OneMsgChannel
	for _, c := range d.chans[1:] {
		more = append(more, outbox.OneMsgChannel{Name: c.Name, Template: c.Template,
			Rules: outbox.Validator{Language: c.Language, Body: c.Body, PhoneRegion: c.PhoneRegion}, PairInterval: c.PairInterval})
	}
	d.relay = outbox.NewRelay(outbox.RelayConfig{
		Pool: pool, Schema: cfg.Schema, Jobs: d.river, Ledger: d.ledger,
		Validator: outbox.Validator{Language: def.Language, Body: def.Body, PhoneRegion: def.PhoneRegion}, Template: def.Template, Channels: more,
		BatchSize: cfg.RelayBatchSize, PollInterval: cfg.RelayPollInterval, PairInterval: def.PairInterval, Logger: cfg.Logger,
		TracerProvider: cfg.TracerProvider,
	})
	m.WatchRelay(func() float64 {
		if h := d.relay.Health(); !h.FailingSince.IsZero() {
			return time.Since(h.FailingSince).Seconds()
		}
		return 0
	})
	return d, nil
}

// preflight logs what `cancelnotify check` would report for one channel
// and refuses to start without its template. It returns the template's
// body text.
func (d *Daemon) preflight(ctx context.Context, c *channel) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := preflight.Run(pctx, preflight.Config{API: c.api, Template: c.Template, Namespace: c.Namespace,
		Language: c.Language, WebhookSecret: d.cfg.WebhookSecret})
	log := d.logger.With("channel", c.Name)
	for _, f := range r.Findings {
		switch f.Level {
		case preflight.OK:
			log.Info("preflight: "+f.Name, "result", f.Detail)
		default:
			log.Warn("preflight: "+f.Name+" needs attention", "problem", f.Detail)
		}
	}
	if r.TemplateMissing {
		return "", fmt.Errorf("channel %s: %w: %s", c.Name, preflight.ErrTemplateMissing, r.Detail("template"))
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

// ChannelHealth returns this daemon's view of its channels' health.
func (d *Daemon) ChannelHealth() []health.Status { return d.health.Snapshot() }

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
	// The shared rate limiters take sends for the jobs; they stop with
	// the background context, after River.
	limCtx, stopLimiters := context.WithCancel(context.WithoutCancel(ctx))
	var limWG sync.WaitGroup
	defer func() { stopLimiters(); limWG.Wait() }()
	for _, c := range d.chans {
		if c.limiter != nil {
			limWG.Go(func() { c.limiter.Run(limCtx) })
		}
	}
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
	// Every listener bounds how long a client may take to send its request
	// and how long an idle connection stays open; only the admin listener
	// may write for longer (a 30s CPU profile, River UI's long polls).
	serve := func(name string, ln net.Listener, h http.Handler, writeTimeout bool) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelDebug)}
		if writeTimeout {
			srv.WriteTimeout = 30 * time.Second
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
		serve("webhook", d.webhookLn, tracing.Handler(d.cfg.TracerProvider, d.webhook, "1msg webhook"), true)
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

	bgWG.Go(func() { d.health.Run(bg) })

	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	var relayWG sync.WaitGroup
	relayWG.Go(func() { _ = d.relay.Run(relayCtx) })

	for _, c := range d.chans {
		d.logger.Info("cancelnotify running", "schema", d.cfg.Schema, "channel", c.Name, "channel_id", c.api.Channel(),
			"template", c.Template, "rate", c.Rate)
	}
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
