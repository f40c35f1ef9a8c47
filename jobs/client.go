package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Config configures the River client and its workers.
type Config struct {
	Pool   *pgxpool.Pool
	Schema string
	Ledger *ledger.Ledger
	// Channels are the 1MSG channels, each with its client, namespace and
	// send rate; at least one.
	Channels []Channel

	SendWorkers  int // default 100: 1MSG answers in tens of ms, so concurrency is throughput
	TrackWorkers int // default 20

	TrackFor       time.Duration // CANCELNOTIFY_TRACK_FOR, default 24h
	TrackFirstPoll time.Duration // first hookInfo poll after acceptance, default 5s (60s with webhooks)
	TrackPollMax   time.Duration // longest pause between polls, default 10m
	SendFor        time.Duration // give up sending after this long since the cancellation; default 24h, <0 never

	CallTimeout time.Duration // one 1MSG call's timeout; sizes the job timeouts (default 15s)

	// CallbackURL, when set, receives every final status and in_doubt as a
	// signed POST (CallbackSecret keys the HMAC); see Callbacks.
	CallbackURL     string
	CallbackSecret  string
	CallbackWorkers int // default 10

	// Retention deletes final notifications older than this, hourly
	// (CANCELNOTIFY_RETENTION, default 90 days); <0 keeps everything.
	Retention time.Duration
	// River's own retention of finished jobs (River's defaults: 24h, 24h, 7d).
	CompletedJobRetention, CancelledJobRetention, DiscardedJobRetention time.Duration

	// River tuning; see river.md §6.4: River's defaults (100ms, 1s) give a
	// p99 pickup latency of ~300ms, these give ~10ms.
	FetchCooldown     time.Duration // default 5ms
	FetchPollInterval time.Duration // default 200ms

	ID     string       // River client id; default generated
	Logger *slog.Logger // the workers' log: one line per state change
	// RiverLogger is River's own log; default Logger. The daemon keeps it
	// at warnings: River's info lines are about its internals.
	RiverLogger *slog.Logger
	TestOnly    bool

	// afterSend is the send worker's crash point, for tests.
	afterSend func(context.Context) error
}

func (c *Config) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.SendWorkers <= 0 {
		c.SendWorkers = 100
	}
	if c.TrackWorkers <= 0 {
		c.TrackWorkers = 20
	}
	if c.CallbackWorkers <= 0 {
		c.CallbackWorkers = 10
	}
	def(&c.TrackFor, 24*time.Hour)
	def(&c.TrackFirstPoll, 5*time.Second)
	def(&c.TrackPollMax, 10*time.Minute)
	def(&c.SendFor, 24*time.Hour)
	def(&c.CallTimeout, 15*time.Second)
	def(&c.Retention, 90*24*time.Hour)
	def(&c.FetchCooldown, 5*time.Millisecond)
	def(&c.FetchPollInterval, 200*time.Millisecond)
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

	// A send attempt makes at most two 1MSG calls (history, send) plus a few
	// short transactions; a poll makes one call.
	sendTimeout := 2*cfg.CallTimeout + 15*time.Second
	trackTimeout := cfg.CallTimeout + 15*time.Second

	workers := river.NewWorkers()
	send := &SendWorker{
		pool: cfg.Pool, schema: cfg.Schema, ledger: cfg.Ledger, channels: channels,
		firstPoll: cfg.TrackFirstPoll, sendFor: cfg.SendFor, timeout: sendTimeout, logger: cfg.Logger,
		afterSend: cfg.afterSend,
	}
	send.starts = groupcommit.New(cfg.Pool, send.startAttempts, groupcommit.Options{})
	send.accepts = groupcommit.New(cfg.Pool, send.recordAccepted, groupcommit.Options{})
	if err := river.AddWorkerSafely(workers, send); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &TrackWorker{
		pool: cfg.Pool, ledger: cfg.Ledger, channels: channels, trackFor: cfg.TrackFor,
		pollBase: cfg.TrackFirstPoll, pollMax: cfg.TrackPollMax, timeout: trackTimeout, logger: cfg.Logger,
	}); err != nil {
		return nil, err
	}
	// Only sends need a quick fallback poll (a missed insert NOTIFY delays a
	// customer's message); the other queues hold scheduled or rare work.
	slow := max(cfg.FetchPollInterval, time.Second)
	queues := map[string]river.QueueConfig{
		QueueSend:        {MaxWorkers: cfg.SendWorkers},
		QueueTrack:       {MaxWorkers: cfg.TrackWorkers, FetchPollInterval: slow},
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
		if err := river.AddWorkerSafely(workers, &CallbackWorker{
			url: cfg.CallbackURL, secret: []byte(cfg.CallbackSecret), logger: cfg.Logger,
			http: &http.Client{Timeout: 20 * time.Second},
		}); err != nil {
			return nil, err
		}
		queues[QueueCallback] = river.QueueConfig{MaxWorkers: cfg.CallbackWorkers, FetchPollInterval: slow}
	}

	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
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
