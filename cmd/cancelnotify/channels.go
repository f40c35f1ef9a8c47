package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/channels"
	"github.com/cancelnotify/cancelnotify/internal/daemon"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// fileChannel is a channel of CANCELNOTIFY_CHANNELS_FILE, checked.
type fileChannel struct {
	daemon.Channel
	pairSet bool // the file gives pair_interval; else CANCELNOTIFY_PAIR_INTERVAL applies
}

// channelsFile reads the channels file o names ("" = none), checks it
// against the default channel def, and resolves each channel's token.
// Every problem goes to s, naming the file, the entry and the field.
func (s *settings) channelsFile(o *option, def oneMsgValues) []fileChannel {
	path := strings.TrimSpace(o.raw)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		s.fail("%s: %s cannot be read (%v): make it readable by the daemon's user, or unset it", o.name(), path, err)
		return nil
	}
	defer f.Close()
	specs, probs := channels.Parse(f)
	for _, p := range probs {
		s.fail("%s (%s): %s", o.name(), path, p)
	}
	if len(probs) > 0 {
		return nil
	}
	out := make([]fileChannel, 0, len(specs))
	for i, sp := range specs {
		at := fmt.Sprintf("%s (%s): channels[%d] (%s)", o.name(), path, i, sp.Name)
		if sp.ChannelID == def.client.Channel {
			s.fail("%s: channel_id %s is ONEMSG_CHANNEL_ID, the default channel: one 1MSG channel can have only one name", at, sp.ChannelID)
		}
		c := fileChannel{Channel: daemon.Channel{
			Name:        sp.Name,
			OneMsg:      onemsg.Config{BaseURL: def.client.BaseURL, Channel: sp.ChannelID, Token: s.channelToken(at, sp), Timeout: def.client.Timeout},
			Template:    sp.Template,
			Namespace:   sp.Namespace,
			Language:    sp.Language,
			Rate:        channels.DefaultRate,
			PhoneRegion: sp.PhoneRegion,
		}}
		if sp.APIURL != "" {
			c.OneMsg.BaseURL = sp.APIURL
		}
		if c.Language == "" {
			c.Language = def.language
		}
		if sp.Rate != nil {
			c.Rate = *sp.Rate
		}
		if sp.PairInterval != nil {
			c.PairInterval, c.pairSet = *sp.PairInterval, true
		}
		out = append(out, c)
	}
	return out
}

// channelToken reads a file channel's token: its token_file, else the
// systemd credential onemsg-token-<name>.
func (s *settings) channelToken(at string, sp channels.Spec) string {
	path, from := sp.TokenFile, "token_file"
	if path == "" {
		cred := channels.CredentialName(sp.Name)
		if dir := s.getenv("CREDENTIALS_DIRECTORY"); dir != "" && fileExists(filepath.Join(dir, cred)) {
			path, from = filepath.Join(dir, cred), "systemd credential "+cred
		}
	}
	if path == "" {
		s.fail("%s: no token: set token_file: /etc/cancelnotify/%s.token, or pass the systemd credential %s (LoadCredential=%s:/path)",
			at, sp.Name, channels.CredentialName(sp.Name), channels.CredentialName(sp.Name))
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		s.fail("%s: %s %s cannot be read (%v): make it readable by the daemon's user", at, from, path, err)
		return ""
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		s.fail("%s: %s %s is empty: put the channel's 1MSG token in it", at, from, path)
	}
	return v
}

// daemonChannels are the file's channels with CANCELNOTIFY_PAIR_INTERVAL
// and CANCELNOTIFY_PHONE_REGION where the file gives no pair_interval or
// phone_region.
func (v oneMsgValues) daemonChannels(pair time.Duration, region string) []daemon.Channel {
	out := make([]daemon.Channel, len(v.more))
	for i, c := range v.more {
		out[i] = c.Channel
		if !c.pairSet {
			out[i].PairInterval = pair
		}
		if out[i].PhoneRegion == "" {
			out[i].PhoneRegion = region
		}
	}
	return out
}
