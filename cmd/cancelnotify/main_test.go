package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), args, &env{getenv: func(k string) string { return vars[k] }, stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

// Every configuration problem is reported at once, each naming the
// variable and the expected form; exit code 2; no secret echoed.
func TestConfigErrorsAllAtOnce(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, map[string]string{
		"DATABASE_URL":                "mysql://root:hunter2@db/oms",
		"ONEMSG_API_URL":              "api.1msg.io",
		"CANCELNOTIFY_TRACK_FOR":      "forever",
		"CANCELNOTIFY_SEND_WORKERS":   "-3",
		"CANCELNOTIFY_WEBHOOK_SECRET": "short",
		"CANCELNOTIFY_CALLBACK_URL":   "https://crm.example/hook",
		"CANCELNOTIFY_LOG_LEVEL":      "loud",
		"CANCELNOTIFY_SCHEMA":         "Bad-Schema",
		"CANCELNOTIFY_ADMIN_USER":     "ops",
		"ONEMSG_SEND_TTL":             "13h",
	}, "run")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{
		"DATABASE_URL (--database-url) is not a postgres:// URL",
		"CANCELNOTIFY_SCHEMA (--schema)",
		`ONEMSG_API_URL (--onemsg-api-url) = "api.1msg.io" is not an http(s) URL`,
		"ONEMSG_CHANNEL_ID (--onemsg-channel-id) is not set",
		"the 1MSG token is not set",
		"ONEMSG_TEMPLATE (--onemsg-template) is not set",
		"ONEMSG_NAMESPACE (--onemsg-namespace) is not set",
		`CANCELNOTIFY_TRACK_FOR (--track-for) = "forever" is not a duration`,
		`CANCELNOTIFY_SEND_WORKERS (--send-workers) = "-3" is not a whole number`,
		"CANCELNOTIFY_WEBHOOK_SECRET (--webhook-secret) must be 16-200 characters",
		"CANCELNOTIFY_CALLBACK_SECRET (--callback-secret) is not",
		"CANCELNOTIFY_ADMIN_USER (--admin-user) and CANCELNOTIFY_ADMIN_PASSWORD (--admin-password) go together",
		`CANCELNOTIFY_LOG_LEVEL (--log-level) = "loud" is not a log level`,
		`ONEMSG_SEND_TTL (--onemsg-send-ttl) = "13h" is outside what Meta accepts for a utility template`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, secret := range []string{"hunter2", "short"} {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr shows the secret %q", secret)
		}
	}
}

func TestTokenSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "onemsg-token"), []byte("from-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env       map[string]string
		want      string
		wantError string
	}{
		{env: map[string]string{"ONEMSG_TOKEN": "direct"}, want: "direct"},
		{env: map[string]string{"ONEMSG_TOKEN_FILE": filepath.Join(dir, "token")}, want: "from-file"},
		{env: map[string]string{"CREDENTIALS_DIRECTORY": creds}, want: "from-credential"},
		{env: map[string]string{"ONEMSG_TOKEN_FILE": filepath.Join(dir, "missing")}, wantError: "ONEMSG_TOKEN_FILE (--onemsg-token-file): " + filepath.Join(dir, "missing") + " cannot be read"},
		{env: map[string]string{"ONEMSG_TOKEN_FILE": filepath.Join(dir, "empty")}, wantError: "is empty"},
		{env: map[string]string{}, wantError: "the 1MSG token is not set"},
	}
	for _, tt := range tests {
		fs := newFlagSet(&env{stderr: &bytes.Buffer{}}, "x")
		s := newSettings(fs, func(k string) string { return tt.env[k] })
		tok := s.secret("ONEMSG_TOKEN", "onemsg-token", "")
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		got := s.token(tok)
		err := s.err()
		switch {
		case tt.wantError == "" && (err != nil || got != tt.want):
			t.Errorf("%v: %q, %v; want %q", tt.env, got, err, tt.want)
		case tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)):
			t.Errorf("%v: error %v, want %q", tt.env, err, tt.wantError)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if code, out, _ := run(t, nil, "help"); code != 0 || !strings.Contains(out, "retry") {
		t.Errorf("help: %d %s", code, out)
	}
	if code, _, stderr := run(t, nil, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %s", code, stderr)
	}
	for _, c := range commands {
		code, _, stderr := run(t, map[string]string{"DATABASE_URL": "postgres://u:topsecret@h/db"}, c.name, "--help")
		if code != 0 || !strings.Contains(stderr, "Example:") {
			t.Errorf("%s --help: exit %d, output %s", c.name, code, stderr)
		}
		if strings.Contains(stderr, "topsecret") {
			t.Errorf("%s --help shows the database password", c.name)
		}
	}
	if code, _, stderr := run(t, nil, "status", "a", "b", "--database-url", "postgres://x@y/z"); code != 2 || !strings.Contains(stderr, "one EVENT_ID") {
		t.Errorf("status a b: %d %s", code, stderr)
	}
}

func TestInterspersed(t *testing.T) {
	t.Parallel()
	fs := newFlagSet(&env{stderr: &bytes.Buffer{}}, "x")
	s := newSettings(fs, func(string) string { return "" })
	st := s.add("", "status", "", "")
	js := s.addBool("", "json", false, "")
	if err := parse(fs, []string{"ev-1", "--json", "--status", "failed", "ev-2"}); err != nil {
		t.Fatal(err)
	}
	if st.raw != "failed" || js.raw != "true" || strings.Join(fs.Args(), ",") != "ev-1,ev-2" {
		t.Errorf("status %q json %q args %v", st.raw, js.raw, fs.Args())
	}
}

// ONEMSG_SEND_TTL takes seconds or a duration within Meta's utility range, or -1.
func TestSendTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
		bad  string
	}{
		{"", 0, ""}, {"21600", 21600, ""}, {"6h", 21600, ""}, {"30s", 30, ""}, {"12h", 43200, ""}, {"-1", -1, ""},
		{"29", 0, "outside"}, {"43201", 0, "outside"}, {"0", 0, "outside"}, {"1.5s", 0, "not a time-to-live"}, {"soon", 0, "not a time-to-live"},
	}
	for _, tt := range tests {
		s := newSettings(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string {
			if k == "ONEMSG_SEND_TTL" {
				return tt.in
			}
			return ""
		})
		o := s.add("ONEMSG_SEND_TTL", "onemsg-send-ttl", "", "")
		got := s.sendTTL(o)
		err := s.err()
		switch {
		case tt.bad == "" && (err != nil || got != tt.want):
			t.Errorf("%q: %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("%q: error %v, want one saying %q", tt.in, err, tt.bad)
		}
	}
}

// The settings of the hostile-input rules are checked at start, listed at once.
func TestConfigRejectsUnsafeAdminAndBadRegion(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, map[string]string{
		"CANCELNOTIFY_PHONE_REGION": "XX",
		"CANCELNOTIFY_PPROF":        "yes",
		"CANCELNOTIFY_ADMIN_ADDR":   "0.0.0.0:9090",
	}, "run")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{
		`CANCELNOTIFY_PHONE_REGION (--phone-region): "XX" is not an ISO 3166 country code`,
		`CANCELNOTIFY_PPROF (--pprof) = "yes": write on or off`,
		`CANCELNOTIFY_ADMIN_ADDR (--admin-addr) = "0.0.0.0:9090" is not a loopback address`,
		"ONEMSG_CHANNEL_ID (--onemsg-channel-id) is not set", // and the rest, at once
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
