package outbox

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// seedNextStep is {{4}} of the seed's filled-in example, as the OMS
// writes it; seedNextStepSent is what is sent: the template's body ends
// the sentence with its own full stop, so the one given goes.
const (
	seedNextStep     = "Payment will be refunded within 3–5 business days to the card used for the order."
	seedNextStepSent = "Payment will be refunded within 3–5 business days to the card used for the order"
)

// defaultBodyFixedRunes is DefaultBody without its four placeholders:
// `Hello, ` + `! Order #` + ` for "` + `" has been cancelled. ` + `.`.
const defaultBodyFixedRunes = 7 + 9 + 6 + 22 + 1

// vPayload builds an order.cancelled payload from the seed example, with
// overrides; a nil override value deletes the key, a json.RawMessage is
// written as is.
func vPayload(over map[string]any) string {
	m := map[string]any{
		"phone":         "+7 900 123-45-67",
		"customer_name": "Alexey",
		"order_number":  json.RawMessage("10482"),
		"product_name":  "Wireless headphones",
		"next_step":     seedNextStep,
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func seedParams() []string {
	return []string{"Alexey", "10482", "Wireless headphones", seedNextStepSent}
}

// twoChannels is a default channel in English with the seed's body, and
// brand-b in Russian with a shorter body.
var twoChannels = Validator{Language: "en", Channels: map[string]Validator{
	"brand-b": {Language: "ru", Body: "{{1}}: {{2}} / {{3}} / {{4}}"},
}}

func TestValidate(t *testing.T) {
	const (
		queued   = ledger.StatusQueued
		rejected = ledger.StatusRejected
		skipped  = ledger.StatusSkipped
	)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	deep := func(levels int) string {
		return `{"phone":"+79001234567","customer_name":"Alexey","order_number":10482,"product_name":"Wireless headphones","next_step":"Refund in 3 days","extra":` +
			strings.Repeat("[", levels) + strings.Repeat("]", levels) + `}`
	}

	// Long texts for the length rules. The rendered body is
	// defaultBodyFixedRunes + the four texts' runes.
	long := strings.Repeat("x", 2000)
	longN := strings.Repeat("n", 2000)
	fitProduct := 1024 - defaultBodyFixedRunes - len("Alexey") - len("10482") - utf8.RuneCountInString(seedNextStepSent)
	fitNext := 1024 - defaultBodyFixedRunes - len("Alexey") - len("10482") - 20
	// A payload of exactly MaxPayloadBytes.
	exact := vPayload(map[string]any{"pad": ""})
	exact = vPayload(map[string]any{"pad": strings.Repeat("p", MaxPayloadBytes-len(exact))})

	tests := []struct {
		name      string
		v         Validator
		eventType string // "" means EventTypeOrderCancelled
		payload   string
		status    ledger.Status
		code      string
		phone     string
		language  string // "" means "en"
		channel   string // "" means ledger.DefaultChannel
		params    []string
		shortened []string
		reason    []string // fragments the Reason must contain
	}{
		// The seed's filled-in example.
		{name: "seed example, order_number as number", payload: vPayload(nil),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "seed example, order_number as string", payload: vPayload(map[string]any{"order_number": "10482"}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "order_number with exponent", payload: vPayload(map[string]any{"order_number": raw("1.0482e4")}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "order_number decimal", payload: vPayload(map[string]any{"order_number": raw("10482.5")}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482.5", "Wireless headphones", seedNextStepSent}},
		{name: "order_number alphanumeric string", payload: vPayload(map[string]any{"order_number": "A-10482/2"}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "A-10482/2", "Wireless headphones", seedNextStepSent}},
		{name: "unknown extra keys are ignored", payload: vPayload(map[string]any{"customer_id": 42, "meta": map[string]any{"a": []int{1, 2}}, "Phone": 1}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "opt-in true", payload: vPayload(map[string]any{"whatsapp_opt_in": true}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "payload of exactly MaxPayloadBytes", payload: exact,
			status: queued, phone: "79001234567", params: seedParams()},
		// The template ends the sentence: a full stop at next_step's end goes.
		{name: "next_step ending in a full stop", payload: vPayload(map[string]any{"next_step": "Refund in 3 days."}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482", "Wireless headphones", "Refund in 3 days"}},
		{name: "next_step ending in an ellipsis of stops", payload: vPayload(map[string]any{"next_step": "Refund soon ... "}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482", "Wireless headphones", "Refund soon"}},
		{name: "next_step only a full stop", payload: vPayload(map[string]any{"next_step": "."}),
			status: rejected, code: "empty_text", phone: "79001234567", reason: []string{"payload.next_step is empty"}},
		{name: "a full stop inside next_step stays", payload: vPayload(map[string]any{"next_step": "Refund to card no. 4242"}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482", "Wireless headphones", "Refund to card no. 4242"}},
		{name: "moderately nested extra key", payload: deep(100),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482", "Wireless headphones", "Refund in 3 days"}},

		// Phone notations.
		{name: "phone digits only, no region", payload: vPayload(map[string]any{"phone": "79001234567"}),
			status: rejected, code: "ambiguous_phone", reason: []string{"CANCELNOTIFY_PHONE_REGION"}},
		{name: "phone digits only, region RU", v: Validator{PhoneRegion: "RU"}, payload: vPayload(map[string]any{"phone": "79001234567"}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "phone with + and brackets", payload: vPayload(map[string]any{"phone": "+7 (900) 123-45-67"}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "phone (+44)", payload: vPayload(map[string]any{"phone": "(+44) 20 7946 0958"}),
			status: queued, phone: "442079460958", params: seedParams()},
		{name: "phone +44 (0)", payload: vPayload(map[string]any{"phone": "+44 (0)20 7946 0958"}),
			status: queued, phone: "442079460958", params: seedParams()},
		{name: "phone 00 prefix", payload: vPayload(map[string]any{"phone": "0049 30 123456"}),
			status: queued, phone: "4930123456", params: seedParams()},
		{name: "phone Italian leading zero kept", payload: vPayload(map[string]any{"phone": "+39 06 1234 5678"}),
			status: queued, phone: "390612345678", params: seedParams()},
		{name: "phone US dotted", payload: vPayload(map[string]any{"phone": "+1.202.555.0123"}),
			status: queued, phone: "12025550123", params: seedParams()},
		{name: "phone too short", payload: vPayload(map[string]any{"phone": "+12345"}),
			status: rejected, code: "invalid_phone",
			reason: []string{`payload.phone "+12345" is not a valid international phone number: write it with the country code, e.g. "+7 900 123-45-67"`}},
		{name: "phone national trunk 8", payload: vPayload(map[string]any{"phone": "8 900 123-45-67"}),
			status: rejected, code: "ambiguous_phone", reason: []string{`payload.phone "8 900 123-45-67"`, "CANCELNOTIFY_PHONE_REGION"}},
		{name: "phone empty", payload: vPayload(map[string]any{"phone": ""}),
			status: rejected, code: "invalid_phone", reason: []string{`payload.phone ""`}},
		{name: "phone letters", payload: vPayload(map[string]any{"phone": "call me"}),
			status: rejected, code: "invalid_phone"},
		{name: "phone very long is clipped in reason", payload: vPayload(map[string]any{"phone": strings.Repeat("7", 500)}),
			status: rejected, code: "invalid_phone", reason: []string{`"` + strings.Repeat("7", 80) + `…"`}},
		{name: "phone as number", payload: vPayload(map[string]any{"phone": raw("79001234567")}),
			status: rejected, code: "not_a_string", reason: []string{"payload.phone is a number (79001234567), not a string"}},

		// Payload shape.
		{name: "JSON null", payload: `null`, status: rejected, code: "invalid_json", phone: "",
			reason: []string{"payload must be a JSON object, got null"}},
		{name: "JSON array", payload: `[{"phone":"79001234567"}]`, status: rejected, code: "invalid_json",
			reason: []string{"payload must be a JSON object, got array"}},
		{name: "JSON string", payload: `"x"`, status: rejected, code: "invalid_json",
			reason: []string{"payload must be a JSON object, got string"}},
		{name: "JSON number", payload: ` 42 `, status: rejected, code: "invalid_json",
			reason: []string{"payload must be a JSON object, got number"}},
		{name: "JSON boolean", payload: `true`, status: rejected, code: "invalid_json",
			reason: []string{"payload must be a JSON object, got boolean"}},
		{name: "invalid JSON", payload: `{"phone": "79001234567",`, status: rejected, code: "invalid_json",
			reason: []string{"payload is not valid JSON"}},
		{name: "not JSON at all", payload: "\x00\x01garbage", status: rejected, code: "invalid_json",
			reason: []string{"payload is not valid JSON"}},
		{name: "trailing data", payload: vPayload(nil) + "{}", status: rejected, code: "invalid_json"},
		{name: "empty payload", payload: ``, status: rejected, code: "invalid_json", reason: []string{"payload is empty"}},
		{name: "invalid UTF-8", payload: `{"phone":"79001234567","customer_name":"Al` + "\xff\xfe" + `exey"}`,
			status: rejected, code: "invalid_json", reason: []string{"not valid UTF-8", "offset 42"}},
		// 100k levels take 200 KB, so the size check rejects them before any
		// decoding; 30k levels fit in 64 KiB and exceed encoding/json's depth.
		{name: "100k levels of nesting in an extra key", payload: deep(100000), status: rejected, code: "payload_too_large",
			reason: []string{"payload is 200147 bytes"}},
		{name: "30k levels of nesting in an extra key", payload: deep(30000), status: rejected, code: "invalid_json",
			reason: []string{"nested more than 10000 levels"}},
		{name: "10 MB string", payload: vPayload(map[string]any{"notes": strings.Repeat("a", 10<<20)}),
			status: rejected, code: "payload_too_large", reason: []string{"payload is 1048", "over the limit of 65536 bytes"}},
		{name: "one byte over the limit", payload: exact[:len(exact)-1] + " }", status: rejected, code: "payload_too_large",
			reason: []string{"payload is 65537 bytes"}},

		// Event type.
		{name: "unknown event type", eventType: "order.created", payload: vPayload(nil), status: rejected, code: "unknown_event_type",
			reason: []string{`event_type "order.created" is not supported`, `"order.cancelled"`}},
		{name: "event type case matters", eventType: "Order.Cancelled", payload: vPayload(nil), status: rejected, code: "unknown_event_type"},

		// Required keys and types.
		{name: "empty object", payload: `{}`, status: rejected, code: "missing_field",
			reason: []string{"payload.phone, payload.customer_name, payload.order_number, payload.product_name and payload.next_step are missing"}},
		{name: "two keys missing", payload: vPayload(map[string]any{"customer_name": nil, "next_step": nil}),
			status: rejected, code: "missing_field", phone: "79001234567",
			reason: []string{"payload.customer_name and payload.next_step are missing"}},
		{name: "one key missing", payload: vPayload(map[string]any{"product_name": nil}),
			status: rejected, code: "missing_field", phone: "79001234567", reason: []string{"payload.product_name is missing"}},
		{name: "wrong types named at once", payload: vPayload(map[string]any{"customer_name": raw("null"), "product_name": []string{"a"}, "order_number": true}),
			status: rejected, code: "not_a_string", phone: "79001234567",
			reason: []string{"payload.customer_name is null, not a string", "payload.order_number is a boolean (true): write it as a JSON string or number", "payload.product_name is an array, not a string"}},
		{name: "next_step object", payload: vPayload(map[string]any{"next_step": map[string]int{"a": 1}}),
			status: rejected, code: "not_a_string", phone: "79001234567", reason: []string{"payload.next_step is an object"}},

		// Opt-in.
		{name: "opt-in false", payload: vPayload(map[string]any{"whatsapp_opt_in": false}),
			status: skipped, code: "opted_out", phone: "79001234567",
			reason: []string{"customer did not opt in to WhatsApp (payload.whatsapp_opt_in is false); nothing sent"}},
		{name: "opt-in false wins over field errors", payload: `{"whatsapp_opt_in":false,"phone":"12345","language":"ru"}`,
			status: skipped, code: "opted_out", language: "ru"},
		{name: "opt-in string", payload: vPayload(map[string]any{"whatsapp_opt_in": "no"}),
			status: rejected, code: "not_a_boolean", phone: "79001234567",
			reason: []string{`payload.whatsapp_opt_in is the string "no", not a boolean`}},
		{name: "opt-in null", payload: vPayload(map[string]any{"whatsapp_opt_in": raw("null")}),
			status: rejected, code: "not_a_boolean", phone: "79001234567"},

		// Language.
		{name: "language override", payload: vPayload(map[string]any{"language": "ru"}),
			status: queued, phone: "79001234567", language: "ru", params: seedParams()},
		{name: "language with region", payload: vPayload(map[string]any{"language": "pt_BR"}),
			status: queued, phone: "79001234567", language: "pt_BR", params: seedParams()},
		{name: "language null means default", v: Validator{Language: "es"}, payload: vPayload(map[string]any{"language": raw("null")}),
			status: queued, phone: "79001234567", language: "es", params: seedParams()},
		{name: "language empty means default", payload: vPayload(map[string]any{"language": ""}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "invalid language", payload: vPayload(map[string]any{"language": "english"}),
			status: rejected, code: "invalid_language", phone: "79001234567",
			reason: []string{`payload.language "english" is not a template language code`}},
		{name: "invalid language case", payload: vPayload(map[string]any{"language": "pt_br"}),
			status: rejected, code: "invalid_language", phone: "79001234567"},
		{name: "language not a string", payload: vPayload(map[string]any{"language": 7}),
			status: rejected, code: "not_a_string", phone: "79001234567", reason: []string{"payload.language is a number (7)"}},

		// Text normalization.
		{name: "newline, tab and 7 spaces normalized", payload: vPayload(map[string]any{
			"customer_name": "  Alexey\n\tIvanov\r\n",
			"product_name":  "Wireless       headphones",
			"next_step":     "Refund\u00a0in\u20283 days.\x00\x7f"}),
			status: queued, phone: "79001234567", params: []string{"Alexey Ivanov", "10482", "Wireless headphones", "Refund in 3 days"}},
		{name: "whitespace only", payload: vPayload(map[string]any{"customer_name": " \n\t ", "next_step": ""}),
			status: rejected, code: "empty_text", phone: "79001234567",
			reason: []string{"payload.customer_name is empty", "payload.next_step is empty"}},

		// Body length.
		{name: "long product_name shortened to fit exactly", payload: vPayload(map[string]any{"product_name": long}),
			status: queued, phone: "79001234567", shortened: []string{"product_name"},
			params: []string{"Alexey", "10482", strings.Repeat("x", fitProduct-1) + "…", seedNextStepSent}},
		{name: "long product_name and next_step", payload: vPayload(map[string]any{"product_name": long, "next_step": longN}),
			status: queued, phone: "79001234567", shortened: []string{"product_name", "next_step"},
			params: []string{"Alexey", "10482", strings.Repeat("x", 19) + "…", strings.Repeat("n", fitNext-1) + "…"}},
		{name: "long next_step only", payload: vPayload(map[string]any{"next_step": longN}),
			status: queued, phone: "79001234567", shortened: []string{"next_step"},
			params: []string{"Alexey", "10482", "Wireless headphones", strings.Repeat("n", 1024-defaultBodyFixedRunes-6-5-19-1) + "…"}},
		{name: "body of exactly 1024 runes is not shortened", payload: vPayload(map[string]any{"product_name": strings.Repeat("ж", fitProduct)}),
			status: queued, phone: "79001234567", params: []string{"Alexey", "10482", strings.Repeat("ж", fitProduct), seedNextStepSent}},
		{name: "customer_name of 5000 chars", payload: vPayload(map[string]any{"customer_name": strings.Repeat("A", 5000)}),
			status: rejected, code: "body_too_long", phone: "79001234567",
			reason: []string{"payload.customer_name is 5000 characters long, so the message body would be 5089 characters, over WhatsApp's limit of 1024 even after shortening payload.next_step to 20 characters: shorten payload.customer_name"}},
		{name: "customer_name of 5000 chars and long texts", payload: vPayload(map[string]any{"customer_name": strings.Repeat("A", 5000), "product_name": long, "next_step": longN}),
			status: rejected, code: "body_too_long", phone: "79001234567",
			reason: []string{"payload.customer_name is 5000 characters long", "even after shortening payload.product_name and payload.next_step to 20 characters: shorten payload.customer_name"}},

		// Custom template body.
		// A body that does not end the sentence itself keeps next_step's full stop.
		{name: "custom body", v: Validator{Language: "ru", Body: "{{1}}: {{2}} / {{3}} / {{4}}"}, payload: vPayload(map[string]any{"product_name": long}),
			status: queued, phone: "79001234567", language: "ru", shortened: []string{"product_name"},
			params: []string{"Alexey", "10482", strings.Repeat("x", 1024-8-6-5-utf8.RuneCountInString(seedNextStep)-1) + "…", seedNextStep}},

		// Routing by payload.channel: each channel has its own rules.
		{name: "channel named", v: twoChannels, payload: vPayload(map[string]any{"channel": "brand-b"}),
			// brand-b's body does not end in "{{4}}.", so next_step keeps its full stop.
			status: queued, phone: "79001234567", language: "ru", channel: "brand-b",
			params: []string{"Alexey", "10482", "Wireless headphones", seedNextStep}},
		{name: "channel default by name", v: twoChannels, payload: vPayload(map[string]any{"channel": "default"}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "channel absent is default", v: twoChannels, payload: vPayload(nil),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "channel null or empty is default", v: twoChannels, payload: vPayload(map[string]any{"channel": ""}),
			status: queued, phone: "79001234567", params: seedParams()},
		{name: "channel's own body", v: twoChannels, payload: vPayload(map[string]any{"channel": "brand-b", "product_name": long}),
			status: queued, phone: "79001234567", language: "ru", channel: "brand-b", shortened: []string{"product_name"},
			params: []string{"Alexey", "10482", strings.Repeat("x", 1024-8-6-5-utf8.RuneCountInString(seedNextStep)-1) + "…", seedNextStep}},
		{name: "channel's field rules still apply", v: twoChannels, payload: vPayload(map[string]any{"channel": "brand-b", "phone": "+12345"}),
			status: rejected, code: "invalid_phone", language: "ru", channel: "brand-b", reason: []string{"payload.phone"}},
		{name: "channel unknown", v: twoChannels, payload: vPayload(map[string]any{"channel": "brand-x"}),
			status: rejected, code: "unknown_channel",
			reason: []string{`payload.channel "brand-x" is not a configured channel: write one of "default" or "brand-b"`}},
		{name: "channel unknown without a channels file", payload: vPayload(map[string]any{"channel": "brand-b"}),
			status: rejected, code: "unknown_channel", reason: []string{`write one of "default" (CANCELNOTIFY_CHANNELS_FILE)`}},
		{name: "channel not a string", v: twoChannels, payload: vPayload(map[string]any{"channel": 7}),
			status: rejected, code: "not_a_string", reason: []string{`payload.channel is a number (7), not a string: write one of "default" or "brand-b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			et := tc.eventType
			if et == "" {
				et = EventTypeOrderCancelled
			}
			got := tc.v.Validate(et, []byte(tc.payload))
			want := Decision{Status: tc.status, Channel: tc.channel, Code: tc.code, Phone: tc.phone, Language: tc.language, Params: tc.params, Shortened: tc.shortened}
			if want.Language == "" {
				want.Language = "en"
			}
			if want.Channel == "" {
				want.Channel = ledger.DefaultChannel
			}
			reason := got.Reason
			got.Reason = ""
			got.OrderNumber, got.CustomerName = "", "" // TestValidateIdentifies
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Validate() =\n%s\nwant\n%s\nreason: %s", vDump(got), vDump(want), reason)
			}
			if (tc.status == queued) != (reason == "") {
				t.Errorf("reason %q for status %s", reason, got.Status)
			}
			for _, frag := range tc.reason {
				if !strings.Contains(reason, frag) {
					t.Errorf("reason %q does not contain %q", reason, frag)
				}
			}
			if n := utf8.RuneCountInString(reason); n > 600 {
				t.Errorf("reason is %d runes long", n)
			}
			if got.Status == queued {
				rules, _ := tc.v.channel(got.Channel)
				if n := utf8.RuneCountInString(rules.Render(got.Params)); n > 1024 {
					t.Errorf("rendered body is %d runes", n)
				}
			}
		})
	}
}

func vDump(d Decision) string {
	short := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = valClip(s, 30) + fmt.Sprintf("(%d)", utf8.RuneCountInString(s))
		}
		return out
	}
	return fmt.Sprintf("{Status:%s Code:%s Phone:%s Language:%s Params:%q Shortened:%q}", d.Status, d.Code, d.Phone, d.Language, short(d.Params), d.Shortened)
}

func TestRender(t *testing.T) {
	var v Validator
	if got, want := v.Render(seedParams()), `Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled. `+seedNextStepSent+`.`; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if n := utf8.RuneCountInString(v.Render(make([]string, 4))); n != defaultBodyFixedRunes {
		t.Errorf("DefaultBody without params is %d runes, want %d", n, defaultBodyFixedRunes)
	}
	// A text containing a placeholder is not substituted again.
	if got, want := v.Render([]string{"{{2}}", "1", "p", "n"}), `Hello, {{2}}! Order #1 for "p" has been cancelled. n.`; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if got, want := v.Render([]string{"A"}), `Hello, A! Order #{{2}} for "{{3}}" has been cancelled. {{4}}.`; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if got := (Validator{Body: "{{1}}-{{1}}"}).Render([]string{"x"}); got != "x-x" {
		t.Errorf("Render = %q", got)
	}
}

func TestValidateHelpers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10482", "10482"}, {"1.0482e4", "10482"}, {"1.0482E+4", "10482"}, {"1.5e-3", "0.0015"},
		{"-0.5e1", "-5"}, {"1.50e1", "15.0"}, {"0e5", "0"}, {"10482.50", "10482.50"}, {"1e999", "1e999"},
	} {
		if got := valNumberText(tc.in); got != tc.want {
			t.Errorf("valNumberText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"Wireless headphones", 20, "Wireless headphones"},
		{"Wireless headphones, black", 10, "Wireless…"}, // the space before the cut is dropped
		{"Беспроводные наушники", 6, "Беспр…"},
	} {
		if got := valShorten(tc.in, tc.n); got != tc.want {
			t.Errorf("valShorten(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	if got := valNormalizeText("\t a \u3000\u200a b\v\f\u0085c  "); got != "a b c" {
		t.Errorf("valNormalizeText = %q", got)
	}
}

// A space at the cut point is dropped, so the body ends one rune short of the
// limit rather than with "… ".
func TestValidateShortenAtSpace(t *testing.T) {
	fit := 1024 - defaultBodyFixedRunes - 6 - 5 - utf8.RuneCountInString(seedNextStepSent)
	product := strings.Repeat("y", fit-2) + " " + strings.Repeat("z", 100)
	d := Validator{}.Validate(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"product_name": product})))
	if d.Status != ledger.StatusQueued || d.Params[2] != strings.Repeat("y", fit-2)+"…" {
		t.Fatalf("got %s", vDump(d))
	}
	if n := utf8.RuneCountInString(Validator{}.Render(d.Params)); n != 1023 {
		t.Errorf("body is %d runes, want 1023", n)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(EventTypeOrderCancelled, []byte(vPayload(nil)))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"phone": "(+44) 20 7946 0958", "language": "pt_BR"})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"whatsapp_opt_in": false})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"whatsapp_opt_in": "no"})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"order_number": json.RawMessage("1.5e-3")})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"customer_name": " \n\t\u2028 ", "next_step": "a\u00a0\u00a0\u00a0\u00a0\u00a0b"})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"product_name": strings.Repeat("ж ", 600), "next_step": strings.Repeat("n", 900)})))
	f.Add(EventTypeOrderCancelled, []byte(vPayload(map[string]any{"customer_name": strings.Repeat("A", 1100)})))
	f.Add(EventTypeOrderCancelled, []byte(`{"phone":"0049 30 123456","customer_name":"x","order_number":1,"product_name":"y","next_step":"z"}`))
	f.Add(EventTypeOrderCancelled, []byte(`{}`))
	f.Add(EventTypeOrderCancelled, []byte(`null`))
	f.Add(EventTypeOrderCancelled, []byte(`[1,2]`))
	f.Add(EventTypeOrderCancelled, []byte("{\"phone\":\"\xff\"}"))
	f.Add(EventTypeOrderCancelled, []byte(`{"a":[[[[[[[[[[]]]]]]]]]]}`))
	f.Add("order.created", []byte(vPayload(nil)))
	f.Add("", []byte(nil))
	f.Fuzz(func(t *testing.T, eventType string, payload []byte) {
		for _, v := range []Validator{{}, {Language: "ru", Body: "{{1}} {{2}} {{3}} {{4}} {{3}}"}} {
			d := v.Validate(eventType, payload)
			switch d.Status {
			case ledger.StatusQueued:
				if d.Code != "" || d.Reason != "" {
					t.Fatalf("queued with code %q reason %q", d.Code, d.Reason)
				}
				if len(d.Params) != 4 {
					t.Fatalf("queued with %d params", len(d.Params))
				}
				for i, p := range d.Params {
					if p == "" || strings.ContainsAny(p, "\n\t\r") || strings.Contains(p, "     ") || !utf8.ValidString(p) {
						t.Fatalf("param %d = %q breaks Meta's rules", i, p)
					}
				}
				if n := utf8.RuneCountInString(v.Render(d.Params)); n > 1024 {
					t.Fatalf("rendered body is %d runes", n)
				}
				if d.Phone == "" {
					t.Fatal("queued without a phone")
				}
				if !valLanguageRE.MatchString(d.Language) {
					t.Fatalf("queued with language %q", d.Language)
				}
			case ledger.StatusRejected, ledger.StatusSkipped:
				if d.Code == "" || d.Reason == "" {
					t.Fatalf("%s without code/reason: %+v", d.Status, d)
				}
				if d.Status == ledger.StatusRejected && d.Params != nil {
					t.Fatalf("rejected with params %q", d.Params)
				}
				if n := utf8.RuneCountInString(d.Reason); n > 1000 {
					t.Fatalf("reason is %d runes", n)
				}
			default:
				t.Fatalf("status %q", d.Status)
			}
			for i := 0; i < len(d.Phone); i++ {
				if d.Phone[i] < '0' || d.Phone[i] > '9' {
					t.Fatalf("phone %q is not all digits", d.Phone)
				}
			}
		}
	})
}

func ExampleValidator_Validate() {
	v := Validator{Language: "en"}
	d := v.Validate("order.cancelled", []byte(`{
		"phone": "+7 900 123-45-67",
		"customer_name": "Alexey",
		"order_number": 10482,
		"product_name": "Wireless headphones",
		"next_step": "Payment will be refunded within 3–5 business days"
	}`))
	fmt.Println(d.Status, d.Phone, d.Language)
	fmt.Printf("%q\n", d.Params)
	fmt.Println(v.Render(d.Params))

	d = v.Validate("order.cancelled", []byte(`{"phone": "+12345", "customer_name": "Alexey", "order_number": "10482", "product_name": "Wireless headphones", "next_step": "Refund in 3 days"}`))
	fmt.Println(d.Status, d.Code)
	fmt.Println(d.Reason)

	d = v.Validate("order.cancelled", []byte(`{"phone": "+79001234567", "whatsapp_opt_in": false}`))
	fmt.Println(d.Status, d.Code, d.Phone)
	// Output:
	// queued 79001234567 en
	// ["Alexey" "10482" "Wireless headphones" "Payment will be refunded within 3–5 business days"]
	// Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled. Payment will be refunded within 3–5 business days.
	// rejected invalid_phone
	// payload.phone "+12345" is not a valid international phone number: write it with the country code, e.g. "+7 900 123-45-67"
	// skipped opted_out 79001234567
}

// Rejected and skipped rows still say which order and customer they were
// about, so the NOTIFY payload and the support page can name them.
func TestValidateIdentifies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, payload   string
		status          ledger.Status
		order, customer string
	}{
		{"queued", `{"phone":"+7 900 123-45-67","customer_name":"Alexey","order_number":10482,"product_name":"P","next_step":"N"}`, ledger.StatusQueued, "10482", "Alexey"},
		{"rejected: bad phone", `{"phone":"12","customer_name":" Alexey ","order_number":"10482","product_name":"P","next_step":"N"}`, ledger.StatusRejected, "10482", "Alexey"},
		{"skipped", `{"whatsapp_opt_in":false,"customer_name":"Ann","order_number":1.0482e4}`, ledger.StatusSkipped, "10482", "Ann"},
		{"rejected: order not readable", `{"customer_name":7,"order_number":{"x":1}}`, ledger.StatusRejected, "", ""},
		{"rejected: long name clipped", `{"customer_name":"` + strings.Repeat("n", 300) + `"}`, ledger.StatusRejected, "", strings.Repeat("n", 200) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Validator{}.Validate(EventTypeOrderCancelled, []byte(tc.payload))
			if d.Status != tc.status || d.OrderNumber != tc.order || d.CustomerName != tc.customer {
				t.Errorf("status %s order %q customer %q; want %s %q %q (%s)", d.Status, d.OrderNumber, d.CustomerName, tc.status, tc.order, tc.customer, d.Reason)
			}
		})
	}
}
