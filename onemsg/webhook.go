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
	// Ignored counts status entries that cannot be about any message: no
	// id (an empty {} included), or an id longer than MaxWamidBytes.
	Ignored int
}

// MaxWebhookEntries bounds every array of a webhook body (ack, hooks,
// entry, changes, statuses, messages): a longer one makes the body
// malformed (ErrTooManyEntries) after reading only that many elements.
// 1MSG pushes a few statuses at a time.
const MaxWebhookEntries = 1000

// MaxWamidBytes is the longest message id a status entry may carry; WhatsApp's
// are about 60 bytes. An entry with a longer one is ignored.
const MaxWamidBytes = 256

// ErrMalformedWebhook is wrapped by ParseWebhook's errors.
var ErrMalformedWebhook = errors.New("malformed webhook payload")

// ErrTooManyEntries is wrapped by ParseWebhook's error for an array longer
// than MaxWebhookEntries.
var ErrTooManyEntries = fmt.Errorf("%w: an array has more than %d entries", ErrMalformedWebhook, MaxWebhookEntries)

// boundedList is a JSON array decoded one element at a time, refusing more
// than MaxWebhookEntries: a body of 349,000 "{}" costs a thousand decodes,
// not 349,000 allocations.
type boundedList[T any] []T

func (l *boundedList[T]) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*l = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("expected an array, got %v", tok)
	}
	*l = (*l)[:0]
	for dec.More() {
		if len(*l) >= MaxWebhookEntries {
			return ErrTooManyEntries
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*l = append(*l, v)
	}
	return nil
}

// meaningful reports whether a status entry names a message we could have
// sent; the others are ignored without further work.
func meaningful(id string) bool { return id != "" && len(id) <= MaxWamidBytes }

// ParseWebhook reads every payload shape 1MSG is known to push:
//
//   - normalized acks: {"instanceId": …, "ack": [{"id", "chatId", "phone", "status", "error"}]}
//     (1MSG's acks carry no pricing today; one that does is read like Meta's)
//   - hook entries shaped like hookInfo's: {"hooks": [{"id", "status", "timestamp", "errors"}]}
//   - raw Meta (rawHooks): {"entry": [{"changes": [{"value": {"statuses": […]}}]}]}
//   - inbound messages {"messages": […]}, counted only.
func ParseWebhook(body []byte) (*Webhook, error) {
	type change struct {
		Value struct {
			Statuses boundedList[json.RawMessage] `json:"statuses"`
			Messages boundedList[json.RawMessage] `json:"messages"`
		} `json:"value"`
	}
	var root struct {
		InstanceID json.RawMessage              `json:"instanceId"`
		Ack        boundedList[json.RawMessage] `json:"ack"`
		Hooks      boundedList[json.RawMessage] `json:"hooks"`
		Messages   boundedList[json.RawMessage] `json:"messages"`
		Entry      boundedList[struct {
			Changes boundedList[change] `json:"changes"`
		}] `json:"entry"`
	}
	// Unmarshal, not a Decoder: it reads body in place instead of copying
	// it into a buffer grown by doubling, and refuses data after the object.
	if err := json.Unmarshal(body, &root); err != nil {
		if errors.Is(err, ErrTooManyEntries) {
			return nil, ErrTooManyEntries
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformedWebhook, err)
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
		if !meaningful(a.ID) {
			w.Ignored++
			continue
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
		if !meaningful(u.ID) {
			w.Ignored++
			continue
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
				if !meaningful(u.ID) {
					w.Ignored++
					continue
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
