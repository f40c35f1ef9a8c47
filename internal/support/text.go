package support

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

var funcs = template.FuncMap{
	"visible": visible,
	"ts":      ts,
	"mask":    ledger.MaskPhone,
	"pretty":  pretty,
	"pricing": pricingText,
	"final":   func(s ledger.Status) bool { return s.Final() },
	"detail":  detailURL,
}

// invisible names the characters that change how text around them reads
// without being seen: bidirectional overrides and isolates (an RTL
// override can make "refund 100" read "001 dnufer"), zero-width characters
// and other format characters.
var invisible = map[rune]string{
	'\u061c': "ALM", '\u200b': "ZWSP", '\u200c': "ZWNJ", '\u200d': "ZWJ", '\u200e': "LRM", '\u200f': "RLM",
	'\u202a': "LRE", '\u202b': "RLE", '\u202c': "PDF", '\u202d': "LRO", '\u202e': "RLO",
	'\u2060': "WJ", '\u2061': "FA", '\u2062': "IT", '\u2063': "IS", '\u2064': "IP",
	'\u2066': "LRI", '\u2067': "RLI", '\u2068': "FSI", '\u2069': "PDI", '\ufeff': "BOM", '\u00ad': "SHY",
}

// visible renders s as escaped text in which every invisible or
// direction-changing character is replaced by a visible marker, so a
// payload shows exactly what it contains and cannot rearrange the page.
// Control characters other than tab and newline are marked too.
func visible(s string) template.HTML {
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		name, ok := invisible[r]
		switch {
		case ok:
		case r == utf8.RuneError && size == 1:
			name, ok = fmt.Sprintf("byte %#x", s[i]), true
		case (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0):
			name, ok = fmt.Sprintf("U+%04X", r), true
		}
		if ok {
			b.WriteString(template.HTMLEscapeString(s[start:i]))
			fmt.Fprintf(&b, `<span class="inv" title="invisible character">%s</span>`, template.HTMLEscapeString(name))
			start = i + size
		}
		i += size
	}
	b.WriteString(template.HTMLEscapeString(s[start:]))
	return template.HTML(b.String()) //nolint:gosec // every piece of s is escaped above
}

func ts(t any) string {
	var v time.Time
	switch x := t.(type) {
	case time.Time:
		v = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		v = *x
	}
	if v.IsZero() {
		return "—"
	}
	return v.UTC().Format("2006-01-02 15:04:05 UTC")
}

// pretty indents a JSON detail for reading; "" for an empty object.
func pretty(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// pricingText is what Meta says the message costs, in words.
func pricingText(p *ledger.Pricing) string {
	if p == nil {
		return "not known yet"
	}
	parts := []string{}
	for _, s := range []string{p.Category, p.Model, p.Type} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch {
	case p.Billable == nil:
	case *p.Billable:
		parts = append(parts, "billable")
	default:
		parts = append(parts, "not billable")
	}
	return strings.Join(parts, " · ")
}
