package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/internal/preflight"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
	"github.com/cancelnotify/cancelnotify/jobs"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/outbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// DefaultDatabaseURL is the local Postgres every development machine runs,
// the one `make test` uses too; every command falls back to it.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres"

// dbOptions are the database settings.
type dbOptions struct{ url, schema *option }

func addDBOptions(s *settings) dbOptions {
	return dbOptions{
		url:    s.add("DATABASE_URL", "database-url", DefaultDatabaseURL, "the OMS database (postgres://user:password@host:5432/db)"),
		schema: s.add("CANCELNOTIFY_SCHEMA", "schema", "cancelnotify", "Postgres schema holding cancelnotify's and River's tables"),
	}
}

func (d dbOptions) values(s *settings) (url, schema string) {
	url = s.databaseURL(d.url)
	schema = d.schema.raw
	if err := cnsql.ValidateSchemaName(schema); err != nil {
		s.fail("%s: %v", d.schema.name(), err)
	}
	return url, schema
}

func cmdMigrate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "migrate")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s)
	lo := addLogOptions(s)
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := db.values(s)
	logger := lo.logger(s, e.stderr)
	if err := s.err(); err != nil {
		return err
	}
	pool, err := cnsql.Open(ctx, url, schema, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := cnsql.Migrate(ctx, pool, schema, logger)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 && len(res.RiverApplied) == 0 {
		fmt.Fprintf(e.stdout, "schema %s is up to date (cancelnotify version %d)\n", schema, res.Version)
		return nil
	}
	fmt.Fprintf(e.stdout, "schema %s migrated: River versions %v, cancelnotify versions %v applied; now at version %d\n",
		schema, res.RiverApplied, res.Applied, res.Version)
	return nil
}

// oneMsgOptions are the 1MSG settings (README.md, "Configuration").
type oneMsgOptions struct {
	apiURL, channel, token, template, namespace, language, timeout, sendTTL *option
	channelsFile                                                            *option
}

func addOneMsgOptions(s *settings) oneMsgOptions {
	return oneMsgOptions{
		apiURL:    s.add("ONEMSG_API_URL", "onemsg-api-url", onemsg.DefaultBaseURL, "1MSG API base URL (the sandbox's URL in tests and demos)"),
		channel:   s.add("ONEMSG_CHANNEL_ID", "onemsg-channel-id", "", "1MSG channel (instance) id"),
		token:     s.secret("ONEMSG_TOKEN", "onemsg-token", "1MSG channel token (secret; prefer ONEMSG_TOKEN_FILE)"),
		template:  s.add("ONEMSG_TEMPLATE", "onemsg-template", "", "approved template name"),
		namespace: s.add("ONEMSG_NAMESPACE", "onemsg-namespace", "", "template namespace (1MSG answers 422 without it)"),
		language:  s.add("ONEMSG_LANGUAGE", "onemsg-language", "en", "default template language"),
		timeout:   s.add("ONEMSG_TIMEOUT", "onemsg-timeout", durationText(onemsg.DefaultTimeout), "timeout of one 1MSG API call"),
		sendTTL: s.add("ONEMSG_SEND_TTL", "onemsg-send-ttl", "",
			"how long Meta keeps trying to deliver a message before dropping it (messageSendTtlSeconds): 30s to 12h for a utility template, e.g. 6h or 21600, or -1 for Meta's 30 days; unset = the template's default"),
		channelsFile: s.add("CANCELNOTIFY_CHANNELS_FILE", "channels-file", "",
			"YAML file of more 1MSG channels besides the ONEMSG_* one (named default); a payload's \"channel\" key names one; \"\" = none"),
	}
}

// oneMsgValues are the checked 1MSG settings.
type oneMsgValues struct {
	client              onemsg.Config
	template, namespace string
	language            string
	sendTTL             int           // seconds; 0 = unset
	more                []fileChannel // CANCELNOTIFY_CHANNELS_FILE
}

func (o oneMsgOptions) values(s *settings) oneMsgValues {
	v := oneMsgValues{
		client: onemsg.Config{
			BaseURL: s.httpURL(o.apiURL),
			Channel: s.required(o.channel, "ONEMSG_CHANNEL_ID=ODI371267300"),
			Token:   s.token(o.token),
			Timeout: s.duration(o.timeout),
		},
		template:  s.required(o.template, "ONEMSG_TEMPLATE=order_cancelled"),
		namespace: s.required(o.namespace, "ONEMSG_NAMESPACE (see GET /templates)"),
		language:  s.required(o.language, "ONEMSG_LANGUAGE=en"),
		sendTTL:   s.sendTTL(o.sendTTL),
	}
	v.more = s.channelsFile(o.channelsFile, v)
	return v
}

