package onemsg

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// SendTemplateRequest is the body of POST /{channel}/sendTemplate, field for
// field as 1MSG documents it and its order-cancellation use case sends it
// (docs/onemsg.md).
type SendTemplateRequest struct {
	Phone     string      `json:"phone"`
	Template  string      `json:"template"`
	Namespace string      `json:"namespace"`
	Language  Language    `json:"language"`
	Params    []Component `json:"params,omitempty"`
	// MessageSendTTLSeconds is how long Meta keeps trying to deliver the
	// message before dropping it (utility templates: 30–43200, or -1 for
	// Meta's 30 days); 0 leaves the field out and Meta's default applies.
	MessageSendTTLSeconds int `json:"messageSendTtlSeconds,omitempty"`
}

// Language selects the template translation. Policy is always
// "deterministic", the only value 1MSG accepts.
type Language struct {
	Policy string `json:"policy"`
	Code   string `json:"code"`
}

// Component is one template component's parameters (Cloud API shape).
type Component struct {
	Type       string      `json:"type"`
	Parameters []Parameter `json:"parameters"`
}

// Parameter is one template variable.
type Parameter struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// DeterministicLanguage returns the language object for code.
func DeterministicLanguage(code string) Language {
	return Language{Policy: "deterministic", Code: code}
}

// BodyParams returns the params array for a template whose only variables
// are body texts: one "body" component with one text parameter each. A
// static URL button takes no parameter, so none is sent.
func BodyParams(texts ...string) []Component {
	ps := make([]Parameter, len(texts))
	for i, t := range texts {
		ps[i] = Parameter{Type: "text", Text: t}
	}
	return []Component{{Type: "body", Parameters: ps}}
}

// SendResult is 1MSG's answer to an accepted or queued send.
type SendResult struct {
	Sent        bool   `json:"sent"`
	ID          string `json:"id"`              // the WhatsApp message id (wamid.…)
	Message     string `json:"message"`         // informational, e.g. "Sent to 7900…@c.us"
	Description string `json:"description"`     // informational
	JobID       string `json:"jobId,omitempty"` // set when 1MSG queued the send
}

// Queued reports whether 1MSG took the request into its queue without a
// message id yet. The message may still go out: do not send it again.
func (r *SendResult) Queued() bool { return !r.Sent && r.JobID != "" }

// SendTemplate sends an approved template. It returns a result when 1MSG
// accepted (Sent, with ID) or queued (Queued, with JobID) the message, and
// an *Error otherwise; Error.Kind says whether it is safe to send again.
func (c *Client) SendTemplate(ctx context.Context, req SendTemplateRequest) (_ *SendResult, err error) {
	defer c.finish("sendTemplate", time.Now(), &err)
	var raw json.RawMessage
	if err := c.do(ctx, "sendTemplate", http.MethodPost, "sendTemplate", nil, req, &raw); err != nil {
		return nil, err
	}
	return decodeSendResult(raw)
}

func decodeSendResult(raw json.RawMessage) (*SendResult, error) {
	var r SendResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &Error{Op: "sendTemplate", Kind: KindUnknown, HTTPStatus: 200, Message: "answer is not a send result: " + snippet(raw)}
	}
	switch {
	case r.Sent && r.ID != "":
		return &r, nil
	case r.Sent:
		// Accepted, but without an id we cannot follow it: reconcile.
		return nil, &Error{Op: "sendTemplate", Kind: KindUnknown, HTTPStatus: 200, Message: "sent:true without a message id: " + snippet(raw)}
	case r.JobID != "":
		return &r, nil
	}
	msg, code := errorText(raw)
	if msg == "" {
		msg = "sent:false without an explanation"
	}
	return nil, &Error{Op: "sendTemplate", Kind: kindOfRefusal(code), HTTPStatus: 200, Code: code, Message: msg}
}
