package onemsg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"
	"time"
)

// MaxWebhooks is how many webhook URLs 1MSG keeps per channel.
const MaxWebhooks = 5

// SetWebhookResult is POST /webhook's answer.
type SetWebhookResult struct {
	Set     bool   `json:"set"`
	Message string `json:"message"`
}

// SetWebhook replaces the channel's webhook list with urls (at most
// MaxWebhooks). 1MSG does not append: callers that must keep other URLs read
// Webhooks first.
func (c *Client) SetWebhook(ctx context.Context, urls []string) (_ *SetWebhookResult, err error) {
	defer c.finish("webhook", time.Now(), &err)
	if len(urls) > MaxWebhooks {
		return nil, &Error{Op: "webhook", Kind: KindRejected, Message: fmt.Sprintf("%d webhook URLs given; 1MSG keeps at most %d", len(urls), MaxWebhooks)}
	}
	var body any = urls
	if len(urls) == 1 {
		body = urls[0]
	}
	var r SetWebhookResult
	if err := c.do(ctx, "webhook", http.MethodPost, "webhook", nil, map[string]any{"webhookUrl": body}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Webhooks returns the registered webhook URLs (GET /webhook), whether 1MSG
// answers with one URL, a list or a comma-separated string.
func (c *Client) Webhooks(ctx context.Context) (_ []string, err error) {
	defer c.finish("webhook", time.Now(), &err)
	var out struct {
		WebhookURL json.RawMessage `json:"webhookUrl"`
	}
	if err := c.do(ctx, "webhook", http.MethodGet, "webhook", nil, nil, &out); err != nil {
		return nil, err
	}
	return webhookURLs(out.WebhookURL), nil
}

func webhookURLs(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		list = strings.Split(s, ",")
	}
	out := list[:0]
	for _, u := range list {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Settings are the channel settings cancelnotify reads and writes.
type Settings struct {
	WebhookURLs        []string
	AckNotificationsOn bool
	RawHooks           bool
	GuaranteedHooks    bool
	Raw                json.RawMessage // the whole answer, for display
}

// UnmarshalJSON reads GET/POST /settings answers.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var w struct {
		WebhookURL         json.RawMessage `json:"webhookUrl"`
		AckNotificationsOn bool            `json:"ackNotificationsOn"`
		RawHooks           bool            `json:"rawHooks"`
		GuaranteedHooks    bool            `json:"guaranteedHooks"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Settings{WebhookURLs: webhookURLs(w.WebhookURL), AckNotificationsOn: w.AckNotificationsOn,
		RawHooks: w.RawHooks, GuaranteedHooks: w.GuaranteedHooks, Raw: append(json.RawMessage(nil), b...)}
	return nil
}

// SettingsUpdate lists the settings to change; nil fields stay as they are.
type SettingsUpdate struct {
	AckNotificationsOn *bool `json:"ackNotificationsOn,omitempty"`
	RawHooks           *bool `json:"rawHooks,omitempty"`
	GuaranteedHooks    *bool `json:"guaranteedHooks,omitempty"`
}

// Settings returns the channel settings.
func (c *Client) Settings(ctx context.Context) (_ *Settings, err error) {
	defer c.finish("settings", time.Now(), &err)
	var s Settings
	if err := c.do(ctx, "settings", http.MethodGet, "settings", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// UpdateSettings changes the channel settings and returns them as 1MSG
// reports them afterwards.
func (c *Client) UpdateSettings(ctx context.Context, u SettingsUpdate) (_ *Settings, err error) {
	defer c.finish("settings", time.Now(), &err)
	var s Settings
	if err := c.do(ctx, "settings", http.MethodPost, "settings", nil, u, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// RegisterWebhook makes url one of the channel's webhooks and turns on ack
// notifications, and returns the settings as 1MSG reports them afterwards.
//
// 1MSG replaces the whole list (SetWebhook), so the other URLs registered are
// kept, except one that differs from url only in its last path segment: that
// is this receiver with a secret since rotated, and url replaces it. With
// MaxWebhooks other URLs registered nothing is changed and the error says to
// remove one. The two calls are not atomic: when the second fails, run
// RegisterWebhook again; it is idempotent.
func (c *Client) RegisterWebhook(ctx context.Context, url string) (*Settings, error) {
	current, err := c.Webhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the registered webhooks: %w", err)
	}
	urls := make([]string, 0, len(current)+1)
	for _, u := range current {
		if !sameReceiver(u, url) {
			urls = append(urls, u)
		}
	}
	urls = append(urls, url)
	if len(urls) > MaxWebhooks {
		return nil, fmt.Errorf("1MSG keeps at most %d webhook URLs and already has %d others; remove one in the 1MSG dashboard, then register again",
			MaxWebhooks, len(urls)-1)
	}
	res, err := c.SetWebhook(ctx, urls)
	if err != nil {
		return nil, fmt.Errorf("register the webhook: %w", err)
	}
	if !res.Set {
		return nil, fmt.Errorf("1MSG did not set the webhook: %s", res.Message)
	}
	on := true
	st, err := c.UpdateSettings(ctx, SettingsUpdate{AckNotificationsOn: &on})
	if err != nil {
		return nil, fmt.Errorf("webhook registered, but turning on ack notifications failed: %w; register again", err)
	}
	return st, nil
}

// sameReceiver reports whether a and b differ at most in their last path
// segment (and scheme): the same receiver, perhaps with another secret.
func sameReceiver(a, b string) bool {
	ua, errA := neturl.Parse(a)
	ub, errB := neturl.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	parent := func(p string) string {
		p = strings.TrimRight(p, "/")
		return p[:strings.LastIndex(p, "/")+1]
	}
	pa, pb := strings.TrimRight(ua.Path, "/"), strings.TrimRight(ub.Path, "/")
	if pa == pb {
		return ua.Host == ub.Host
	}
	// Only a URL with a path of its own can carry a secret segment.
	return ua.Host == ub.Host && pa != "" && pb != "" && parent(pa) == parent(pb) && parent(pa) != "/"
}
