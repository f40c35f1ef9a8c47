package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/textcut"
)

// EventTypeOrderCancelled is the only event type this version handles.
const EventTypeOrderCancelled = "order.cancelled"

// DefaultBody is the approved template's body text from 1MSG's
// order-cancellation use case (docs/onemsg.md).
const DefaultBody = `Hello, {{1}}! Order #{{2}} for "{{3}}" has been cancelled. {{4}}.`

// MaxPayloadBytes: payloads larger than this are rejected without being
// decoded (the relay selects NULL instead of the payload when pg_column_size
// exceeds it; Validate also checks len).
const MaxPayloadBytes = 64 << 10

// UnreadablePayloadKey is the only key of the payload that the SQL function
// outbox_payload stores for JSON text Postgres cannot read as jsonb; its
// value is Postgres's error.
const UnreadablePayloadKey = "cancelnotify_unreadable_payload"

// MaxEventIDBytes is the longest event_id the relay accepts; a longer one is
// rejected (code event_id_too_long) without being sent. Postgres itself
// refuses an event_id over about 2,700 bytes at INSERT (the unique index's
// row limit); README.md, "How the OMS inserts a row".
const MaxEventIDBytes = 200

// Limits of the validation rules. Unexported and prefixed with "val" because
// relay.go shares the package.
const (
	valMaxBodyRunes     = 1024 // Meta: hydrated template body (error 132005)
	valMinShortRunes    = 20   // product_name / next_step are never cut below this
	valMaxReasonValue   = 80   // runes of a user value quoted in a Reason
	valMaxIdentRunes    = 200  // runes of Decision.OrderNumber and CustomerName
	valMaxPhoneDigits   = 17   // E.164 allows 15; 2 more for a "(0)" trunk prefix
	valDefaultLanguage  = "en" // when Validator.Language is empty (ONEMSG_LANGUAGE default)
	valPhoneExample     = `"+7 900 123-45-67"`
	valLanguageExamples = `"en", "ru" or "pt_BR"`
)

// valTextKeys are the payload keys of the four template body variables,
// in template order ({{1}}..{{4}}).
var valTextKeys = [4]string{"customer_name", "order_number", "product_name", "next_step"}

// valRequiredKeys are the keys an order.cancelled payload must have.
var valRequiredKeys = [5]string{"phone", "customer_name", "order_number", "product_name", "next_step"}

// valShortenable are the indexes into the four texts that may be shortened
// to fit the body limit, in the order they are shortened.
var valShortenable = [2]int{2, 3} // product_name, then next_step

// valTextWhat tells an OMS developer what to write in an empty text.
var valTextWhat = map[string]string{
	"customer_name": "the customer's name",
	"order_number":  "the order number",
	"product_name":  "the product name",
	"next_step":     "the cancellation reason, refund timeline or next step",
}

var valLanguageRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?$`)

// Validator checks outbox rows and prepares the template parameters.
// The zero value is usable: language "en" and DefaultBody.
type Validator struct {
	Language string // default template language (ONEMSG_LANGUAGE), e.g. "en"
	// PhoneRegion (CANCELNOTIFY_PHONE_REGION) is the ISO 3166 country whose
	// national notation reads a phone written without a country code;
	// "" (the default) accepts only numbers written with + or 00.
	PhoneRegion string
	Body        string // template body with {{1}}..{{4}}; "" means DefaultBody
	// Channels are the channels besides the default one (whose rules are
	// Language and Body above) that a payload's "channel" key may name,
	// each with its own language and body; nil: the default channel only.
	Channels map[string]Validator
}

// Decision is what to do with one outbox row.
type Decision struct {
	Status   ledger.Status // StatusQueued, StatusRejected or StatusSkipped
	Channel  string        // the channel it goes out through (ledger.DefaultChannel unless the payload names another)
	Phone    string        // normalized digits, E.164 without "+" ("" when the phone could not be read)
	Language string        // template language code to send with
	Params   []string      // the four body texts exactly as they will be sent (nil when rejected or skipped)
	// OrderNumber and CustomerName as the payload gave them, whenever they
	// could be read, also for rejected and skipped rows (at most 200 runes).
	OrderNumber  string
	CustomerName string
	Shortened    []string // names of payload keys that were shortened to fit 1024 chars, in order ("product_name", "next_step")
	Code         string   // machine-readable reason for rejected/skipped, e.g. "missing_field", "invalid_phone", "not_a_string", "empty_text", "body_too_long", "unknown_event_type", "invalid_json", "payload_too_large", "invalid_language", "opted_out", "unknown_channel"
	Reason       string   // human sentence naming the field, the rule and what to do, e.g. `payload.phone "12345" is not a valid international phone number: write it with the country code, e.g. "+7 900 123-45-67"`
}

func (d Decision) reject(code, reason string) Decision {
	d.Status = ledger.StatusRejected
	d.Params, d.Shortened = nil, nil
	d.Code, d.Reason = code, reason
	return d
}

// tooLargeReason is the reason of a payload over MaxPayloadBytes; the relay
// gives it too, for the rows it does not even fetch.
func tooLargeReason(size int) string {
	return fmt.Sprintf("payload is %d bytes, over the limit of %d bytes: send only phone, customer_name, order_number, product_name, next_step and optionally language and whatsapp_opt_in",
		size, MaxPayloadBytes)
}

func (v Validator) body() string {
	if v.Body == "" {
		return DefaultBody
	}
	return v.Body
}

func (v Validator) language() string {
	if v.Language == "" {
		return valDefaultLanguage
	}
	return v.Language
}

// Render fills the template body with params (used to measure length and by
// tests; the relay doesn't send it). params[i] replaces every {{i+1}} in one
// pass, so a text that itself contains "{{2}}" is not substituted again;
// placeholders without a param are left as they are.
func (v Validator) Render(params []string) string {
	if len(params) == 0 {
		return v.body()
	}
	pairs := make([]string, 0, 2*len(params))
	for i, p := range params {
		pairs = append(pairs, "{{"+strconv.Itoa(i+1)+"}}", p)
	}
	return strings.NewReplacer(pairs...).Replace(v.body())
}

// Validate decides what to do with one outbox row. It never panics and never
// returns an error: every input ends as exactly one of queued / rejected /
// skipped with a reason.
//
// Order of the checks, first failure wins:
//  1. event_type, then payload size, UTF-8, JSON syntax and "is an object"
//     (nothing else can be read before these pass);
//  2. whatsapp_opt_in: false skips the row even when other fields are wrong,
//     because a customer who did not opt in must never be messaged and
//     "skipped" says exactly that; a non-boolean value (null included, consent
//     unknown) rejects the row;
//  3. required keys present (all missing keys named at once), then types (all
//     wrong types named at once), phone, language, empty texts, body length.
//
// Phone and Language are filled in whenever they could be read, also for
// rejected and skipped rows, so the ledger shows whom a row was for.
func (v Validator) Validate(eventType string, payload []byte) Decision {
	d := Decision{Language: v.language(), Channel: ledger.DefaultChannel}

	if eventType == "" {
		return d.reject("unknown_event_type", fmt.Sprintf(
			"event_type is empty or NULL: insert the row with event_type %q, or leave the column out to get that default", EventTypeOrderCancelled))
	}
	if eventType != EventTypeOrderCancelled {
		return d.reject("unknown_event_type", fmt.Sprintf(
			"event_type %s is not supported: this version of cancelnotify only handles %q; insert the row with event_type %q",
			valQuote(eventType), EventTypeOrderCancelled, EventTypeOrderCancelled))
	}
	if len(payload) > MaxPayloadBytes {
		return d.reject("payload_too_large", tooLargeReason(len(payload)))
	}
	obj, reason := valDecodeObject(payload)
	if obj == nil {
		return d.reject("invalid_json", reason)
	}
	if raw, ok := obj[UnreadablePayloadKey]; ok && len(obj) == 1 {
		return d.reject("invalid_json", fmt.Sprintf(
			"payload could not be stored as jsonb (%s): write valid JSON without lone UTF-16 surrogates (README.md, \"How the OMS inserts a row\")",
			valClip(valString(raw), 2*valMaxReasonValue)))
	}
	// The channel decides the rules (language, body) of everything below.
	if raw, ok := obj["channel"]; ok {
		switch kind := valKind(raw); {
		case kind == "null" || (kind == "string" && valString(raw) == ""):
			// not given: the default channel
		case kind != "string":
			return d.reject("not_a_string", fmt.Sprintf("payload.channel is %s, not a string: write one of %s, or omit it for %q",
				valDescribe(raw), v.channelNames(), ledger.DefaultChannel))
		default:
			name := valString(raw)
			cv, ok := v.channel(name)
			if !ok {
				return d.reject("unknown_channel", fmt.Sprintf("payload.channel %s is not a configured channel: write one of %s (CANCELNOTIFY_CHANNELS_FILE), or omit it for %q",
					valQuote(name), v.channelNames(), ledger.DefaultChannel))
			}
			cd := cv.validate(obj)
			cd.Channel = name
			return cd
		}
	}
	return v.validate(obj)
}

// channel returns the rules of the channel named name.
func (v Validator) channel(name string) (Validator, bool) {
	if name == ledger.DefaultChannel {
		return v, true
	}
	cv, ok := v.Channels[name]
	cv.Channels = nil
	return cv, ok
}

// channelNames lists the names a payload may give, quoted, default first.
func (v Validator) channelNames() string {
	names := []string{strconv.Quote(ledger.DefaultChannel)}
	others := make([]string, 0, len(v.Channels))
	for n := range v.Channels {
		others = append(others, strconv.Quote(n))
	}
	slices.Sort(others)
	return valJoinOr(append(names, others...))
}

// validate is Validate after the payload was decoded and its channel
// chosen; v holds that channel's rules.
func (v Validator) validate(obj map[string]json.RawMessage) Decision {
	d := Decision{Language: v.language(), Channel: ledger.DefaultChannel}

	// Best effort, before anything can fail, so rejected and skipped rows
	// still record the recipient, the order and the language.
	if raw, ok := obj["order_number"]; ok {
		switch valKind(raw) {
		case "string":
			d.OrderNumber = valClip(valNormalizeText(valString(raw)), valMaxIdentRunes)
		case "number":
			d.OrderNumber = valClip(valNumberText(string(bytes.TrimSpace(raw))), valMaxIdentRunes)
		}
	}
	if raw, ok := obj["customer_name"]; ok && valKind(raw) == "string" {
		d.CustomerName = valClip(valNormalizeText(valString(raw)), valMaxIdentRunes)
	}
	var phoneRaw, phoneCode, phoneReason string
	phoneIsString := false
	if raw, ok := obj["phone"]; ok && valKind(raw) == "string" {
		phoneRaw, phoneIsString = valString(raw), true
		d.Phone, phoneCode, phoneReason = ReadPhone(phoneRaw, v.PhoneRegion)
	}
	langRaw, hasLang := obj["language"]
	lang, langGiven := "", false
	if hasLang {
		switch valKind(langRaw) {
		case "null":
			hasLang = false // null = not given: the default applies
		case "string":
			lang = valString(langRaw)
			langGiven = lang != "" // "" = not given, as many serializers write it
			if langGiven && valLanguageRE.MatchString(lang) {
				d.Language = lang
			}
		}
	}

	if raw, ok := obj["whatsapp_opt_in"]; ok {
		switch valKind(raw) {
		case "false":
			d.Status = ledger.StatusSkipped
			d.Code = "opted_out"
			d.Reason = "customer did not opt in to WhatsApp (payload.whatsapp_opt_in is false); nothing sent"
			return d
		case "true":
		default:
			return d.reject("not_a_boolean", fmt.Sprintf(
				"payload.whatsapp_opt_in is %s, not a boolean: write true or false, or omit the key when the customer opted in; nothing was sent",
				valDescribe(raw)))
		}
	}

	var missing []string
	for _, k := range valRequiredKeys {
		if _, ok := obj[k]; !ok {
			missing = append(missing, "payload."+k)
		}
	}
	if len(missing) > 0 {
		verb, them := "is", "it"
		if len(missing) > 1 {
			verb, them = "are", "them"
		}
		return d.reject("missing_field", fmt.Sprintf(
			"%s %s missing: an %s payload needs the keys phone, customer_name, order_number, product_name and next_step; add %s",
			valJoin(missing), verb, EventTypeOrderCancelled, them))
	}

	var wrong []string
	if !phoneIsString {
		wrong = append(wrong, fmt.Sprintf("payload.phone is %s, not a string: write it as a JSON string with the country code, e.g. %s",
			valDescribe(obj["phone"]), valPhoneExample))
	}
	var texts [4]string
	for i, k := range valTextKeys {
		raw := obj[k]
		switch kind := valKind(raw); {
		case kind == "string":
			texts[i] = valString(raw)
		case kind == "number" && k == "order_number":
			texts[i] = valNumberText(string(bytes.TrimSpace(raw)))
		case k == "order_number":
			wrong = append(wrong, fmt.Sprintf("payload.order_number is %s: write it as a JSON string or number", valDescribe(raw)))
		default:
			wrong = append(wrong, fmt.Sprintf("payload.%s is %s, not a string: write %s as a JSON string", k, valDescribe(raw), valTextWhat[k]))
		}
	}
	if hasLang && valKind(langRaw) != "string" {
		wrong = append(wrong, fmt.Sprintf("payload.language is %s, not a string: write a code like %s, or omit it to use the default %q",
			valDescribe(langRaw), valLanguageExamples, v.language()))
	}
	if len(wrong) > 0 {
		return d.reject("not_a_string", strings.Join(wrong, "; "))
	}

	if phoneCode != "" {
		return d.reject(phoneCode, phoneReason)
	}
	if langGiven && !valLanguageRE.MatchString(lang) {
		return d.reject("invalid_language", fmt.Sprintf(
			"payload.language %s is not a template language code: use two or three lowercase letters with an optional _ and two-letter region, like %s, or omit it to use the default %q",
			valQuote(lang), valLanguageExamples, v.language()))
	}

	params := make([]string, 4)
	var empty []string
	for i, t := range texts {
		params[i] = valNormalizeText(t)
		if i == 3 && strings.Contains(v.body(), "{{4}}.") {
			// The template ends the sentence itself: "refunded in 3 days."
			// would read "refunded in 3 days.." (README: next_step).
			params[i] = strings.TrimRight(strings.TrimRight(params[i], "."), " ")
		}
		if params[i] == "" {
			empty = append(empty, valTextKeys[i])
		}
	}
	if len(empty) > 0 {
		parts := make([]string, len(empty))
		for i, k := range empty {
			parts[i] = fmt.Sprintf("payload.%s is empty (or only spaces, line breaks or control characters): write %s", k, valTextWhat[k])
		}
		return d.reject("empty_text", strings.Join(parts, "; ")+"; WhatsApp rejects empty template parameters")
	}

	// Fit the hydrated body into Meta's limit: shorten the product name, then
	// the next step, never below valMinShortRunes, ending with "…".
	body := v.body()
	n := utf8.RuneCountInString(v.Render(params))
	for _, i := range valShortenable {
		if n <= valMaxBodyRunes {
			break
		}
		uses := strings.Count(body, "{{"+strconv.Itoa(i+1)+"}}")
		cur := utf8.RuneCountInString(params[i])
		if uses == 0 || cur <= valMinShortRunes {
			continue
		}
		cut := (n - valMaxBodyRunes + uses - 1) / uses
		params[i] = valShorten(params[i], max(cur-cut, valMinShortRunes))
		d.Shortened = append(d.Shortened, valTextKeys[i])
		n = utf8.RuneCountInString(v.Render(params))
	}
	if n > valMaxBodyRunes {
		return d.reject("body_too_long", v.tooLongReason(texts, params, d.Shortened, n))
	}

	d.Status = ledger.StatusQueued
	d.Params = params
	d.OrderNumber, d.CustomerName = params[1], params[0]
	return d
}

// tooLongReason names the field to blame for a body that cannot be made to
// fit: the longest text as the OMS wrote it (after whitespace
// normalization), or the template itself when it is too long on its own.
func (v Validator) tooLongReason(texts [4]string, params, shortened []string, n int) string {
	if fixed := utf8.RuneCountInString(v.Render(make([]string, 4))); fixed > valMaxBodyRunes-4 {
		return fmt.Sprintf("the template body alone is %d characters, so the message cannot fit WhatsApp's limit of %d characters: fix the configured template body",
			fixed, valMaxBodyRunes)
	}
	worst, worstLen := 0, -1
	for i, p := range params {
		if l := utf8.RuneCountInString(p); l > worstLen {
			worst, worstLen = i, l
		}
	}
	orig := utf8.RuneCountInString(valNormalizeText(texts[worst]))
	after := ""
	if len(shortened) > 0 {
		names := make([]string, len(shortened))
		for i, k := range shortened {
			names[i] = "payload." + k
		}
		after = fmt.Sprintf(" even after shortening %s to %d characters", valJoin(names), valMinShortRunes)
	}
	return fmt.Sprintf("payload.%s is %d characters long, so the message body would be %d characters, over WhatsApp's limit of %d%s: shorten payload.%s",
		valTextKeys[worst], orig, n, valMaxBodyRunes, after, valTextKeys[worst])
}

// valDecodeObject decodes only the top level of payload into raw values, so
// the depth or shape of keys we ignore costs nothing beyond the syntax check
// (encoding/json still refuses nesting deeper than 10000 levels anywhere:
// that is invalid_json). It returns nil and a reason when payload is not one
// valid UTF-8 JSON object.
func valDecodeObject(payload []byte) (map[string]json.RawMessage, string) {
	const fix = "the OMS must write one JSON object with the keys phone, customer_name, order_number, product_name and next_step"
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, "payload is empty: " + fix
	}
	if !utf8.Valid(payload) {
		off := 0
		for off < len(payload) {
			r, size := utf8.DecodeRune(payload[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return nil, fmt.Sprintf("payload is not valid UTF-8 (bad byte at offset %d): %s, in UTF-8", off, fix)
	}
	var top json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		msg := err.Error()
		var se *json.SyntaxError
		if strings.Contains(msg, "exceeded max depth") {
			msg = "arrays or objects nested more than 10000 levels deep"
		} else if errors.As(err, &se) {
			msg = fmt.Sprintf("%s, at byte %d", se.Error(), se.Offset)
		}
		return nil, fmt.Sprintf("payload is not valid JSON (%s): %s", valClip(msg, 2*valMaxReasonValue), fix)
	}
	if kind := valKind(top); kind != "object" {
		if kind == "true" || kind == "false" {
			kind = "boolean"
		}
		return nil, fmt.Sprintf("payload must be a JSON object, got %s: %s", kind, fix)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(top, &obj); err != nil || obj == nil {
		// Unreachable after the checks above; kept so no input can slip through.
		return nil, "payload is not a readable JSON object: " + fix
	}
	return obj, ""
}

// valKind is the JSON kind of a raw value: "object", "array", "string",
// "number", "true", "false" or "null".
func valKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return "null"
	}
	return "number"
}

// valDescribe says what a raw value is, for a Reason: `a number (42)`,
// `the string "no"`, `null`, `an array`.
func valDescribe(raw json.RawMessage) string {
	switch kind := valKind(raw); kind {
	case "object", "array":
		return "an " + kind
	case "string":
		return "the string " + valQuote(valString(raw))
	case "true", "false":
		return "a boolean (" + kind + ")"
	case "null":
		return "null"
	}
	return "a number (" + valClip(string(bytes.TrimSpace(raw)), valMaxReasonValue) + ")"
}

// valString decodes a raw JSON string; the payload is already known to be
// valid JSON, so the error cannot happen.
func valString(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// valNumberText renders a JSON number literal as an order number. Literals
// without an exponent are kept as written (jsonb stores 10482 and 10482.50
// that way); an exponent is expanded, so 1.0482e4 becomes "10482" and 1.5e-3
// "0.0015". Absurd exponents keep the literal rather than build a huge string.
func valNumberText(lit string) string {
	mant, exp, hasExp := lit, 0, false
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		e, err := strconv.Atoi(lit[i+1:])
		if err != nil || e > 40 || e < -40 {
			return lit
		}
		mant, exp, hasExp = lit[:i], e, true
	}
	if !hasExp {
		return lit
	}
	sign := ""
	if strings.HasPrefix(mant, "-") {
		sign, mant = "-", mant[1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart) + exp // digits before the decimal point
	var s string
	switch {
	case point <= 0:
		s = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		s = digits + strings.Repeat("0", point-len(digits))
	default:
		s = digits[:point] + "." + digits[point:]
	}
	whole, rest, hasPoint := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	if hasPoint {
		return sign + whole + "." + rest
	}
	return sign + whole
}

// PhoneRegionSetting names the setting ReadPhone's reasons point to.
const PhoneRegionSetting = "CANCELNOTIFY_PHONE_REGION"

// CheckPhoneRegion reports whether region can be a PhoneRegion: "" or an
// ISO 3166 alpha-2 code libphonenumber knows, in capitals (RU, US, DE).
func CheckPhoneRegion(region string) error {
	if region == "" || phonenumbers.GetSupportedRegions()[region] {
		return nil
	}
	return fmt.Errorf("%q is not an ISO 3166 country code with a phone numbering plan: write two capital letters, e.g. RU, US or DE", region)
}

// ReadPhone decides whom a payload's phone reaches: E.164 digits without
// "+", or "" with a rejection code and reason. It is the one place that
// decides, so that a number is never sent to a stranger abroad:
//
//   - written with "+" or "00": the international reading, whatever the
//     region ("+44 (0)20 …" included);
//   - with national marks (parentheses, or the region's trunk prefix such
//     as Russia's 8 or Germany's 0): read in region only;
//   - bare digits: read both ways; sent only when the readings agree or
//     only one of them is a valid number.
//
// Without a region, only the first kind is accepted: the reason names
// CANCELNOTIFY_PHONE_REGION.
func ReadPhone(s, region string) (phone, code, reason string) {
	plus, started, parens := false, false, false
	digits := make([]byte, 0, 20)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			started = true
			if len(digits) > valMaxPhoneDigits+2 {
				return "", "invalid_phone", valPhoneInvalid(s, "")
			}
		case c == '+' && !started:
			plus = true
		case c == '(' || c == ')':
			parens = true
		}
	}
	intl := plus
	if !plus && len(digits) >= 2 && digits[0] == '0' && digits[1] == '0' {
		digits, intl = digits[2:], true
	}
	if len(digits) < 2 || len(digits) > valMaxPhoneDigits {
		return "", "invalid_phone", valPhoneInvalid(s, "")
	}
	if intl {
		if e, ok := valParsePhone("+"+string(digits), ""); ok {
			return e, "", ""
		}
		return "", "invalid_phone", valPhoneInvalid(s, "")
	}
	if region == "" {
		return "", "ambiguous_phone", fmt.Sprintf(
			"payload.phone %s has no country code, so whose number it is depends on the country it is read in: write it with + and the country code, e.g. %s, or set %s to the country whose national notation the OMS writes (e.g. RU)",
			valQuote(s), valPhoneExample, PhoneRegionSetting)
	}
	regional, regionalOK := valParsePhone(string(digits), region)
	ndd := phonenumbers.GetNddPrefixForRegion(region, true)
	if parens || (ndd != "" && strings.HasPrefix(string(digits), ndd)) {
		if regionalOK {
			return regional, "", ""
		}
		return "", "invalid_phone", valPhoneInvalid(s, region)
	}
	international, intlOK := valParsePhone("+"+string(digits), "")
	switch {
	case regionalOK && intlOK && regional != international:
		return "", "ambiguous_phone", fmt.Sprintf(
			"payload.phone %s reads as +%s (%s) with a country code and as +%s (%s) in %s=%s; nothing was sent so that it reaches no stranger: write it with + and the country code",
			valQuote(s), international, valCountry(international), regional, valCountry(regional), PhoneRegionSetting, region)
	case regionalOK:
		return regional, "", ""
	case intlOK:
		return international, "", ""
	}
	return "", "invalid_phone", valPhoneInvalid(s, region)
}

func valPhoneInvalid(s, region string) string {
	if region == "" {
		return fmt.Sprintf("payload.phone %s is not a valid international phone number: write it with the country code, e.g. %s",
			valQuote(s), valPhoneExample)
	}
	return fmt.Sprintf("payload.phone %s is not a valid phone number, neither with a country code nor in %s=%s: write it with the country code, e.g. %s",
		valQuote(s), PhoneRegionSetting, region, valPhoneExample)
}

// valCountry is the ISO 3166 code of an E.164 number's country ("" if none).
func valCountry(e164 string) string {
	num, err := phonenumbers.Parse("+"+e164, "")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}

// valParsePhone reads s in region ("" for a number with "+") and returns
// its E.164 digits without "+" when libphonenumber finds it valid. A panic
// inside the third-party parser rejects the number instead of crashing
// the relay.
func valParsePhone(s, region string) (e164 string, ok bool) {
	defer func() {
		if recover() != nil {
			e164, ok = "", false
		}
	}()
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	out := strings.TrimPrefix(phonenumbers.Format(num, phonenumbers.E164), "+")
	for i := 0; i < len(out); i++ {
		if out[i] < '0' || out[i] > '9' {
			return "", false
		}
	}
	return out, out != ""
}

// valNormalizeText applies Meta's parameter text rules without rejecting:
// line breaks, tabs and every other Unicode space or control character become
// a space, runs of spaces collapse to one, and the ends are trimmed. Bidi
// controls (an RTL override turns "gnp.exe" into "exe.png") and zero-width
// characters are dropped, except a zero-width joiner between two emoji,
// which is part of one emoji (👩‍💻).
func valNormalizeText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	var prev rune
	for i, r := range s {
		if valInvisible(r) {
			if r == '\u200d' && valEmojiBefore(prev) {
				if next, size := utf8.DecodeRuneInString(s[i+len("\u200d"):]); size > 0 && next != utf8.RuneError && valEmoji(next) {
					b.WriteRune(r)
				}
			}
			continue
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			prev = ' '
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// valInvisible reports the characters valNormalizeText drops: bidi
// controls and zero-width characters.
func valInvisible(r rune) bool {
	switch r {
	case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u180e', '\u2061', '\u2062', '\u2063', '\u2064':
		return true
	}
	return unicode.Is(unicode.Bidi_Control, r)
}

// valEmoji approximates "starts an emoji": a symbol (So) such as 💻 or ❤.
func valEmoji(r rune) bool { return unicode.Is(unicode.So, r) }

// valEmojiBefore: what may end an emoji before a joiner: the symbol itself,
// a skin-tone modifier or the emoji variation selector.
func valEmojiBefore(r rune) bool {
	return valEmoji(r) || (r >= 0x1f3fb && r <= 0x1f3ff) || r == '\ufe0f'
}

// valShorten cuts s to at most n runes (n >= 2), ending with "…". A space
// before the ellipsis is dropped, so the result may be a rune shorter.
func valShorten(s string, n int) string { return textcut.Truncate(s, n) }

// valClip limits a user value quoted in a Reason to n runes and the "…".
func valClip(s string, n int) string { return textcut.Truncate(s, n+1) }

// valQuote quotes a user value for a Reason, at most valMaxReasonValue runes.
func valQuote(s string) string {
	return strconv.Quote(valClip(s, valMaxReasonValue))
}

// valJoinOr joins names as "a", "a or b" or "a, b or c".
func valJoinOr(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// valJoin joins names as "a", "a and b" or "a, b and c".
func valJoin(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
