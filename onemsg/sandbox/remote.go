package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Control drives a sandbox running in another process through its
// instruments (/_sandbox/…), the way Server's methods drive one in this
// process. It needs no token.
type Control struct {
	base    string
	http    *http.Client
	channel string // "" = Config.Channel; else sent as ?channel=
}

// NewControl returns a Control for the sandbox at baseURL
// ("http://127.0.0.1:8089"). A nil client gets one with a two-minute timeout:
// the requests of a long run are tens of megabytes of JSON.
func NewControl(baseURL string, client *http.Client) *Control {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Control{base: baseURL, http: client}
}

// Channel returns a Control for the channel id among those the sandbox
// serves (Config.Channels, AddChannel): every instrument it reads or sets
// is that channel's, as with ?channel=ID.
func (c *Control) Channel(id string) *Control {
	cc := *c
	cc.channel = id
	return &cc
}

// Stats returns what the sandbox counted (GET /_sandbox/stats).
func (c *Control) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, http.MethodGet, "/_sandbox/stats", nil, &s)
	return s, err
}

// Messages returns every accepted message, or those to phone (digits only)
// when phone is not empty (GET /_sandbox/messages).
func (c *Control) Messages(ctx context.Context, phone string) ([]Message, error) {
	path := "/_sandbox/messages"
	if phone != "" {
		path += "?phone=" + url.QueryEscape(phone)
	}
	var msgs []Message
	err := c.do(ctx, http.MethodGet, path, nil, &msgs)
	return msgs, err
}

// Requests returns every POST /sendTemplate as received
// (GET /_sandbox/requests).
func (c *Control) Requests(ctx context.Context) ([]Request, error) {
	var rs []Request
	err := c.do(ctx, http.MethodGet, "/_sandbox/requests", nil, &rs)
	return rs, err
}

// Faults returns the faults injected now (GET /_sandbox/faults).
func (c *Control) Faults(ctx context.Context) (Faults, error) {
	var f Faults
	err := c.do(ctx, http.MethodGet, "/_sandbox/faults", nil, &f)
	return f, err
}

// SetFaults replaces the injected faults (PUT /_sandbox/faults); the sandbox
// refuses an out-of-range field and the error names it.
func (c *Control) SetFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, http.MethodPut, "/_sandbox/faults", f, nil)
}

// Reset forgets messages, requests, stats, faults and limits; with settings
// it also restores the initial channel settings (POST /_sandbox/reset).
func (c *Control) Reset(ctx context.Context, settings bool) error {
	path := "/_sandbox/reset"
	if settings {
		path += "?settings=1"
	}
	return c.do(ctx, http.MethodPost, path, nil, nil)
}

// WaitReady waits until the sandbox answers its stats, or timeout passes.
func (c *Control) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.Stats(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the sandbox at %s did not answer within %s: %w", c.base, timeout, err)
		case <-tick.C:
		}
	}
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("sandbox %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	if c.channel != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "channel=" + url.QueryEscape(c.channel)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sandbox %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("sandbox %s %s: decode: %w", method, path, err)
	}
	return nil
}
