package main

import (
	"strings"
	"testing"
	"time"
)

// What a new user sees when a command line is wrong: a short answer that
// says what to type, exit code 2.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		want   []string // fragments of stderr
		reject []string // must not appear
	}{
		{"mistyped command", []string{"stauts"}, []string{`unknown command "stauts"`, "did you mean `cancelnotify status`?"}, nil},
		{"command prefix", []string{"webh"}, []string{"did you mean `cancelnotify webhook`?"}, nil},
		{"nothing close", []string{"xyzzy"}, []string{`unknown command "xyzzy"`, "cancelnotify help"}, []string{"did you mean"}},
		{"unknown flag", []string{"run", "--nope"}, []string{"flag provided but not defined: -nope", "Usage: cancelnotify run [flags]", "cancelnotify run --help"},
			[]string{"-admin-addr", "-webhook-secret"}},
		{"resolve without an action", []string{"resolve", "order-1-cancelled"}, []string{"exactly one action", "--sent WAMID | --resend | --abandon"}, nil},
		{"resolve with two actions", []string{"resolve", "order-1-cancelled", "--resend", "--abandon"}, []string{"exactly one action"}, nil},
		{"webhook without a subcommand", []string{"webhook"}, []string{"usage: cancelnotify webhook register URL"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, nil, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, r := range tt.reject {
				if strings.Contains(stderr, r) {
					t.Errorf("stderr has %q:\n%s", r, stderr)
				}
			}
			if n := strings.Count(stderr, "\n"); n > 5 {
				t.Errorf("stderr is %d lines, want a short answer:\n%s", n, stderr)
			}
		})
	}
}

func TestHelpListsFlags(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, nil, "run", "--help")
	if code != 0 || !strings.Contains(stderr, "Usage: cancelnotify run [flags]") || !strings.Contains(stderr, "-webhook-secret") {
		t.Errorf("run --help: exit %d\n%s", code, stderr)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90d", 90 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"2160h", 2160 * time.Hour, true},
		{"30s", 30 * time.Second, true},
		{"0", 0, true},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"90days", 0, false},
		{"forever", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// Every command falls back to the local database, as demo and make test do.
func TestDatabaseURLDefault(t *testing.T) {
	t.Parallel()
	s := newSettings(newFlagSet(&env{}, "status"), func(string) string { return "" })
	db := addDBOptions(s)
	if url, _ := db.values(s); url != DefaultDatabaseURL || s.err() != nil {
		t.Errorf("DATABASE_URL unset: %q, %v; want %s", url, s.err(), DefaultDatabaseURL)
	}
}
