package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// sandboxClient reads and steers the sandbox process through its
// instruments (/_sandbox/…), which need no token.
type sandboxClient struct {
	base string
	http *http.Client
}

func newSandboxClient(base string) *sandboxClient {
	// Messages of a 10,000-row run are a few MB of JSON: allow the time.
	return &sandboxClient{base: base, http: &http.Client{Timeout: time.Minute}}
}

// settled reports whether WhatsApp (the sandbox) has said all it will: every
// message reached its planned status and no ack is still on its way to the
// daemon's webhook.
func (c *sandboxClient) settled(ctx context.Context) (bool, error) {
	st, err := c.stats(ctx)
	if err != nil || st.PushesPending > 0 {
		return false, err
	}
	msgs, err := c.messages(ctx)
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

// waitReady waits until the sandbox answers its stats.
func (c *sandboxClient) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.stats(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sandbox at %s did not answer within %s: %w", c.base, timeout, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (c *sandboxClient) setFaults(ctx context.Context, f sandbox.Faults) error {
	return c.do(ctx, http.MethodPut, "/_sandbox/faults", f, nil)
}

func (c *sandboxClient) stats(ctx context.Context) (sandbox.Stats, error) {
	var s sandbox.Stats
	err := c.do(ctx, http.MethodGet, "/_sandbox/stats", nil, &s)
	return s, err
}

// messages returns every message the sandbox accepted, whatever the
// daemon learnt about it.
func (c *sandboxClient) messages(ctx context.Context) ([]AcceptedMessage, error) {
	var msgs []sandbox.Message
	if err := c.do(ctx, http.MethodGet, "/_sandbox/messages", nil, &msgs); err != nil {
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

func (c *sandboxClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("sandbox %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sandbox %s %s: HTTP %d: %s", method, path, resp.StatusCode, clip(string(b), 200))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("sandbox %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func summarizeSandbox(s sandbox.Stats) *SandboxSummary {
	return &SandboxSummary{
		SendRequests: s.SendRequests, Accepted: s.Accepted, Dropped: s.Dropped, Faulted: s.Faulted,
		Throttled: s.Throttled, Rejected: s.Rejected, HookInfoCalls: s.HookInfoCalls, MessagesCalls: s.MessagesCalls,
		AcksPushed: s.AcksPushed, PushFailures: s.WebhookPushFailures, PushesDropped: s.WebhookPushesDropped,
	}
}
