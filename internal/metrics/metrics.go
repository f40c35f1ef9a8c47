// Package metrics defines cancelnotify's Prometheus metrics: what the daemon
// counts as it works (status transitions, latencies, 1MSG calls, webhook
// requests) and what it reads from Postgres at scrape time (notifications by
// status, relay lag, River jobs by state).
//
// Labels carry only fixed vocabularies (statuses, sources, endpoints,
// outcome classes, the configured channel names), never a phone, an event
// id, a URL or a secret.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/outbox"
)

const namespace = "cancelnotify"

// Metrics is the daemon's registry.
type Metrics struct {
	reg      *prometheus.Registry
	channels []string // configured channel names: the only values of the channel label

	transitions  *prometheus.CounterVec
	toAccepted   prometheus.Histogram
	toDelivered  prometheus.Histogram
	apiCalls     *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	webhookReqs  *prometheus.CounterVec
	webhookStats *prometheus.CounterVec
	tables       *tableCollector
}

// latencyBuckets span a few milliseconds (commit to 1MSG acceptance on a
// healthy day) to an hour (delivery to a phone that was off).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// OtherChannel is the channel label of rows whose channel is no longer
// configured, so the label stays bounded by the configuration.
const OtherChannel = "other"

// New registers every metric. db, when not nil, is read at scrape time
// (cached for cacheFor) for the gauges that describe the tables. channels
// are the configured channel names ("default" is always one).
func New(db *pgxpool.Pool, cacheFor time.Duration, logger *slog.Logger, channels []string) *Metrics {
	if !slices.Contains(channels, ledger.DefaultChannel) {
		channels = append([]string{ledger.DefaultChannel}, channels...)
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		channels: channels,
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "status_transitions_total",
			Help: "Notification status changes, by previous status (empty for new rows), new status, source and channel.",
		}, []string{"from", "to", "source", "channel"}),
		toAccepted: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "accept_latency_seconds",
			Help:    "Time from the OMS's outbox commit to 1MSG accepting the message.",
			Buckets: latencyBuckets,
		}),
		toDelivered: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_latency_seconds",
			Help:    "Time from the OMS's outbox commit to WhatsApp reporting the message delivered.",
			Buckets: latencyBuckets,
		}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "onemsg_requests_total",
			Help: "1MSG API calls by endpoint, outcome class (ok, rejected, throttled, not_sent, unknown_outcome) and channel.",
		}, []string{"endpoint", "outcome", "channel"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "onemsg_request_duration_seconds",
			Help:    "1MSG API call duration by endpoint.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		webhookReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_requests_total",
			Help: "Webhook requests by result (ok, not_found, forbidden, malformed, too_large, error).",
		}, []string{"result"}),
		webhookStats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_statuses_total",
			Help: "Statuses received by webhook: recorded, unknown_wamid (held for a wamid not recorded yet or another system's), unmapped (stored raw), ignored (no usable message id).",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.transitions, m.toAccepted, m.toDelivered, m.apiCalls, m.apiDuration, m.webhookReqs, m.webhookStats,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		m.tables = &tableCollector{db: db, cacheFor: cacheFor, logger: logger, label: m.channelLabel, channels: m.channels}
		m.reg.MustRegister(m.tables)
	}
	return m
}

// WatchRelay exports the relay's progress: failingSeconds is how long its
// drains have failed in a row (0 while they succeed).
func (m *Metrics) WatchRelay(failingSeconds func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "relay_failing_seconds",
		Help: "How long the outbox relay's drains have failed in a row: rows are not being picked up (0 while it works).",
	}, failingSeconds))
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Changed records status changes (a ledger observer).
func (m *Metrics) Changed(changes []ledger.Change) {
	for _, c := range changes {
		n := c.Notification
		m.transitions.WithLabelValues(string(c.From), string(c.To), string(c.Source), m.channelLabel(n.Channel)).Inc()
		switch {
		case c.To == ledger.StatusSent && n.SentAt != nil:
			m.toAccepted.Observe(n.SentAt.Sub(n.EventCreatedAt).Seconds())
		case (c.To == ledger.StatusDelivered || c.To == ledger.StatusRead) && c.From != ledger.StatusDelivered && n.DeliveredAt != nil:
			m.toDelivered.Observe(n.DeliveredAt.Sub(n.EventCreatedAt).Seconds())
		}
	}
}

// channelLabel is name when it is configured, else OtherChannel.
func (m *Metrics) channelLabel(name string) string {
	if name == "" {
		return ledger.DefaultChannel
	}
	if slices.Contains(m.channels, name) {
		return name
	}
	return OtherChannel
}

// Channel returns the observer of one channel's 1MSG client.
func (m *Metrics) Channel(name string) *ChannelCalls {
	return &ChannelCalls{m: m, channel: m.channelLabel(name)}
}

// ChannelCalls records one channel's 1MSG API calls (an onemsg.Client
// observer).
type ChannelCalls struct {
	m       *Metrics
	channel string
}

