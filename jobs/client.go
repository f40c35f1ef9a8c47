package jobs

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/pending"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// Defaults of Config; the command line's flags default to the same values.
const (
	DefaultSendWorkers     = 300
	DefaultTrackWorkers    = 20
	DefaultPollRate        = 300
	DefaultCallbackWorkers = 10

	DefaultTrackFor       = 24 * time.Hour
	DefaultTrackFirstPoll = 5 * time.Second
	DefaultTrackPollMax   = 10 * time.Minute
	DefaultSendFor        = 24 * time.Hour

	DefaultRetention = 90 * 24 * time.Hour

	DefaultCompletedJobRetention = 24 * time.Hour
	DefaultCancelledJobRetention = 7 * 24 * time.Hour
	DefaultDiscardedJobRetention = 7 * 24 * time.Hour

	DefaultFetchCooldown     = 5 * time.Millisecond
	DefaultFetchPollInterval = 200 * time.Millisecond
)

// Config configures the River client and its workers.
type Config struct {
	Pool   *pgxpool.Pool
	Schema string
	Ledger *ledger.Ledger
	// Channels are the 1MSG channels, each with its client, namespace,
	// default language and send rate; at least one.
	Channels []Channel
	// SendTTL is ONEMSG_SEND_TTL in seconds (messageSendTtlSeconds), for
	// every channel; 0 = Meta's default.
	SendTTL int
	// Health holds a channel's sends after a channel-wide refusal; nil =
	// every refusal fails its message.
	Health Health

	// SendWorkers is how many sends run at once. A send waits for 1MSG's
	// answer (tens to hundreds of ms) and for two group commits, holding no
	// database connection while it waits, so concurrency is throughput:
	// sends per second ≤ SendWorkers ÷ the time one takes. Defaults to
	// DefaultSendWorkers, enough for 1,000/s at 300 ms; at 100 a burst
	// reached 890/s with 1MSG answering in 50 ms (README "Latest figures").
	SendWorkers int
	// TrackWorkers is how many hookInfo polls run at once, and how many
	// track jobs (each following up to 100 messages). Defaults to
	// DefaultTrackWorkers.
	TrackWorkers int

	// PollRate is the most hookInfo calls per second, for all channels
	// together. Polls are the safety net behind webhooks, and without them
	// about one per message: the polls of a big burst, due all at once, are
	// spread out instead of taking the machine (and 1MSG's API, which
	// answers 429 past an unpublished limit) from the sends. The default
	// keeps pace with nearly four numbers sending at Meta's default 80/s
	// without webhooks; measured on two cores after a 10,000-row burst,
	// 1,000 a second pushed the sends' p99 past 50 ms (README, "How
	// messages are followed"). Defaults to DefaultPollRate; negative:
	// unpaced.
	PollRate float64

	// Sends, when set, learns of every sendTemplate call from its request
	// until its answer is committed, for the webhook receiver sharing it
	// (webhook.Config.Sends). Nil: nobody waits for sends.
	Sends *pending.Sends

	// TrackFor is how long a sent message is followed before it is
	// expired. Defaults to DefaultTrackFor.
	TrackFor time.Duration
	// TrackFirstPoll is the pause before the first hookInfo poll after
	// acceptance; the pauses then double up to TrackPollMax. Defaults to
	// DefaultTrackFirstPoll (the daemon waits longer with webhooks on).
	TrackFirstPoll time.Duration
	// TrackPollMax is the longest pause between polls. Defaults to
	// DefaultTrackPollMax.
	TrackPollMax time.Duration
	// SendFor is how long after the cancellation sending is retried while
	// 1MSG is unreachable, before the row fails. Defaults to DefaultSendFor;
	// negative: never give up.
	SendFor time.Duration

	// CallTimeout is one 1MSG call's timeout; it sizes the job timeouts.
	// Defaults to onemsg.DefaultTimeout.
	CallTimeout time.Duration

	// CallbackURL, when set, receives every final status and in_doubt as a
	// POST signed per Standard Webhooks with CallbackSecret (whsec_<base64>,
	// see NewSigner); see Callbacks.
	CallbackURL    string
	CallbackSecret string
	// CallbackWorkers is how many callbacks are POSTed at once. Defaults to
	// DefaultCallbackWorkers.
	CallbackWorkers int

	// Retention deletes final notifications older than this, hourly.
	// Defaults to DefaultRetention; negative keeps everything.
	Retention time.Duration
	// River's own retention of finished jobs. Default to
	// DefaultCompletedJobRetention, DefaultCancelledJobRetention (refused
	// sends and in_doubt ones stay a week, for an operator to look at) and
	// DefaultDiscardedJobRetention.
	CompletedJobRetention, CancelledJobRetention, DiscardedJobRetention time.Duration

	// FetchCooldown and FetchPollInterval tune River's fetching: River's
	// own defaults (100ms, 1s) give a p99 pickup latency of about 300ms,
	// these about 10ms. Default to DefaultFetchCooldown and
	// DefaultFetchPollInterval.
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration

	ID     string       // River client id; default generated
	Logger *slog.Logger // the workers' log: one line per state change
	// RiverLogger is River's own log; default Logger. The daemon keeps it
	// at warnings: River's info lines are about its internals.
	RiverLogger *slog.Logger
	// TracerProvider traces every job (internal/tracing); nil, the
	// default, installs no tracing at all.
	TracerProvider trace.TracerProvider
	TestOnly       bool

	// afterSend is the send worker's crash point, for tests.
	afterSend func(context.Context) error
	// gate is shared by the send and track workers: polls give way to
	// sends (set by withDefaults).
	gate *sendsFirst
}

