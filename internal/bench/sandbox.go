package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// sandboxClient reads the instruments of a sandbox running in another
// process (onemsg/sandbox/doc.go).
type sandboxClient struct {
	base string
	http *http.Client
}

func newSandboxClient(base string) *sandboxClient {
	// Listing every request of a long run is tens of megabytes.
	return &sandboxClient{base: base, http: &http.Client{Timeout: 2 * time.Minute}}
}

func (s *sandboxClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sandbox GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("sandbox GET %s: decode: %w", path, err)
	}
	return nil
}

func (s *sandboxClient) counters(ctx context.Context) (SandboxCounters, error) {
	var st sandbox.Stats
	if err := s.get(ctx, "/_sandbox/stats", &st); err != nil {
		return SandboxCounters{}, err
	}
	return SandboxCounters{
		SendRequests: st.SendRequests, Accepted: st.Accepted, HookInfoCalls: st.HookInfoCalls,
		AcksPushed: st.AcksPushed, WebhookPushes: st.WebhookPushes,
	}, nil
}

func (s *sandboxClient) requests(ctx context.Context) ([]sandbox.Request, error) {
	var rs []sandbox.Request
	err := s.get(ctx, "/_sandbox/requests", &rs)
	return rs, err
}

// registerWebhook does what `cancelnotify webhook register` does at 1MSG:
// the daemon's URL as the channel's webhook, ack notifications on.
func registerWebhook(ctx context.Context, base, url string) error {
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: base, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
	if err != nil {
		return fmt.Errorf("sandbox client: %w", err)
	}
	if _, err := api.SetWebhook(ctx, []string{url}); err != nil {
		return fmt.Errorf("register the daemon's webhook with the sandbox: %w", err)
	}
	on := true
	if _, err := api.UpdateSettings(ctx, onemsg.SettingsUpdate{AckNotificationsOn: &on}); err != nil {
		return fmt.Errorf("turn on ack notifications: %w", err)
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
