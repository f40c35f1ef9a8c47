package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// SecondChannel names the run's second 1MSG channel: what the payload key
// "channel" of its rows says (README.md, "Several channels").
const SecondChannel = "brand-b"

// ChannelInfo is one 1MSG channel of the run, as the sandbox serves it.
type ChannelInfo struct {
	Name      string `json:"name"`       // what a payload's "channel" key says
	ID        string `json:"channel_id"` // the channel (instance) id, first path segment
	Template  string `json:"template"`
	Namespace string `json:"namespace"`
}

// channel is a channel of the run with its token and the sandbox's
// instruments for it.
type channel struct {
	ChannelInfo
	token string
	sb    *sandbox.Control
}

// runChannels are the run's channels: the default one, which the ONEMSG_*
// variables describe, and SecondChannel unless no row names it. The second
// has its own id, token, template and namespace, so a message sent through
// the wrong one, or with the wrong token, shows.
func runChannels(secondShare float64) []channel {
	out := []channel{{ChannelInfo: ChannelInfo{Name: ledger.DefaultChannel, ID: sandbox.DefaultChannel,
		Template: sandbox.DefaultTemplate, Namespace: sandbox.DefaultNamespace}, token: sandbox.DefaultToken}}
	if secondShare > 0 {
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		out = append(out, channel{ChannelInfo: ChannelInfo{Name: SecondChannel, ID: "chaosbrandb",
			Template: "brand_b_order_cancelled", Namespace: "brand_b_ns"}, token: "brand-b-" + hex.EncodeToString(tok)})
	}
	return out
}

// writeChannelsFile writes the channels file (CANCELNOTIFY_CHANNELS_FILE)
// of every channel but the default one into dir, each token in a file of
// its own, and returns its path. Each channel's rate is the daemon's
// CANCELNOTIFY_RATE, so no channel is throttled more than the default one.
func writeChannelsFile(dir string, chans []channel, rate float64) (string, error) {
	type entry struct {
		Name      string  `yaml:"name"`
		ChannelID string  `yaml:"channel_id"`
		TokenFile string  `yaml:"token_file"`
		Template  string  `yaml:"template"`
		Namespace string  `yaml:"namespace"`
		Rate      float64 `yaml:"rate"`
	}
	var f struct {
		Channels []entry `yaml:"channels"`
	}
	for _, c := range chans[1:] {
		tokenFile := filepath.Join(dir, c.Name+".token")
		if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write the token file of channel %s: %w", c.Name, err)
		}
		f.Channels = append(f.Channels, entry{Name: c.Name, ChannelID: c.ID, TokenFile: tokenFile,
			Template: c.Template, Namespace: c.Namespace, Rate: rate})
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("encode the channels file: %w", err)
	}
	path := filepath.Join(dir, "channels.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("write the channels file: %w", err)
	}
	return path, nil
}

// settled reports whether WhatsApp (the sandbox) has said all it will on
// every channel: every message reached its planned status and no ack is
// still on its way to the daemon's webhook.
func settled(ctx context.Context, chans []channel) (bool, error) {
	for _, c := range chans {
		st, err := c.sb.Stats(ctx)
		if err != nil || st.PushesPending > 0 {
			return false, err
		}
		msgs, err := c.sb.Messages(ctx, "")
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if m.Status != m.Planned {
				return false, nil
			}
		}
	}
	return true, nil
}

// acceptedMessages returns every message the sandbox accepted on any
// channel, whatever the daemon learnt about it.
func acceptedMessages(ctx context.Context, chans []channel) ([]AcceptedMessage, error) {
	var out []AcceptedMessage
	for _, c := range chans {
		msgs, err := c.sb.Messages(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", c.Name, err)
		}
		for _, m := range msgs {
			a := AcceptedMessage{Wamid: m.ID, Channel: c.Name, Template: m.Template, Namespace: m.Namespace,
				Dropped: m.Dropped, Status: m.Status, Planned: m.Planned}
			if len(m.Params) > 1 {
				a.OrderNumber = m.Params[1] // {{2}} is the order number
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// sentRequests returns every sendTemplate request each channel received,
// with whether it carried that channel's token; the token itself stays
// here.
func sentRequests(ctx context.Context, chans []channel) ([]SentRequest, error) {
	var out []SentRequest
	for _, c := range chans {
		reqs, err := c.sb.Requests(ctx)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", c.Name, err)
		}
		for _, r := range reqs {
			out = append(out, SentRequest{Channel: c.Name, Outcome: string(r.Outcome), TokenOK: requestToken(r) == c.token})
		}
	}
	return out, nil
}

// requestToken is the token a request carried, looked for where 1MSG
// looks: the body's "token", the query's, the Authorization header.
func requestToken(r sandbox.Request) string {
	var body map[string]json.RawMessage
	if json.Unmarshal(r.Body, &body) == nil {
		var t string
		if raw, ok := body["token"]; ok && json.Unmarshal(raw, &t) == nil {
			return t
		}
	}
	if q, err := url.ParseQuery(r.RawQuery); err == nil && q.Has("token") {
		return q.Get("token")
	}
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) >= 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return h
}

// summarizeSandbox is what the table shows of one channel's counters.
func summarizeSandbox(s sandbox.Stats) *SandboxSummary {
	return &SandboxSummary{
		SendRequests: s.SendRequests, Accepted: s.Accepted, Dropped: s.Dropped, Faulted: s.Faulted,
		Throttled: s.Throttled, Rejected: s.Rejected, Unauthorized: s.Unauthorized, HookInfoCalls: s.HookInfoCalls,
		MessagesCalls: s.MessagesCalls, AcksPushed: s.AcksPushed, PushFailures: s.WebhookPushFailures,
		PushesDropped: s.WebhookPushesDropped,
	}
}

// add adds another channel's counters to s.
func (s *SandboxSummary) add(o *SandboxSummary) {
	s.SendRequests += o.SendRequests
	s.Accepted += o.Accepted
	s.Dropped += o.Dropped
	s.Faulted += o.Faulted
	s.Throttled += o.Throttled
	s.Rejected += o.Rejected
	s.Unauthorized += o.Unauthorized
	s.HookInfoCalls += o.HookInfoCalls
	s.MessagesCalls += o.MessagesCalls
	s.AcksPushed += o.AcksPushed
	s.PushFailures += o.PushFailures
	s.PushesDropped += o.PushesDropped
}
