package textcut_test

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/cancelnotify/cancelnotify/internal/textcut"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"short", 5, "short"},
		{"longer", 5, "long…"},
		{"Алексей Петров", 8, "Алексей…"},        // 2-byte runes: a byte cut would give 4 letters
		{"Привет, мир", 7, "Привет…"},            // the comma goes, the ellipsis counts
		{"Заказ отменён", 7, "Заказ…"},           // a space before the ellipsis is dropped
		{"🎧 наушники", 3, "🎧…"},                  // 4-byte rune, then a space: dropped
		{"日本語のテキスト", 4, "日本語…"},                  // 3-byte runes
		{"e\u0301e\u0301e\u0301", 3, "e\u0301…"}, // runes, not grapheme clusters
		{"abc", 0, "…"},
		{"abc", 1, "…"},
		{"a", 1, "a"},
	}
	for _, tt := range tests {
		got := textcut.Truncate(tt.in, tt.n)
		if got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tt.n, 1) {
			t.Errorf("Truncate(%q, %d) = %q: invalid UTF-8 or longer than %d runes", tt.in, tt.n, got, tt.n)
		}
	}
}

func ExampleTruncate() {
	fmt.Println(textcut.Truncate("Беспроводные наушники", 13))
	// Output: Беспроводные…
}
