package main

import (
	"context"
	"fmt"

	"github.com/cancelnotify/cancelnotify/internal/channels"
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
	// Every channel pushes to the same receiver, which tells them apart by
	// instanceId.
	type channelConn struct {
		name string
		cfg  onemsg.Config
	}
	targets := []channelConn{{channels.Default, cfg}}
	for _, c := range s.channelsFile(om.channelsFile, oneMsgValues{client: cfg}) {
		targets = append(targets, channelConn{c.Name, c.OneMsg})
	}
	var target string
	if sub == "register" {
		sec, _ := s.secretValue(secret, "webhook-secret")
		var err error
		if target, err = webhook.PublicURL(fs.Arg(1), sec); err != nil {
			s.fail("%v", err)
		}
	}
	if err := s.err(); err != nil {
		return err
	}
	for _, tg := range targets {
		if len(targets) > 1 {
			fmt.Fprintf(e.stdout, "channel %s (%s):\n", tg.name, tg.cfg.Channel)
		}
		if err := webhookOne(ctx, e, sub, tg.cfg, target); err != nil {
			if len(targets) > 1 {
				return fmt.Errorf("channel %s: %w", tg.name, err)
			}
			return err
		}
	}
	return nil
}

// webhookOne shows or registers the webhook of one channel.
func webhookOne(ctx context.Context, e *env, sub string, cfg onemsg.Config, target string) error {
	client, err := onemsg.NewClient(cfg)
	if err != nil {
		return err
	}
	if sub == "show" {
		current, err := client.Webhooks(ctx)
		if err != nil {
			return fmt.Errorf("read the registered webhooks: %w", err)
		}
		st, err := client.Settings(ctx)
		if err != nil {
			return fmt.Errorf("read the channel settings: %w", err)
		}
		fmt.Fprintf(e.stdout, "1MSG pushes to %d URL(s); ackNotificationsOn=%v rawHooks=%v\n", len(current), st.AckNotificationsOn, st.RawHooks)
		for _, u := range current {
			fmt.Fprintf(e.stdout, "  %s\n", printable(webhook.Redact(u)))
		}
		return nil
	}

	st, err := client.RegisterWebhook(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "webhook registered: 1MSG pushes statuses to %d URL(s), ackNotificationsOn=%v\n", len(st.WebhookURLs), st.AckNotificationsOn)
	for _, u := range st.WebhookURLs {
		mark := ""
		if u == target {
			mark = "  ← cancelnotify"
		}
		fmt.Fprintf(e.stdout, "  %s%s\n", printable(webhook.Redact(u)), mark)
	}
	if !st.AckNotificationsOn {
		return fmt.Errorf("1MSG reports ackNotificationsOn=false: statuses will not be pushed; check the channel in the 1MSG dashboard")
	}
	return nil
}