// sendTTL reads ONEMSG_SEND_TTL: seconds or a duration, within what 1MSG
// accepts for a utility template (30–43200 seconds), or -1.
func (s *settings) sendTTL(o *option) int {
	v := strings.TrimSpace(o.raw)
	if v == "" {
		return 0
	}
	secs, err := strconv.Atoi(v)
	if err != nil {
		d, derr := time.ParseDuration(v)
		if derr != nil || d%time.Second != 0 {
			s.fail("%s = %s is not a time-to-live: write whole seconds (21600) or a duration (6h), from 30s to 12h, or -1 for Meta's 30 days", o.name(), o.shown())
			return 0
		}
		secs = int(d / time.Second)
	}
	if secs != -1 && (secs < 30 || secs > 43200) {
		s.fail("%s = %s is outside what Meta accepts for a utility template: use 30 to 43200 seconds (30s to 12h), or -1 for 30 days", o.name(), o.shown())
		return 0
	}
	return secs
}

// daemonOptions are the daemon's own settings.
type daemonOptions struct {
	trackFor, trackFirstPoll, sendFor, shutdown, relayPoll    *option
	sendWorkers, trackWorkers, pollRate, relayBatch, maxConns *option
	webhookAddr, webhookSecret                                *option
	rate, pairInterval                                        *option
	adminAddr, adminUser, adminPassword                       *option
	retention, riverCompleted, riverCancelled, riverDiscarded *option
	callbackURL, callbackSecret                               *option
	phoneRegion, pprof                                        *option
}

func addDaemonOptions(s *settings) daemonOptions {
	return daemonOptions{
		trackFor:       s.add("CANCELNOTIFY_TRACK_FOR", "track-for", durationText(jobs.DefaultTrackFor), "follow a sent message this long before marking it expired"),
		trackFirstPoll: s.add("CANCELNOTIFY_TRACK_FIRST_POLL", "track-first-poll", "auto", fmt.Sprintf("first hookInfo poll after acceptance, doubling up to %s; auto = %s with webhooks, %s without", durationText(jobs.DefaultTrackPollMax), durationText(daemon.DefaultTrackFirstPollWebhook), durationText(jobs.DefaultTrackFirstPoll))),
		sendFor:        s.add("CANCELNOTIFY_SEND_FOR", "send-for", durationText(jobs.DefaultSendFor), "give up sending (failed) when 1MSG stays unreachable this long after the cancellation"),
		shutdown:       s.add("CANCELNOTIFY_SHUTDOWN_TIMEOUT", "shutdown-timeout", durationText(daemon.DefaultShutdownTimeout), "on SIGTERM, wait this long for in-flight sends"),
		relayPoll:      s.add("CANCELNOTIFY_RELAY_POLL", "relay-poll", durationText(outbox.DefaultPollInterval), "relay's fallback poll when no NOTIFY arrives"),
		relayBatch:     s.add("CANCELNOTIFY_RELAY_BATCH", "relay-batch", strconv.Itoa(outbox.DefaultBatchSize), "outbox rows per relay transaction"),
		sendWorkers:    s.add("CANCELNOTIFY_SEND_WORKERS", "send-workers", strconv.Itoa(jobs.DefaultSendWorkers), "concurrent sends"),
		trackWorkers:   s.add("CANCELNOTIFY_TRACK_WORKERS", "track-workers", strconv.Itoa(jobs.DefaultTrackWorkers), "concurrent status polls"),
		pollRate:       s.add("CANCELNOTIFY_POLL_RATE", "poll-rate", strconv.Itoa(jobs.DefaultPollRate), "most hookInfo status polls per second, all channels together; 0 = unpaced"),
		maxConns:       s.add("CANCELNOTIFY_DB_MAX_CONNS", "db-max-conns", strconv.Itoa(daemon.DefaultMaxConns), "database pool size"),
		rate:           s.add("CANCELNOTIFY_RATE", "rate", strconv.Itoa(daemon.DefaultRate), "send rate of the default channel, messages/s for all instances on the schema together (Meta's default per number: 80); 0 = unlimited"),
		pairInterval:   s.add("CANCELNOTIFY_PAIR_INTERVAL", "pair-interval", durationText(daemon.DefaultPairInterval), "least gap between two messages to one phone (Meta's pair limit), all instances together; default of every channel; 0 = off"),
		retention:      s.add("CANCELNOTIFY_RETENTION", "retention", durationText(jobs.DefaultRetention), "delete final notifications (with outbox rows and history) older than this; 0 = keep forever"),
		riverCompleted: s.add("CANCELNOTIFY_RIVER_COMPLETED_RETENTION", "river-completed-retention", durationText(jobs.DefaultCompletedJobRetention), "River keeps completed jobs this long"),
		riverCancelled: s.add("CANCELNOTIFY_RIVER_CANCELLED_RETENTION", "river-cancelled-retention", durationText(jobs.DefaultCancelledJobRetention), "River keeps cancelled jobs (refused sends, in_doubt) this long"),
		riverDiscarded: s.add("CANCELNOTIFY_RIVER_DISCARDED_RETENTION", "river-discarded-retention", durationText(jobs.DefaultDiscardedJobRetention), "River keeps discarded jobs (attempts exhausted) this long"),
		adminAddr:      s.add("CANCELNOTIFY_ADMIN_ADDR", "admin-addr", "127.0.0.1:9090", "admin listener: /healthz, /readyz, /metrics, /riverui/, /debug/pprof/ with --pprof on (\"\" = off); a non-loopback address needs --admin-user"),
		adminUser:      s.add("CANCELNOTIFY_ADMIN_USER", "admin-user", "", "basic-auth user for all admin endpoints but /healthz and /readyz (required when the admin address is not loopback)"),
		adminPassword:  s.secret("CANCELNOTIFY_ADMIN_PASSWORD", "admin-password", "basic-auth password (secret)"),
		webhookAddr:    s.add("CANCELNOTIFY_WEBHOOK_ADDR", "webhook-addr", daemon.DefaultWebhookAddr, "public listener for 1MSG's status pushes (POST /webhooks/1msg/{secret} only)"),
		webhookSecret:  s.secret("CANCELNOTIFY_WEBHOOK_SECRET", "webhook-secret", "the webhook path's secret (16+ characters of A-Z a-z 0-9 _ -); unset = no webhook, polling only"),
		callbackURL:    s.add("CANCELNOTIFY_CALLBACK_URL", "callback-url", "", "CRM endpoint that receives each final status and in_doubt as a signed POST"),
		callbackSecret: s.secret("CANCELNOTIFY_CALLBACK_SECRET", "callback-secret", "Standard Webhooks signing secret of the callbacks (whsec_<base64>)"),
		phoneRegion:    s.add("CANCELNOTIFY_PHONE_REGION", "phone-region", "", "ISO 3166 country (e.g. RU, US) whose national notation reads phones written without a country code; \"\" = only numbers with + or 00 are sent"),
		pprof:          s.add("CANCELNOTIFY_PPROF", "pprof", "off", "on = serve Go profiles under /debug/pprof/ on the admin listener"),
	}
}

