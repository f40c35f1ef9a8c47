package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/cancelnotify/cancelnotify/internal/webhook"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// cmdWebhook registers the daemon's webhook with 1MSG, or shows what 1MSG
// has registered.
func cmdWebhook(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "webhook")
	s := newSettings(fs, e.getenv)
	om := addOneMsgOptions(s)
	secret := s.secret("CANCELNOTIFY_WEBHOOK_SECRET", "webhook-secret", "appended as /webhooks/1msg/{secret} when URL has no such path")
	if err := parse(fs, args); err != nil {
		return err
	}
	sub := fs.Arg(0)
	if sub != "register" && sub != "show" || (sub == "register" && fs.NArg() != 2) || (sub == "show" && fs.NArg() != 1) {
		return usageError("usage: cancelnotify webhook register URL | cancelnotify webhook show")
	}
	// Only the connection settings matter here; the template ones may be unset.
	cfg := onemsg.Config{
		BaseURL: s.httpURL(om.apiURL),
		Channel: s.required(om.channel, "ONEMSG_CHANNEL_ID=ODI371267300"),
		Token:   s.token(om.token),
		Timeout: s.duration(om.timeout),
	}
	var target string
	if sub == "register" {
		sec, _ := s.secretValue(secret, "webhook-secret")
		target = webhookTarget(s, fs.Arg(1), sec)
	}
	if err := s.err(); err != nil {
		return err
	}
	client, err := onemsg.NewClient(cfg)
	if err != nil {
		return err
	}
	current, err := client.Webhooks(ctx)
	if err != nil {
		return fmt.Errorf("read the registered webhooks: %w", err)
	}
	if sub == "show" {
		st, err := client.Settings(ctx)
		if err != nil {
			return fmt.Errorf("read the channel settings: %w", err)
		}
		fmt.Fprintf(e.stdout, "1MSG pushes to %d URL(s); ackNotificationsOn=%v rawHooks=%v\n", len(current), st.AckNotificationsOn, st.RawHooks)
		for _, u := range current {
			fmt.Fprintf(e.stdout, "  %s\n", printable(redactWebhookURL(u)))
		}
		return nil
	}

	// 1MSG replaces the whole list: keep the other systems' URLs.
	urls := slices.DeleteFunc(slices.Clone(current), func(u string) bool { return sameWebhook(u, target) })
	urls = append(urls, target)
	if len(urls) > onemsg.MaxWebhooks {
		return fmt.Errorf("1MSG keeps at most %d webhook URLs and already has %d others; remove one in the 1MSG dashboard, then run this again",
			onemsg.MaxWebhooks, len(urls)-1)
	}
	res, err := client.SetWebhook(ctx, urls)
	if err != nil {
		return fmt.Errorf("register the webhook: %w", err)
	}
	if !res.Set {
		return fmt.Errorf("1MSG did not set the webhook: %s", res.Message)
	}
	on := true
	st, err := client.UpdateSettings(ctx, onemsg.SettingsUpdate{AckNotificationsOn: &on})
	if err != nil {
		return fmt.Errorf("webhook registered, but turning on ack notifications failed: %w; run this command again", err)
	}
	fmt.Fprintf(e.stdout, "webhook registered: 1MSG pushes statuses to %d URL(s), ackNotificationsOn=%v\n", len(st.WebhookURLs), st.AckNotificationsOn)
	for _, u := range st.WebhookURLs {
		mark := ""
		if sameWebhook(u, target) {
			mark = "  ← cancelnotify"
		}
		fmt.Fprintf(e.stdout, "  %s%s\n", printable(redactWebhookURL(u)), mark)
	}
	if !st.AckNotificationsOn {
		return fmt.Errorf("1MSG reports ackNotificationsOn=false: statuses will not be pushed; check the channel in the 1MSG dashboard")
	}
	return nil
}

// webhookTarget is the URL 1MSG must push to: URL as given when it already
// has the /webhooks/1msg/ path, else URL + that path + the secret.
func webhookTarget(s *settings, raw, secret string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		s.fail("webhook URL %q is not an http(s) URL: give the public base URL of the daemon's webhook listener, e.g. https://hooks.shop.example", raw)
		return ""
	}
	if strings.Contains(u.Path, webhook.PathPrefix) {
		return u.String()
	}
	if secret == "" {
		s.fail("CANCELNOTIFY_WEBHOOK_SECRET is not set: the URL needs it as its last path segment (the daemon must use the same one)")
		return ""
	}
	u.Path = strings.TrimRight(u.Path, "/") + webhook.PathPrefix + secret
	return u.String()
}

// sameWebhook reports whether two URLs point at the same cancelnotify
// receiver (a new secret replaces the old registration).
func sameWebhook(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	pa, _, _ := strings.Cut(ua.Path, webhook.PathPrefix)
	pb, _, _ := strings.Cut(ub.Path, webhook.PathPrefix)
	return ua.Host == ub.Host && pa == pb && strings.Contains(ua.Path, webhook.PathPrefix) == strings.Contains(ub.Path, webhook.PathPrefix)
}

// redactWebhookURL hides our secret path segment.
func redactWebhookURL(s string) string {
	if i := strings.Index(s, webhook.PathPrefix); i >= 0 {
		return s[:i+len(webhook.PathPrefix)] + "REDACTED"
	}
	return s
}
