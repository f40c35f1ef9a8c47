package onemsg

import (
	"net/http"
	"strings"
)

// Scope says whom a refusal concerns: the one message that met it, or
// every message of the channel (README "Channel health").
type Scope int

const (
	// ScopeMessage: this recipient or this message (invalid number,
	// 131026, 131047, parameter errors). Other messages are unaffected.
	ScopeMessage Scope = iota + 1
	// ScopeChannel: the token, the template, the channel's connection or
	// the business account. Every message of the channel would meet it.
	ScopeChannel
)

func (s Scope) String() string {
	switch s {
	case ScopeMessage:
		return "message"
	case ScopeChannel:
		return "channel"
	}
	return "unknown"
}

// CodeTemplateMissing is Meta's "template name does not exist in the
// translation": the template lacks the requested language (or is not
// approved). For a language other than the channel's default the sender
// falls back to the default; in the default language it is channel-wide.
const CodeTemplateMissing = 132001

// refusal is one row of the table of Meta's refusals: its code, the title
// (lowercased) that names it in texts without a code, what it means for a
// retry, and whom it concerns.
type refusal struct {
	code  int
	title string
	kind  ErrorKind
	scope Scope
}

// refusals is the one table of the Meta codes cancelnotify tells apart
// (Meta's error-code table as 1MSG passes it on). Titles are matched in
// order, so a longer title goes before a shorter one it contains ("pair
// rate limit hit" before "rate limit hit"). Codes not listed are refusals of
// one message.
var refusals = []refusal{
	// Slow down, nothing was sent.
	{CodePairRateLimit, "pair rate limit hit", KindThrottled, ScopeMessage},
	{CodeThroughputLimit, "rate limit hit", KindThrottled, ScopeMessage},
	// Trouble on Meta's side: nothing was sent, send again later.
	{131000, "something went wrong", KindNotSent, ScopeMessage},
	{131016, "service unavailable", KindNotSent, ScopeMessage},
	{2, "", KindNotSent, ScopeMessage},
	{1, "", KindNotSent, ScopeMessage},
	// This recipient or this message.
	{131026, "message undeliverable", KindRejected, ScopeMessage},
	{131047, "re-engagement message", KindRejected, ScopeMessage},
	{131048, "spam rate limit hit", KindRejected, ScopeMessage},
	{131049, "not delivered to maintain healthy ecosystem engagement", KindRejected, ScopeMessage},
	{130472, "part of an experiment", KindRejected, ScopeMessage},
	{132000, "number of parameters does not match", KindRejected, ScopeMessage},
	{132000, "template param count mismatch", KindRejected, ScopeMessage},
	{132005, "hydrated text too long", KindRejected, ScopeMessage},
	{132007, "format character policy violated", KindRejected, ScopeMessage},
	{132012, "parameter format mismatch", KindRejected, ScopeMessage},
	{132018, "issue with the parameters in your template", KindRejected, ScopeMessage},
	// The template in the channel's default language, or the account.
	{CodeTemplateMissing, "template name does not exist", KindRejected, ScopeChannel},
	{CodeTemplateMissing, "template does not exist", KindRejected, ScopeChannel},
	{132015, "template is paused", KindRejected, ScopeChannel},
	{132016, "template is disabled", KindRejected, ScopeChannel},
	{131031, "account has been locked", KindRejected, ScopeChannel},
	{131042, "business eligibility payment issue", KindRejected, ScopeChannel},
	{368, "temporarily blocked for policies violations", KindRejected, ScopeChannel},
}

// channelTexts name channel-wide refusals that come without a Meta code:
// 1MSG's own answers for a channel that is not connected or not paid for.
var channelTexts = []string{"not connected", "channel is disconnected", "subscriptionblocked", "subscription blocked"}

func refusalByCode(code int) (refusal, bool) {
	if code == 0 {
		return refusal{}, false
	}
	for _, r := range refusals {
		if r.code == code {
			return r, true
		}
	}
	return refusal{}, false
}

func refusalByText(text string) (refusal, bool) {
	t := strings.ToLower(text)
	for _, r := range refusals {
		if r.title != "" && strings.Contains(t, r.title) {
			return r, true
		}
	}
	return refusal{}, false
}

// Scope says whom a rejected call concerns. HTTP 401 and 403 are the
// token's and the account's; a Meta code or title decides by the table;
// 1MSG's texts for a disconnected or blocked channel are channel-wide;
// anything else concerns the message. A caller that sees ScopeMessage for a
// refusal without a code may still ask GET /status: a channel that is not
// connected refuses everything, whatever the text says.
func (e *Error) Scope() Scope {
	if e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden {
		return ScopeChannel
	}
	if r, ok := refusalByCode(e.Code); ok {
		return r.scope
	}
	if e.Code != 0 {
		return ScopeMessage
	}
	if r, ok := refusalByText(e.Message); ok {
		return r.scope
	}
	t := strings.ToLower(e.Message)
	for _, s := range channelTexts {
		if strings.Contains(t, s) {
			return ScopeChannel
		}
	}
	return ScopeMessage
}
