package chaos

import (
	"context"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// settled reports whether WhatsApp (the sandbox) has said all it will: every
// message reached its planned status and no ack is still on its way to the
// daemon's webhook.
func settled(ctx context.Context, c *sandbox.Control) (bool, error) {
	st, err := c.Stats(ctx)
	if err != nil || st.PushesPending > 0 {
		return false, err
	}
	msgs, err := c.Messages(ctx, "")
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if m.Status != m.Planned {
			return false, nil
		}
	}
	return true, nil
}

// acceptedMessages returns every message the sandbox accepted, whatever
// the daemon learnt about it.
func acceptedMessages(ctx context.Context, c *sandbox.Control) ([]AcceptedMessage, error) {
	msgs, err := c.Messages(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]AcceptedMessage, len(msgs))
	for i, m := range msgs {
		out[i] = AcceptedMessage{Wamid: m.ID, Dropped: m.Dropped, Status: m.Status, Planned: m.Planned}
		if len(m.Params) > 1 {
			out[i].OrderNumber = m.Params[1] // {{2}} is the order number
		}
	}
	return out, nil
}
func summarizeSandbox(s sandbox.Stats) *SandboxSummary {
	return &SandboxSummary{
		SendRequests: s.SendRequests, Accepted: s.Accepted, Dropped: s.Dropped, Faulted: s.Faulted,
		Throttled: s.Throttled, Rejected: s.Rejected, HookInfoCalls: s.HookInfoCalls, MessagesCalls: s.MessagesCalls,
		AcksPushed: s.AcksPushed, PushFailures: s.WebhookPushFailures, PushesDropped: s.WebhookPushesDropped,
	}
}
