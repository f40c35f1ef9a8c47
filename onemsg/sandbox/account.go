package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// account is what the owner of a 1MSG channel, or Meta, changes while
// clients run: the token (revoked in the dashboard), the channel's
// connection, and the templates' review status (Meta pauses a template of
// low quality). Reset restores the configuration's.
type account struct {
	tokenRevoked bool
	status       string
	tpls         []Template
}

func newAccount(cfg Config) account {
	return account{status: cfg.ChannelStatus, tpls: slices.Clone(cfg.Templates)}
}

// channelStatuses are GET /status's values; connected and connecting send.
var channelStatuses = []string{"connected", "connecting", "disconnected", "uninitialized", "unregistered"}

// RevokeToken makes the channel's token wrong, as revoking it in the 1MSG
// dashboard does: every channel call answers 401 with 1MSG's body.
func (s *Server) RevokeToken() { s.setRevoked(true) }

// RestoreToken makes the configured token work again.
func (s *Server) RestoreToken() { s.setRevoked(false) }

func (s *Server) setRevoked(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account.tokenRevoked = v
}

// SetChannelStatus sets what GET /status reports. A channel that is not
// connected or connecting refuses every sendTemplate.
func (s *Server) SetChannelStatus(status string) error {
	if !slices.Contains(channelStatuses, status) {
		return fmt.Errorf("channel status %q is not one of %s", status, strings.Join(channelStatuses, ", "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account.status = status
	return nil
}

// SetTemplateStatus sets the review status ("approved", "paused",
// "disabled", "pending", "rejected") of the template name in language, or
// in every language when language is "".
func (s *Server) SetTemplateStatus(name, language, status string) error {
	status = strings.ToLower(status)
	if !slices.Contains([]string{"approved", "paused", "disabled", "pending", "rejected"}, status) {
		return fmt.Errorf("template status %q is not one of approved, paused, disabled, pending, rejected", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i, t := range s.account.tpls {
		if t.Name == name && (language == "" || t.Language == language) {
			s.account.tpls[i].Status = status
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("the channel has no template %q in language %q", name, language)
	}
	return nil
}

// templates returns the channel's templates as they are now.
func (s *Server) templates() []Template {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.account.tpls)
}

// notConnected is sendTemplate's answer on a channel that is not
// connected. 1MSG's sources show no such answer; the sandbox answers the
// way 1MSG answers every refusal of its send pipeline (HTTP 200, sent:false
// and a text), with the status GET /status reports.
func (s *Server) notConnected() *rejection {
	s.mu.Lock()
	st := s.account.status
	s.mu.Unlock()
	if st == "connected" || st == "connecting" {
		return nil
	}
	msg := fmt.Sprintf("Channel is not connected (status: %s). Connect the WhatsApp number in the 1MSG dashboard", st)
	return &rejection{status: http.StatusOK, outcome: OutcomeRejected, detail: msg, body: sendAnswer{Message: msg}}
}

// AccountState is the run-time state the control endpoints change.
type AccountState struct {
	TokenRevoked  bool       `json:"tokenRevoked"`
	ChannelStatus string     `json:"channelStatus"`
	Templates     []Template `json:"templates"`
}

// Account returns the run-time state.
func (s *Server) Account() AccountState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return AccountState{TokenRevoked: s.account.tokenRevoked, ChannelStatus: s.account.status, Templates: slices.Clone(s.account.tpls)}
}

// Call is one request to a channel method other than sendTemplate (those
// are in Requests), with when it arrived and when it was answered.
type Call struct {
	Method string    `json:"method"` // e.g. "status", "templates"
	Verb   string    `json:"verb"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// maxCalls bounds the call log: track polls would grow it without end.
const maxCalls = 10000

func (s *Server) logCall(method, verb string, start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) >= maxCalls {
		s.calls = slices.Delete(s.calls, 0, len(s.calls)-maxCalls+1)
	}
	s.calls = append(s.calls, Call{Method: method, Verb: verb, Start: start, End: time.Now()})
}

// Calls returns the requests to channel methods other than sendTemplate,
// in the order they were answered.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}