func (c *Config) withDefaults() {
	if c.gate == nil {
		c.gate = &sendsFirst{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.SendWorkers <= 0 {
		c.SendWorkers = DefaultSendWorkers
	}
	if c.TrackWorkers <= 0 {
		c.TrackWorkers = DefaultTrackWorkers
	}
	if c.CallbackWorkers <= 0 {
		c.CallbackWorkers = DefaultCallbackWorkers
	}
	def(&c.TrackFor, DefaultTrackFor)
	def(&c.TrackFirstPoll, DefaultTrackFirstPoll)
	def(&c.TrackPollMax, DefaultTrackPollMax)
	if c.PollRate == 0 {
		c.PollRate = DefaultPollRate
	}
	def(&c.SendFor, DefaultSendFor)
	def(&c.CallTimeout, onemsg.DefaultTimeout)
	def(&c.Retention, DefaultRetention)
	def(&c.CompletedJobRetention, DefaultCompletedJobRetention)
	def(&c.CancelledJobRetention, DefaultCancelledJobRetention)
	def(&c.DiscardedJobRetention, DefaultDiscardedJobRetention)
	def(&c.FetchCooldown, DefaultFetchCooldown)
	def(&c.FetchPollInterval, DefaultFetchPollInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RiverLogger == nil {
		c.RiverLogger = c.Logger
	}
	if c.Ledger == nil {
		c.Ledger = &ledger.Ledger{Schema: c.Schema}
	}
}

type unlimited struct{}

func (unlimited) Wait(ctx context.Context) error { return ctx.Err() }

// NewClient returns a River client that works the send and track queues.
func NewClient(cfg Config) (*river.Client[pgx.Tx], error) {
	if cfg.Pool == nil {
		return nil, errors.New("jobs: Config.Pool is required")
	}
	cfg.withDefaults()
	channels, err := newChannelSet(cfg.Channels)
	if err != nil {
		return nil, err
	}

	sendTimeout := cfg.sendTimeout()
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, newSendWorker(cfg, channels)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, newTrackWorker(cfg, channels)); err != nil {
		return nil, err
	}
	// Only sends need a quick fallback poll (a missed insert NOTIFY delays a
	// customer's message); the other queues hold scheduled or rare work.
	slow := max(cfg.FetchPollInterval, time.Second)
	queues := map[string]river.QueueConfig{
		QueueSend:        {MaxWorkers: cfg.SendWorkers},
		QueueTrack:       {MaxWorkers: cfg.TrackWorkers, FetchPollInterval: slow},
		QueueTrackBefore: {MaxWorkers: cfg.TrackWorkers, FetchPollInterval: slow},
		QueueMaintenance: {MaxWorkers: 1, FetchPollInterval: slow},
	}
	var periodic []*river.PeriodicJob
	if cfg.Retention > 0 {
		if err := river.AddWorkerSafely(workers, &RetentionWorker{pool: cfg.Pool, retention: cfg.Retention, logger: cfg.Logger}); err != nil {
			return nil, err
		}
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{}, nil },
			&river.PeriodicJobOpts{ID: "cancelnotify_retention", RunOnStart: true}))
	}
	if cfg.CallbackURL != "" {
		signer, err := NewSigner(cfg.CallbackSecret)
		if err != nil {
			return nil, err
		}
		if err := river.AddWorkerSafely(workers, &CallbackWorker{
			url: cfg.CallbackURL, schema: cfg.Schema, signer: signer, logger: cfg.Logger,
			http: &http.Client{Timeout: 20 * time.Second, Transport: tracing.Transport(cfg.TracerProvider, nil, "callback")},
		}); err != nil {
			return nil, err
		}
		queues[QueueCallback] = river.QueueConfig{MaxWorkers: cfg.CallbackWorkers, FetchPollInterval: slow}
	}

	var middleware []rivertype.Middleware
	if cfg.TracerProvider != nil {
		middleware = tracing.RiverMiddleware(cfg.TracerProvider)
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		Middleware:        middleware,
		ID:                cfg.ID,
		Schema:            cfg.Schema,
		Logger:            cfg.RiverLogger,
		Workers:           workers,
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		Queues:            queues,
		PeriodicJobs:      periodic,

		CompletedJobRetentionPeriod: cfg.CompletedJobRetention,
		CancelledJobRetentionPeriod: cfg.CancelledJobRetention,
		DiscardedJobRetentionPeriod: cfg.DiscardedJobRetention,
		JobTimeout:                  sendTimeout,
		// A job left running by a killed process is retried after this. It
		// must exceed every job's timeout so a slow but live attempt is never
		// run twice at once; the send job then reconciles before resending.
		RescueStuckJobsAfter: sendTimeout + 30*time.Second,
		TestOnly:             cfg.TestOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	return client, nil
}