var webhookSecretRE = regexp.MustCompile(`^[A-Za-z0-9_-]{16,200}$`)

// webhookSecret checks CANCELNOTIFY_WEBHOOK_SECRET ("" is allowed: webhooks off).
func (o daemonOptions) webhookSecretValue(s *settings) string {
	v, _ := s.secretValue(o.webhookSecret, "webhook-secret")
	if v != "" && !webhookSecretRE.MatchString(v) {
		s.fail("%s must be 16-200 characters of A-Z a-z 0-9 _ - (it is part of a URL): generate one with `openssl rand -hex 24`", o.webhookSecret.name())
	}
	return v
}

func (o daemonOptions) apply(s *settings, c *daemon.Config) {
	c.TrackFor = s.duration(o.trackFor)
	if strings.TrimSpace(o.trackFirstPoll.raw) != "auto" {
		c.TrackFirstPoll = s.duration(o.trackFirstPoll)
	}
	c.SendFor = s.duration(o.sendFor)
	c.ShutdownTimeout = s.duration(o.shutdown)
	c.RelayPollInterval = s.duration(o.relayPoll)
	c.RelayBatchSize = s.integer(o.relayBatch, 1, 10000)
	c.SendWorkers = s.integer(o.sendWorkers, 1, 10000)
	c.TrackWorkers = s.integer(o.trackWorkers, 1, 10000)
	if c.PollRate = s.float(o.pollRate, 0, 100000); c.PollRate == 0 {
		c.PollRate = -1 // unpaced
	}
	c.MaxConns = int32(s.integer(o.maxConns, 4, 1000))
	c.Retention = s.duration(o.retention)
	if c.Retention == 0 {
		c.Retention = -1 // keep forever
	} else if c.Retention < 24*time.Hour {
		s.fail("%s = %s is shorter than a day: CRM and finance read these rows; use e.g. 2160h (90 days), or 0 to keep forever", o.retention.name(), o.retention.shown())
	}
	c.RiverCompletedRetention = s.duration(o.riverCompleted)
	c.RiverCancelledRetention = s.duration(o.riverCancelled)
	c.RiverDiscardedRetention = s.duration(o.riverDiscarded)
	c.AdminAddr = strings.TrimSpace(o.adminAddr.raw)
	c.AdminUser = strings.TrimSpace(o.adminUser.raw)
	c.AdminPassword, _ = s.secretValue(o.adminPassword, "admin-password")
	if (c.AdminUser == "") != (c.AdminPassword == "") {
		s.fail("%s and %s go together: set both to protect /metrics and /riverui/, or neither", o.adminUser.name(), o.adminPassword.name())
	} else if c.AdminAddr != "" && c.AdminUser == "" && !daemon.LoopbackAddr(c.AdminAddr) {
		s.fail("%s = %s is not a loopback address, so River UI and the metrics would be open to the network: set %s and %s, or listen on 127.0.0.1",
			o.adminAddr.name(), o.adminAddr.shown(), o.adminUser.name(), o.adminPassword.name())
	}
	c.Rate = s.float(o.rate, 0, 100000)
	c.PairInterval = s.duration(o.pairInterval)
	c.WebhookAddr = strings.TrimSpace(o.webhookAddr.raw)
	c.WebhookSecret = o.webhookSecretValue(s)
	if v := strings.TrimSpace(o.callbackURL.raw); v != "" {
		c.CallbackURL = s.httpURL(o.callbackURL)
		c.CallbackSecret, _ = s.secretValue(o.callbackSecret, "callback-secret")
		if c.CallbackSecret == "" {
			s.fail("%s is set but %s is not: the CRM needs it to verify callbacks (generate one with `echo \"whsec_$(head -c 32 /dev/urandom | base64)\"`)", o.callbackURL.name(), o.callbackSecret.name())
		} else if _, err := jobs.NewSigner(c.CallbackSecret); err != nil {
			s.fail("%v", err)
		}
	}
	c.PhoneRegion = strings.ToUpper(strings.TrimSpace(o.phoneRegion.raw))
	if err := outbox.CheckPhoneRegion(c.PhoneRegion); err != nil {
		s.fail("%s: %v", o.phoneRegion.name(), err)
	}
	switch strings.TrimSpace(o.pprof.raw) {
	case "on":
		c.Pprof = true
	case "off", "":
	default:
		s.fail("%s = %s: write on or off", o.pprof.name(), o.pprof.shown())
	}
	if c.TrackFor > 0 && c.TrackFor < time.Minute {
		s.fail("%s = %s is too short: WhatsApp statuses can take minutes; use at least 1m", o.trackFor.name(), o.trackFor.shown())
	}
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "run")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s)
	om := addOneMsgOptions(s)
	do := addDaemonOptions(s)
	lo := addLogOptions(s)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q: run takes only flags", fs.Args())
	}
	var cfg daemon.Config
	cfg.DatabaseURL, cfg.Schema = db.values(s)
	omv := om.values(s)
	cfg.OneMsg, cfg.Template, cfg.Namespace, cfg.Language = omv.client, omv.template, omv.namespace, omv.language
	cfg.SendTTL = omv.sendTTL
	do.apply(s, &cfg)
	cfg.Channels = omv.daemonChannels(cfg.PairInterval, cfg.PhoneRegion)
	cfg.Logger = lo.logger(s, e.stderr)
	if err := s.err(); err != nil {
		return err
	}
	cfg.Preflight = true
	cfg.Notifier = daemon.Systemd{}
	// Traces: the standard OTEL_* variables only (README, "Traces").
	tp, shutdownTraces, err := tracing.FromEnv(ctx, e.getenv, cfg.OneMsg.Token, cfg.WebhookSecret, cfg.CallbackSecret,
		cfg.AdminPassword, databasePassword(cfg.DatabaseURL))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTraces(sctx); err != nil {
			cfg.Logger.Warn("traces: the last spans were not exported", "error", err)
		}
	}()
	if tp != nil {
		cfg.TracerProvider = tp
		cfg.Logger.Info("traces on", "exporter", cmp.Or(e.getenv("OTEL_TRACES_EXPORTER"), "otlp"),
			"service_name", cmp.Or(e.getenv("OTEL_SERVICE_NAME"), tracing.DefaultServiceName))
	}
	d, err := daemon.New(ctx, cfg)
	if errors.Is(err, cnsql.ErrNotMigrated) || errors.Is(err, preflight.ErrTemplateMissing) {
		// Restarting cannot fix these (systemd: RestartPreventExitStatus=2).
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// databasePassword is the password in a connection string, so that traces
// can be kept free of it; "" when there is none or it does not parse.
func databasePassword(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return c.Password
}

// durationText writes a default duration the way a user types it: "24h",
// not "24h0m0s".
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
