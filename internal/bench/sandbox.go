package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// counters reads the sandbox's counters the cost figures use.
func counters(ctx context.Context, c *sandbox.Control) (SandboxCounters, error) {
	st, err := c.Stats(ctx)
	if err != nil {
		return SandboxCounters{}, err
	}
	return SandboxCounters{
		SendRequests: st.SendRequests, Accepted: st.Accepted, HookInfoCalls: st.HookInfoCalls,
		AcksPushed: st.AcksPushed, WebhookPushes: st.WebhookPushes,
	}, nil
}

// registerWebhook does what `cancelnotify webhook register` does at 1MSG:
// the daemon's URL as the channel's webhook, ack notifications on.
func registerWebhook(ctx context.Context, base, url string) error {
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: base, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
	if err != nil {
		return fmt.Errorf("sandbox client: %w", err)
	}
	if _, err := api.RegisterWebhook(ctx, url); err != nil {
		return fmt.Errorf("the daemon's webhook at the sandbox: %w", err)
	}
	return nil
}

// sendBody is the part of a sendTemplate body the bench reads: the body
// parameters, whose second is the order number ({{2}}).
type sendBody struct {
	Params []struct {
		Type       string `json:"type"`
		Parameters []struct {
			Text string `json:"text"`
		} `json:"parameters"`
	} `json:"params"`
}

// orderNumberOf returns the order number a sendTemplate request carries.
func orderNumberOf(body []byte) (string, bool) {
	var b sendBody
	if json.Unmarshal(body, &b) != nil {
		return "", false
	}
	for _, c := range b.Params {
		if c.Type == "body" && len(c.Parameters) >= 2 {
			return c.Parameters[1].Text, true
		}
	}
	return "", false
}

// arrivals returns, by event id of p, when the first sendTemplate request
// for each row reached the sandbox. A retry is not a second arrival: the
// latency that matters is to the first time the request left.
func arrivals(reqs []sandbox.Request, p phase) map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range reqs {
		order, ok := orderNumberOf(r.Body)
		if !ok {
			continue
		}
		i, ok := p.index(order)
		if !ok {
			continue
		}
		id := p.eventID(i)
		if t, seen := out[id]; !seen || r.At.Before(t) {
			out[id] = r.At
		}
	}
	return out
}
