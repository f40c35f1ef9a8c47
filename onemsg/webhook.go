package onemsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StatusUpdate is one delivery status pushed by 1MSG, whatever shape it
// came in.
type StatusUpdate struct {
	ID        string   // the wamid
	Status    string   // as sent: sent, delivered, read, failed, viewed, played, …
	Phone     string   // recipient digits, when given
	Error     string   // failure text (acks carry text, not codes)
	Code      int      // Meta error code, when given (hooks and raw Meta)
	Timestamp UnixTime // zero for acks: 1MSG sends none
	Pricing   *Pricing // nil unless the entry carries a pricing object
	Raw       json.RawMessage
}

// Webhook is a parsed webhook request body.
type Webhook struct {
	InstanceID string         // "" for raw Meta payloads, which carry none
	Statuses   []StatusUpdate // from ack[], hooks[] or entry[].changes[].value.statuses[]
	Messages   int            // inbound messages and echoes, acknowledged and ignored
}

// ErrMalformedWebhook is wrapped by ParseWebhook's errors.
var ErrMalformedWebhook = errors.New("malformed webhook payload")

// ParseWebhook reads every payload shape 1MSG is known to push:
//
//   - normalized acks: {"instanceId": …, "ack": [{"id", "chatId", "phone", "status", "error"}]}
//     (1MSG's acks carry no pricing today; one that does is read like Meta's)
//   - hook entries shaped like hookInfo's: {"hooks": [{"id", "status", "timestamp", "errors"}]}
//   - raw Meta (rawHooks): {"entry": [{"changes": [{"value": {"statuses": […]}}]}]}
//   - inbound messages {"messages": […]}, counted only.
func ParseWebhook(body []byte) (*Webhook, error) {
	var root struct {
		InstanceID json.RawMessage   `json:"instanceId"`
		Ack        []json.RawMessage `json:"ack"`
		Hooks      []json.RawMessage `json:"hooks"`
		Messages   []json.RawMessage `json:"messages"`
		Entry      []struct {
			Changes []struct {
				Value struct {
					Statuses []json.RawMessage `json:"statuses"`
					Messages []json.RawMessage `json:"messages"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedWebhook, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformedWebhook)
	}
	w := &Webhook{InstanceID: instanceID(root.InstanceID), Messages: len(root.Messages)}
	for _, raw := range root.Ack {
		var a struct {
			ID      string          `json:"id"`
			Status  string          `json:"status"`
			Phone   string          `json:"phone"`
			ChatID  string          `json:"chatId"`
			Error   json.RawMessage `json:"error"`
			Pricing *Pricing        `json:"pricing"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("%w: ack entry: %v", ErrMalformedWebhook, err)
		}
		phone := a.Phone
		if phone == "" {
			phone, _, _ = strings.Cut(a.ChatID, "@")
		}
		msg, code := decodeErrorField(a.Error)
		if code == 0 && msg != "" {
			code = CodeForText(msg)
		}
		w.Statuses = append(w.Statuses, StatusUpdate{ID: a.ID, Status: a.Status, Phone: phone, Error: msg, Code: code,
			Pricing: pricingOf(a.Pricing), Raw: raw})
	}
	for _, raw := range root.Hooks {
		u, err := metaStatus(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: hooks entry: %v", ErrMalformedWebhook, err)
		}
		w.Statuses = append(w.Statuses, u)
	}
	for _, e := range root.Entry {
		for _, c := range e.Changes {
			w.Messages += len(c.Value.Messages)
			for _, raw := range c.Value.Statuses {
				u, err := metaStatus(raw)
				if err != nil {
					return nil, fmt.Errorf("%w: statuses entry: %v", ErrMalformedWebhook, err)
				}
				w.Statuses = append(w.Statuses, u)
			}
		}
	}
	return w, nil
}

// metaStatus reads a Meta status object (hookInfo entries, raw hooks).
func metaStatus(raw json.RawMessage) (StatusUpdate, error) {
	var h Hook
	if err := json.Unmarshal(raw, &h); err != nil {
		return StatusUpdate{}, err
	}
	u := StatusUpdate{ID: h.ID, Status: h.Status, Phone: h.RecipientID, Timestamp: h.Timestamp, Pricing: pricingOf(h.Pricing), Raw: raw}
	if len(h.Errors) > 0 {
		u.Code, u.Error = h.Errors[0].Code, h.Errors[0].Text()
	}
	return u, nil
}

// instanceID accepts the channel id as a string or a number (legacy ids are
// numeric).
func instanceID(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return strconv.Quote(string(raw))
}
