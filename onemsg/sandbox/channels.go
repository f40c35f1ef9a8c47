package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ChannelConfig is one more channel a sandbox serves besides
// Config.Channel. Each channel is separate, as on 1MSG: its own token,
// templates, messages, settings (webhook) and counters. Timing, outcomes
// and faults are the Config's.
type ChannelConfig struct {
	Channel string `json:"channel"` // the channel (instance) id, first path segment
	Token   string `json:"token"`
	// Templates on the channel; default DefaultTemplates().
	Templates []Template `json:"templates,omitempty"`
	// BusinessPhone is the channel's WhatsApp number; default derived
	// from the channel id.
	BusinessPhone string `json:"businessPhone,omitempty"`
}

// more returns the Server of the channel id among the extra channels.
func (s *Server) more(id string) (*Server, bool) {
	s.moreMu.RLock()
	defer s.moreMu.RUnlock()
	o, ok := s.others[id]
	return o, ok
}

// Channel returns the server of the channel id: s itself for
// Config.Channel, or one of the channels added by Config.Channels or
// AddChannel.
func (s *Server) Channel(id string) (*Server, bool) {
	if id == "" || id == s.cfg.Channel {
		return s, true
	}
	return s.more(id)
}

// Channels lists the channel ids served, Config.Channel first.
func (s *Server) Channels() []string {
	s.moreMu.RLock()
	defer s.moreMu.RUnlock()
	out := []string{s.cfg.Channel}
	for id := range s.others {
		out = append(out, id)
	}
	slices.Sort(out[1:])
	return out
}

// AddChannel starts serving one more channel. An id already served is
// refused.
func (s *Server) AddChannel(c ChannelConfig) error {
	if c.Channel == "" || strings.ContainsAny(c.Channel, "/?# ") || strings.HasPrefix(c.Channel, "_") {
		return fmt.Errorf("channel id %q is not usable: give letters and digits, like ODI371267301", c.Channel)
	}
	if c.Token == "" {
		return fmt.Errorf("channel %s: token is empty: give the channel its own token", c.Channel)
	}
	sub := s.cfg
	sub.Channels = nil
	sub.Channel, sub.Token, sub.Templates = c.Channel, c.Token, c.Templates
	if sub.Templates == nil {
		sub.Templates = DefaultTemplates()
	}
	sub.BusinessPhone = c.BusinessPhone
	if sub.BusinessPhone == "" {
		sub.BusinessPhone = fmt.Sprintf("1555%07d", fnvSum(c.Channel)%1e7)
	}
	if sub.Seed != 0 {
		sub.Seed ^= int64(fnvSum(c.Channel) >> 1)
	}
	s.moreMu.Lock()
	defer s.moreMu.Unlock()
	if _, dup := s.others[c.Channel]; dup || c.Channel == s.cfg.Channel {
		return fmt.Errorf("channel %s is already served", c.Channel)
	}
	if s.others == nil {
		s.others = map[string]*Server{}
	}
	s.others[c.Channel] = New(sub)
	return nil
}

// closeMore stops the extra channels.
func (s *Server) closeMore() {
	s.moreMu.RLock()
	defer s.moreMu.RUnlock()
	for _, o := range s.others {
		o.Close()
	}
}

// serveChannels serves /_sandbox/channels: GET lists the channel ids, POST
// adds a channel (a ChannelConfig).
func (s *Server) serveChannels(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, map[string][]string{"channels": s.Channels()})
	case http.MethodPost:
		b, err := readBody(w, r)
		var c ChannelConfig
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err == nil {
			err = s.AddChannel(c)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string][]string{"channels": s.Channels()})
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodPost)
	}
}
