package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable makes text from the database or from 1MSG safe for an
// operator's terminal: control characters (ESC starts terminal commands),
// bidi controls and other invisible format characters, and bytes that are
// not UTF-8 are written as Go escapes (\x1b, \u202e), so what is shown is
// what is stored. Every human output of the commands uses it; --json needs
// it not.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if !shownAsIs(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && !shownAsIs(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !shownAsIs(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func shownAsIs(r rune) bool {
	return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r) &&
		r != '\u2028' && r != '\u2029'
}
