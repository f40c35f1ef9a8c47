package onemsg

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Hook is one status transition of a message as GET /hookInfo reports it: a
// Meta status object passed through by 1MSG.
type Hook struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Status      string          `json:"status"`
	Timestamp   UnixTime        `json:"timestamp"`
	RecipientID string          `json:"recipient_id"`
	Pricing     *Pricing        `json:"pricing,omitempty"`
	Errors      []MetaError     `json:"errors,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

// Pricing is the pricing object of a Meta status entry: what Meta charges
// for the message. Entries of sent and delivered carry it; read and failed
// usually do not.
type Pricing struct {
	Billable *bool  `json:"billable,omitempty"`
	Category string `json:"category,omitempty"`      // utility, marketing, authentication, service, …
	Model    string `json:"pricing_model,omitempty"` // PMP (per message) or CBP (per conversation)
	Type     string `json:"type,omitempty"`          // regular, free_customer_service, free_entry_point
}

// UnmarshalJSON never fails: a pricing object of an unexpected shape must
// not cost the status it came with. Fields of the wrong type are left empty.
func (p *Pricing) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		*p = Pricing{}
		return nil
	}
	text := func(k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	*p = Pricing{Category: text("category"), Model: text("pricing_model"), Type: text("type")}
	var billable bool
	if json.Unmarshal(m["billable"], &billable) == nil && len(m["billable"]) > 0 && string(m["billable"]) != "null" {
		p.Billable = &billable
	}
	return nil
}

// pricingOf returns p when it says anything, else nil: an empty or null
// pricing object is no pricing.
func pricingOf(p *Pricing) *Pricing {
	if p == nil || (p.Billable == nil && p.Category == "" && p.Model == "" && p.Type == "") {
		return nil
	}
	return p
}

// MetaError is an entry of a Meta status's errors array.
type MetaError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData *struct {
		Details string `json:"details"`
	} `json:"error_data,omitempty"`
}

// Text describes the error as one line: title, message and details.
func (e MetaError) Text() string {
	var parts []string
	for _, p := range []string{e.Title, e.Message} {
		if p != "" && !containsAny(parts, p) {
			parts = append(parts, p)
		}
	}
	if e.ErrorData != nil && e.ErrorData.Details != "" && !containsAny(parts, e.ErrorData.Details) {
		parts = append(parts, e.ErrorData.Details)
	}
	return strings.Join(parts, ": ")
}

// UnixTime decodes Meta's timestamps: unix seconds as a string ("1654864094")
// or as a number. The zero value means "not given".
type UnixTime struct{ time.Time }

// UnmarshalJSON accepts "123", 123 and null.
func (t *UnixTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return nil // an unreadable time is not worth losing the status over
		}
		n = int64(f)
	}
	// Milliseconds slip into some payloads; seconds this large are centuries away.
	if n > 1e11 {
		n /= 1000
	}
	t.Time = time.Unix(n, 0).UTC()
	return nil
}

// MarshalJSON writes unix seconds as a string, as Meta does.
func (t UnixTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`null`), nil
	}
	return []byte(`"` + strconv.FormatInt(t.Unix(), 10) + `"`), nil
}

// HookInfo returns every status transition 1MSG has for a message
// (GET /hookInfo?messageId=…), oldest first as 1MSG lists them.
func (c *Client) HookInfo(ctx context.Context, messageID string) (_ []Hook, err error) {
	defer c.finish("hookInfo", time.Now(), &err)
	var out struct {
		Hooks []json.RawMessage `json:"hooks"`
	}
	if err := c.do(ctx, "hookInfo", http.MethodGet, "hookInfo", url.Values{"messageId": {messageID}}, nil, &out); err != nil {
		return nil, err
	}
	hooks := make([]Hook, 0, len(out.Hooks))
	for _, raw := range out.Hooks {
		var h Hook
		if err := json.Unmarshal(raw, &h); err != nil {
			continue // one odd entry must not hide the others
		}
		h.Raw = raw
		h.Pricing = pricingOf(h.Pricing)
		hooks = append(hooks, h)
	}
	return hooks, nil
}

// ChannelStatus is GET /status.
type ChannelStatus struct {
	Status        string `json:"status"` // connected | connecting | disconnected | uninitialized | unregistered
	AccountStatus string `json:"accountStatus,omitempty"`
}

// OK reports whether the channel can send (connected or connecting).
func (s ChannelStatus) OK() bool { return s.Status == "connected" || s.Status == "connecting" }

// Status returns the channel's status.
func (c *Client) Status(ctx context.Context) (_ *ChannelStatus, err error) {
	defer c.finish("status", time.Now(), &err)
	var s ChannelStatus
	if err := c.do(ctx, "status", http.MethodGet, "status", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
