package onemsg

import (
	"errors"
	"strings"
	"testing"
)

func TestParseWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		instance string
		want     []StatusUpdate // ID, Status, Phone, Error, Code, Timestamp.Unix()
		messages int
	}{
		{
			name:     "normalized acks",
			body:     `{"instanceId":"ODI371267300","ack":[{"id":"wamid.A","chatId":"79001234567@c.us","phone":"79001234567","status":"delivered","category":"utility"},{"id":"wamid.B","chatId":"4915112345678@c.us","status":"failed","error":"User's number is part of an experiment"}]}`,
			instance: "ODI371267300",
			want: []StatusUpdate{
				{ID: "wamid.A", Status: "delivered", Phone: "79001234567"},
				{ID: "wamid.B", Status: "failed", Phone: "4915112345678", Error: "User's number is part of an experiment", Code: 130472},
			},
		},
		{
			name:     "numeric legacy instance id",
			body:     `{"instanceId":123456,"ack":[{"id":"wamid.A","status":"read"}]}`,
			instance: "123456",
			want:     []StatusUpdate{{ID: "wamid.A", Status: "read"}},
		},
		{
			name: "hooks like hookInfo",
			body: `{"hooks":[{"id":"wamid.C","type":"message","status":"failed","timestamp":"1654864094","recipient_id":"79001234567","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Receiver is incapable"}}]}]}`,
			want: []StatusUpdate{{ID: "wamid.C", Status: "failed", Phone: "79001234567", Error: "Message undeliverable: Receiver is incapable", Code: 131026}},
		},
		{
			name:     "raw Meta",
			body:     `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[{"id":"wamid.D","status":"read","timestamp":"1654864100","recipient_id":"79001234567"}],"messages":[{"id":"x"}]}}]}]}`,
			want:     []StatusUpdate{{ID: "wamid.D", Status: "read", Phone: "79001234567"}},
			messages: 1,
		},
		{
			name:     "inbound messages only",
			body:     `{"instanceId":"c","messages":[{"id":"m1","body":"hi","fromMe":false},{"id":"m2"}]}`,
			instance: "c",
			messages: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWebhook([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if w.InstanceID != tt.instance || w.Messages != tt.messages || len(w.Statuses) != len(tt.want) {
				t.Fatalf("got instance %q, %d messages, %d statuses; want %q, %d, %d", w.InstanceID, w.Messages, len(w.Statuses), tt.instance, tt.messages, len(tt.want))
			}
			for i, want := range tt.want {
				got := w.Statuses[i]
				if got.ID != want.ID || got.Status != want.Status || got.Phone != want.Phone || got.Error != want.Error || got.Code != want.Code {
					t.Errorf("status %d = %+v, want %+v", i, got, want)
				}
				if len(got.Raw) == 0 {
					t.Errorf("status %d lost its raw entry", i)
				}
			}
		})
	}
}

func TestParseWebhookMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `[]`, `"x"`, `{"ack":"nope"}`, `{"ack":[1]}`, `{} {}`, strings.Repeat("[", 20000)} {
		if _, err := ParseWebhook([]byte(body)); !errors.Is(err, ErrMalformedWebhook) {
			t.Errorf("ParseWebhook(%.20q) = %v, want ErrMalformedWebhook", body, err)
		}
	}
}

// FuzzParseWebhook: any body either parses or is refused as malformed; it
// never panics, and what parses has bounded output.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"instanceId":"c","ack":[{"id":"wamid.A","status":"delivered"}]}`,
		`{"hooks":[{"id":"w","status":"failed","timestamp":"1","errors":[{"code":1}]}]}`,
		`{"entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"read","timestamp":1}]}}]}]}`,
		`{"instanceId":1e400,"ack":[{"error":{"code":"x"}}]}`,
		`{"ack":[{"id":"w","status":"failed","error":{"error_user_title":"t","code":131026}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := ParseWebhook(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedWebhook) {
				t.Fatalf("error %v is not ErrMalformedWebhook", err)
			}
			return
		}
		if len(w.Statuses) > len(body) {
			t.Fatalf("%d statuses from %d bytes", len(w.Statuses), len(body))
		}
	})
}

// Pricing is read from every status shape; an odd pricing object never
// costs the status.
func TestParseWebhookPricing(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	utility := &Pricing{Billable: &yes, Category: "utility", Model: "PMP", Type: "regular"}
	const p = `"pricing":{"billable":true,"category":"utility","pricing_model":"PMP","type":"regular"}`
	tests := []struct {
		name string
		body string
		want *Pricing
	}{
		{"ack", `{"instanceId":"c","ack":[{"id":"wamid.A","status":"sent",` + p + `}]}`, utility},
		{"ack without pricing (1MSG today)", `{"instanceId":"c","ack":[{"id":"wamid.A","status":"sent","category":"utility"}]}`, nil},
		{"hooks entry", `{"hooks":[{"id":"wamid.A","status":"sent","timestamp":"1654864094",` + p + `}]}`, utility},
		{"raw Meta status", `{"entry":[{"changes":[{"value":{"statuses":[{"id":"wamid.A","status":"delivered",` + p + `}]}}]}]}`, utility},
		{"free service", `{"hooks":[{"id":"wamid.A","status":"sent","pricing":{"billable":false,"category":"service","pricing_model":"PMP","type":"free_customer_service"}}]}`,
			&Pricing{Billable: &no, Category: "service", Model: "PMP", Type: "free_customer_service"}},
		{"empty object", `{"hooks":[{"id":"wamid.A","status":"sent","pricing":{}}]}`, nil},
		{"null", `{"ack":[{"id":"wamid.A","status":"sent","pricing":null}]}`, nil},
		{"wrong types", `{"hooks":[{"id":"wamid.A","status":"sent","pricing":{"billable":"yes","category":"utility","pricing_model":7}}]}`,
			&Pricing{Category: "utility"}},
		{"not an object", `{"ack":[{"id":"wamid.A","status":"sent","pricing":"utility"}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWebhook([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if len(w.Statuses) != 1 || w.Statuses[0].ID != "wamid.A" {
				t.Fatalf("statuses %+v", w.Statuses)
			}
			got := w.Statuses[0].Pricing
			if (got == nil) != (tt.want == nil) || (got != nil && (got.Category != tt.want.Category || got.Model != tt.want.Model ||
				got.Type != tt.want.Type || (got.Billable == nil) != (tt.want.Billable == nil) ||
				(got.Billable != nil && *got.Billable != *tt.want.Billable))) {
				t.Errorf("pricing %+v, want %+v", got, tt.want)
			}
		})
	}
}