// Called records one 1MSG API call.
func (c *ChannelCalls) Called(endpoint, outcome string, d time.Duration) {
	c.m.apiCalls.WithLabelValues(endpoint, outcome, c.channel).Inc()
	c.m.apiDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Webhook records a webhook request's result.
func (m *Metrics) Webhook(result string) { m.webhookReqs.WithLabelValues(result).Inc() }

// WebhookIgnored records status entries dropped before any work: no
// message id, or one over the length limit.
func (m *Metrics) WebhookIgnored(entries int) {
	m.webhookStats.WithLabelValues("ignored").Add(float64(entries))
}

// WebhookStatuses records what a webhook batch held.
func (m *Metrics) WebhookStatuses(recorded, unknown, unmapped int) {
	m.webhookStats.WithLabelValues("recorded").Add(float64(recorded))
	m.webhookStats.WithLabelValues("unknown_wamid").Add(float64(unknown))
	m.webhookStats.WithLabelValues("unmapped").Add(float64(unmapped))
}

// tableCollector reads the gauges that describe the tables. Reads are
// cached so that frequent scrapes, or several Prometheus servers, cost one
// set of queries per cacheFor.
type tableCollector struct {
	db       *pgxpool.Pool
	cacheFor time.Duration
	logger   *slog.Logger
	label    func(channel string) string
	channels []string

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

var (
	descNotifications  = prometheus.NewDesc(namespace+"_notifications", "Notifications by current status and channel (in_doubt > 0 needs an operator).", []string{"status", "channel"}, nil)
	descRelayLag       = prometheus.NewDesc(namespace+"_relay_lag_seconds", "Age of the oldest outbox row not relayed yet (0 when none).", nil, nil)
	descRelayBacklog   = prometheus.NewDesc(namespace+"_relay_backlog", "Outbox rows not relayed yet.", nil, nil)
	descRiverJobs      = prometheus.NewDesc(namespace+"_river_jobs", "River jobs by state and queue.", []string{"state", "queue"}, nil)
	descChannelHealthy = prometheus.NewDesc(namespace+"_channel_healthy", "1 when the channel's sends go out, 0 while a channel-wide refusal holds them (cancelnotify status shows why).", []string{"channel"}, nil)
	descChannelHeld    = prometheus.NewDesc(namespace+"_channel_held", "Messages waiting, still queued, for a held channel (0 when healthy).", []string{"channel"}, nil)
	descScrapeErrors   = prometheus.NewDesc(namespace+"_db_scrape_ok", "1 when the last read of the table gauges succeeded.", nil, nil)
)

func (c *tableCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNotifications
	ch <- descRelayLag
	ch <- descRelayBacklog
	ch <- descRiverJobs
	ch <- descChannelHealthy
	ch <- descChannelHeld
	ch <- descScrapeErrors
}

func (c *tableCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > c.cacheFor || c.metrics == nil {
		c.metrics = c.read()
		c.at = time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *tableCollector) read() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []prometheus.Metric
	fail := func(err error) []prometheus.Metric {
		c.logger.Warn("metrics: reading table gauges failed", "error", err)
		return append(out, prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, 0))
	}

	byChannel, err := ledger.CountByStatusAndChannel(ctx, c.db)
	if err != nil {
		return fail(err)
	}
	type key struct{ status, channel string }
	counts := map[key]float64{}
	for k, n := range byChannel {
		counts[key{string(k.Status), c.label(k.Channel)}] += float64(n)
	}
	chans := map[string]bool{}
	for _, ch := range c.channels {
		chans[ch] = true
	}
	for k := range counts {
		chans[k.channel] = true
	}
	for ch := range chans {
		for _, st := range ledger.Statuses {
			out = append(out, prometheus.MustNewConstMetric(descNotifications, prometheus.GaugeValue, counts[key{string(st), ch}], string(st), ch))
		}
	}

	backlog, err := outbox.ReadBacklog(ctx, c.db)
	if err != nil {
		return fail(err)
	}
	out = append(out,
		prometheus.MustNewConstMetric(descRelayLag, prometheus.GaugeValue, backlog.Oldest.Seconds()),
		prometheus.MustNewConstMetric(descRelayBacklog, prometheus.GaugeValue, float64(backlog.Rows)))

	rows, err := c.db.Query(ctx, "SELECT state::text, queue, count(*) FROM river_job GROUP BY 1, 2")
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var state, queue string
		var n int64
		if err := rows.Scan(&state, &queue, &n); err != nil {
			rows.Close()
			return fail(err)
		}
		out = append(out, prometheus.MustNewConstMetric(descRiverJobs, prometheus.GaugeValue, float64(n), state, queue))
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if len(c.channels) > 0 {
		st, err := health.Read(ctx, c.db, c.channels...)
		if err != nil {
			return fail(err)
		}
		for _, s := range st {
			ok := 0.0
			if s.Healthy() {
				ok = 1
			}
			out = append(out,
				prometheus.MustNewConstMetric(descChannelHealthy, prometheus.GaugeValue, ok, s.Channel),
				prometheus.MustNewConstMetric(descChannelHeld, prometheus.GaugeValue, float64(s.Held), s.Channel))
		}
	}
	return append(out, prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, 1))
}
