// Package textcut shortens text for people to read: by runes, never by
// bytes, so a cut never splits a character and a Cyrillic or emoji text gets
// as many characters as a Latin one.
package textcut

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ellipsis ends a shortened text.
const Ellipsis = "…"

// Truncate returns s when it has at most n runes, else its first n-1 runes
// followed by Ellipsis, so the result has at most n runes. Whitespace before
// the ellipsis is dropped, so the result may be shorter still. n < 1 counts
// as 1.
func Truncate(s string, n int) string {
	n = max(n, 1)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut := 0
	for range n - 1 {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cut += size
	}
	return strings.TrimRightFunc(s[:cut], unicode.IsSpace) + Ellipsis
}
