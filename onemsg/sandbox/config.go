package sandbox

import (
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Template is a message template as the channel knows it (GET /templates).
type Template struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Language  string `json:"language"`
	// Status is the review status as 1MSG reports it, lowercase:
	// "approved", "pending", "rejected", "paused", "disabled". Only approved
	// templates can be sent.
	Status string `json:"status"`
	// Category is Meta's: "UTILITY", "MARKETING" or "AUTHENTICATION". Its
	// lowercase form is the conversation origin and pricing category.
	Category string `json:"category"`
	// Body is the body text with Meta's positional variables {{1}}…{{n}}.
	Body string `json:"body"`
	// BodyParams is the number of body variables. Zero means "derive it from
	// Body" (the highest {{n}}).
	BodyParams int      `json:"bodyParams"`
	Buttons    []Button `json:"buttons,omitempty"`
}

// Button is a template button. A URL button whose URL contains {{1}} is
// dynamic and takes one button parameter; any other button is static and
// must not be given parameters.
type Button struct {
	Type string `json:"type"` // "URL", "QUICK_REPLY", "PHONE_NUMBER"
	Text string `json:"text"`
	URL  string `json:"url,omitempty"`
}

// dynamic reports whether the button takes a parameter when sent.
func (b Button) dynamic() bool {
	return strings.EqualFold(b.Type, "URL") && strings.Contains(b.URL, "{{")
}

var varPattern = regexp.MustCompile(`\{\{\s*(\d+)\s*\}\}`)

// bodyParams returns the number of body variables: BodyParams when set,
// otherwise the highest {{n}} in Body, because Meta numbers them 1…n.
func (t Template) bodyParams() int {
	if t.BodyParams > 0 {
		return t.BodyParams
	}
	n := 0
	for _, m := range varPattern.FindAllStringSubmatch(t.Body, -1) {
		if v, err := strconv.Atoi(m[1]); err == nil && v > n {
			n = v
		}
	}
	return n
}

// hydrate fills the body variables the way WhatsApp renders the message.
func (t Template) hydrate(params []string) string {
	return varPattern.ReplaceAllStringFunc(t.Body, func(v string) string {
		n, _ := strconv.Atoi(varPattern.FindStringSubmatch(v)[1])
		if n < 1 || n > len(params) {
			return v
		}
		return params[n-1]
	})
}

// Settings are the channel settings of GET/POST /settings. Acks are pushed
// only when WebhookURLs is not empty and AckNotificationsOn is true, as
// 1MSG documents; a fresh channel has neither, so a client must switch
// ack notifications on itself.
type Settings struct {
	WebhookURLs                []string `json:"webhookUrls"`
	AckNotificationsOn         bool     `json:"ackNotificationsOn"`
	RawHooks                   bool     `json:"rawHooks"`
	GuaranteedHooks            bool     `json:"guaranteedHooks"`
	TemplateAnalyticsEnabled   bool     `json:"template_analytics_enabled"`
	CTAURLLinkTrackingOptedOut bool     `json:"cta_url_link_tracking_opted_out"`
}

func (s Settings) clone() Settings {
	s.WebhookURLs = append([]string(nil), s.WebhookURLs...)
	return s
}

// Config configures a Server. Start from DefaultConfig or ConfigFromEnv:
// New fills empty strings, a nil Templates and zero pool sizes with the
// defaults, but a zero duration means "at once", which is what fast tests
// want and not what 1MSG does.
type Config struct {
	Channel string // channel (instance) id, the first path segment; default "sandbox"
	Token   string // the channel's API token; default "sandbox-token"
	// Channels are more channels served besides Channel, each with its
	// own token and templates (see ChannelConfig); also added at run time
	// with AddChannel or POST /_sandbox/channels.
	Channels []ChannelConfig
	// ChannelStatus is what GET /status reports; default "connected".
	ChannelStatus string
	// Templates on the channel; default: DefaultTemplates().
	Templates []Template

	// BusinessPhone is the channel's WhatsApp number (digits): the author of
	// outgoing messages in /messages and display_phone_number in raw hooks.
	BusinessPhone string // default "15550001234"
	BusinessName  string // senderName in /messages; default "Sandbox Shop"

	// Status timing, measured from acceptance. WhatsApp reports sent at
	// once, delivered and read later; DefaultConfig uses 0, 1s and 3s.
	SentAfter, DeliveredAfter, ReadAfter time.Duration

	// Outcome: every accepted message is delivered then read, except
	// recipients whose phone ends with one of FailSuffixes, a FailRate share
	// that fails and a NoReadRate share that stops at delivered.
	FailRate     float64
	FailSuffixes []string
	FailCode     int    // Meta error code of a failed message; default 131026
	FailText     string // its title; default "Message undeliverable"
	NoReadRate   float64

	// HistoryDisabled makes GET /messages answer like a channel whose message
	// history is off: a notice and an empty list.
	HistoryDisabled bool
	// WebhooksDisabled stops all pushes even when a webhook is registered.
	WebhooksDisabled bool

	// Settings are the channel settings at start (and after a reset with
	// settings=1). DefaultConfig: no webhook, ack notifications off.
	Settings Settings
	// Faults injected from the start (and after a reset).
	Faults Faults

	// Webhook delivery. A push that fails is retried with exponential
	// back-off from WebhookRetryMin until WebhookRetryFor has passed since
	// the first attempt, then dropped and counted.
	WebhookWorkers  int           // default 8
	WebhookTimeout  time.Duration // per attempt; default 5s
	WebhookRetryMin time.Duration // default 200ms
	WebhookRetryFor time.Duration // default 1m
	AckBatchWindow  time.Duration // acks due together go in one POST; default 20ms
	AckBatchMax     int           // most acks in one POST; default 100

	// Seed seeds every random decision (faults, outcomes, ids); 0 means
	// time-based. A fixed seed makes a run reproducible.
	Seed int64
	// Logger receives debug lines about requests and pushes; nil discards.
	Logger *slog.Logger
}

