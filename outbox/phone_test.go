package outbox

import (
	"strings"
	"testing"
)

// The notations an OMS writes, with and without CANCELNOTIFY_PHONE_REGION:
// a number reaches the customer or is rejected with a reason, never a
// stranger in another country.
func TestReadPhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phone, region string
		want          string // E.164 digits; "" = rejected
		code          string
		reason        string // part of the reason
	}{
		// Written with a country code: the same everywhere.
		{"+7 900 123-45-67", "", "79001234567", "", ""},
		{"+7 900 123-45-67", "US", "79001234567", "", ""},
		{"+7 (900) 123-45-67", "", "79001234567", "", ""},
		{"+44 (0)20 7946 0958", "", "442079460958", "", ""},
		{"0049 30 123456", "", "4930123456", "", ""},
		{"0049 30 123456", "DE", "4930123456", "", ""},
		{"0049 30 123456", "US", "4930123456", "", ""},
		// Russia's domestic form went to Vietnam before: now rejected
		// without a region, read in Russia with one.
		{"8 (495) 123-45-67", "", "", "ambiguous_phone", "CANCELNOTIFY_PHONE_REGION"},
		{"8 (495) 123-45-67", "RU", "74951234567", "", ""},
		{"84951234567", "RU", "74951234567", "", ""}, // trunk prefix 8
		// A US number in national form went to Egypt.
		{"(201) 555-0123", "", "", "ambiguous_phone", "CANCELNOTIFY_PHONE_REGION"},
		{"(201) 555-0123", "US", "12015550123", "", ""},
		// Bare digits: sent only when both readings agree, or only one is a number.
		{"79001234567", "", "", "ambiguous_phone", "set CANCELNOTIFY_PHONE_REGION"},
		{"79001234567", "RU", "79001234567", "", ""},
		{"79001234567", "US", "79001234567", "", ""}, // not a US number at all
		{"2015550123", "US", "", "ambiguous_phone", "+12015550123 (US)"},
		{"030 123456", "DE", "4930123456", "", ""}, // trunk prefix 0
		// Not a number in any reading.
		{"+12345", "", "", "invalid_phone", "not a valid international phone number"},
		{"12345", "RU", "", "invalid_phone", "CANCELNOTIFY_PHONE_REGION=RU"},
		{"", "", "", "invalid_phone", `""`},
		{"call me", "RU", "", "invalid_phone", ""},
		{strings.Repeat("7", 500), "RU", "", "invalid_phone", ""},
	}
	for _, tt := range tests {
		t.Run(tt.phone+"/"+tt.region, func(t *testing.T) {
			got, code, reason := ReadPhone(tt.phone, tt.region)
			if got != tt.want || code != tt.code || !strings.Contains(reason, tt.reason) {
				t.Errorf("ReadPhone(%q, %q) = %q, %q, %q; want %q, %q with %q", tt.phone, tt.region, got, code, reason, tt.want, tt.code, tt.reason)
			}
		})
	}
}

func TestCheckPhoneRegion(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "RU", "US", "DE"} {
		if err := CheckPhoneRegion(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"ru", "XX", "RUS", "7", " RU"} {
		if err := CheckPhoneRegion(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Texts arrive without bidi controls and zero-width characters; emoji
// built with a zero-width joiner stay whole.
func TestNormalizeTextStripsInvisible(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Alexey", "Alexey"},
		{"Invoice \u202egnp.exe", "Invoice gnp.exe"},
		{"\u2066Al\u2069ex\u200bey\u200c\u200e\u200f\ufeff", "Alexey"},
		{"Ale\u200dxey", "Alexey"},                           // a joiner between letters
		{"dev 👩\u200d💻 team", "dev 👩\u200d💻 team"},           // woman technologist
		{"👨\u200d👩\u200d👧 family", "👨\u200d👩\u200d👧 family"}, // family
		{"❤\ufe0f\u200d🔥", "❤\ufe0f\u200d🔥"},                 // heart on fire
		{"👩🏽\u200d💻", "👩🏽\u200d💻"},                           // with a skin tone
		{"👩\u200d", "👩"},                                     // a dangling joiner
		{"a\u200d💻", "a💻"},                                   // a joiner after a letter
		{"line\nbreak\ttab  \u00a0 spaces", "line break tab spaces"},
		{"\u202e\u200b", ""},
	}
	for _, tt := range tests {
		if got := valNormalizeText(tt.in); got != tt.want {
			t.Errorf("valNormalizeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