// sendTimeout bounds a send attempt: at most two 1MSG calls (history,
// send) plus a few short transactions.
func (c *Config) sendTimeout() time.Duration { return 2*c.CallTimeout + 15*time.Second }

// newSendWorker returns the send worker of cfg (defaults applied).
func newSendWorker(cfg Config, channels channelSet) *SendWorker {
	w := &SendWorker{
		pool: cfg.Pool, schema: cfg.Schema, ledger: cfg.Ledger, channels: channels, sendTTL: cfg.SendTTL, health: cfg.Health,
		firstPoll: cfg.TrackFirstPoll, sendFor: cfg.SendFor, timeout: cfg.sendTimeout(), logger: cfg.Logger,
		afterSend: cfg.afterSend, gate: cfg.gate, sends: cfg.Sends,
	}
	w.starts = groupcommit.New(cfg.Pool, w.startAttempts, groupcommit.Options{})
	w.accepts = groupcommit.New(cfg.Pool, w.recordAccepted, groupcommit.Options{Linger: acceptLinger})
	return w
}

// newTrackWorker returns the track worker of cfg (defaults applied). A
// wake-up polls its open messages, TrackWorkers calls at once across all
// jobs; a job whose 1MSG hangs gives up after three call timeouts and
// records what it learnt.
func newTrackWorker(cfg Config, channels channelSet) *TrackWorker {
	w := &TrackWorker{
		pool: cfg.Pool, ledger: cfg.Ledger, channels: channels, trackFor: cfg.TrackFor,
		pollBase: cfg.TrackFirstPoll, pollMax: cfg.TrackPollMax, timeout: 3*cfg.CallTimeout + 15*time.Second, logger: cfg.Logger,
		polls: make(chan struct{}, cfg.TrackWorkers), gate: cfg.gate,
	}
	if cfg.PollRate > 0 {
		w.pollRate = rate.NewLimiter(rate.Limit(cfg.PollRate), cfg.TrackWorkers)
	}
	// One status transaction at a time for all polls: tracking's share of
	// the database stays one connection whatever comes back at once.
	w.applies = groupcommit.New(cfg.Pool, w.applyBatch, groupcommit.Options{InFlight: 1, MaxBatch: 10})
	return w
}