// The defaults: the template of 1MSG's order-cancellation use case
// (docs/onemsg.md).
const (
	DefaultChannel   = "sandbox"
	DefaultToken     = "sandbox-token"
	DefaultTemplate  = "order_cancelled"
	DefaultNamespace = "sandbox_ns"
	DefaultLanguage  = "en"
	DefaultBody      = `Hello, {{1}}! Order #{{2}} for "{{3}}" has been cancelled. {{4}}.`
)

// DefaultTemplates returns the default channel template: the use case's approved
// UTILITY template with four body variables and a static URL button.
func DefaultTemplates() []Template {
	return []Template{{
		Name:       DefaultTemplate,
		Namespace:  DefaultNamespace,
		Language:   DefaultLanguage,
		Status:     "approved",
		Category:   "UTILITY",
		Body:       DefaultBody,
		BodyParams: 4,
		Buttons:    []Button{{Type: "URL", Text: "Order details", URL: "https://shop.example/orders/"}},
	}}
}

// DefaultConfig returns the configuration of a realistic channel: the
// default template, sent at once, delivered after 1s, read after 3s.
func DefaultConfig() Config {
	return Config{
		Channel:        DefaultChannel,
		Token:          DefaultToken,
		ChannelStatus:  "connected",
		Templates:      DefaultTemplates(),
		BusinessPhone:  "15550001234",
		BusinessName:   "Sandbox Shop",
		DeliveredAfter: time.Second,
		ReadAfter:      3 * time.Second,
		FailCode:       131026,
		FailText:       "Message undeliverable",
	}
}

// ConfigFromEnv returns DefaultConfig with the variables the daemon reads
// applied, so one environment makes daemon and sandbox agree:
// ONEMSG_CHANNEL_ID, ONEMSG_TOKEN, and ONEMSG_TEMPLATE, ONEMSG_NAMESPACE,
// ONEMSG_LANGUAGE, which rename the default template. Unset or empty
// variables keep the defaults. getenv is usually os.Getenv.
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := DefaultConfig()
	set := func(dst *string, key string) {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			*dst = v
		}
	}
	set(&cfg.Channel, "ONEMSG_CHANNEL_ID")
	set(&cfg.Token, "ONEMSG_TOKEN")
	set(&cfg.Templates[0].Name, "ONEMSG_TEMPLATE")
	set(&cfg.Templates[0].Namespace, "ONEMSG_NAMESPACE")
	set(&cfg.Templates[0].Language, "ONEMSG_LANGUAGE")
	return cfg
}

// withDefaults fills what New cannot run without. Durations stay as given.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	str := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	str(&c.Channel, def.Channel)
	str(&c.Token, def.Token)
	str(&c.ChannelStatus, def.ChannelStatus)
	str(&c.BusinessPhone, def.BusinessPhone)
	str(&c.BusinessName, def.BusinessName)
	str(&c.FailText, def.FailText)
	if c.Templates == nil {
		c.Templates = def.Templates
	}
	c.Templates = append([]Template(nil), c.Templates...)
	if c.FailCode == 0 {
		c.FailCode = def.FailCode
	}
	if c.WebhookWorkers <= 0 {
		c.WebhookWorkers = 8
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 5 * time.Second
	}
	if c.WebhookRetryMin <= 0 {
		c.WebhookRetryMin = 200 * time.Millisecond
	}
	if c.WebhookRetryFor <= 0 {
		c.WebhookRetryFor = time.Minute
	}
	if c.AckBatchWindow <= 0 {
		c.AckBatchWindow = 20 * time.Millisecond
	}
	if c.AckBatchMax <= 0 {
		c.AckBatchMax = 100
	}
	if c.DeliveredAfter < c.SentAfter {
		c.DeliveredAfter = c.SentAfter
	}
	if c.ReadAfter < c.DeliveredAfter {
		c.ReadAfter = c.DeliveredAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Settings = c.Settings.clone()
	return c
}
