package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The channels file is checked at start with the rest of the
// configuration: every problem at once, each naming the entry and the
// field, exit code 2, no token echoed.
func TestChannelsFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokB := write("brand-b.token", "tok-brand-b-SECRET\n")
	write("empty.token", "\n")
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "onemsg-token-brand-d"), []byte("tok-brand-d-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		"DATABASE_URL": "postgres://u@127.0.0.1:1/db", "ONEMSG_CHANNEL_ID": "ODI1", "ONEMSG_TOKEN": "tok-default-SECRET",
		"ONEMSG_TEMPLATE": "order_cancelled", "ONEMSG_NAMESPACE": "ns", "CREDENTIALS_DIRECTORY": creds,
	}
	with := func(file string) map[string]string {
		vars := map[string]string{"CANCELNOTIFY_CHANNELS_FILE": file}
		for k, v := range base {
			vars[k] = v
		}
		return vars
	}

	tests := []struct {
		name string
		file string
		want []string
	}{
		{"unknown keys", write("unknown.yaml", `channels:
  - name: brand-b
    channel_id: ODI2
    tokenfile: `+tokB+`
    template: t
    namespace: ns
    colour: red
`), []string{
			`line 4: unknown field "tokenfile": the known fields are name, channel_id, token_file`,
			`line 7: unknown field "colour"`,
		}},
		{"phone region", write("region.yaml", `channels:
  - name: brand-b
    channel_id: ODI2
    token_file: `+tokB+`
    template: t
    namespace: ns
    phone_region: XX
`), []string{`channels[0] (brand-b): phone_region: "XX" is not an ISO 3166 country code`}},
		{"unknown top-level key", write("top.yaml", "channel:\n  - name: x\n"), []string{`line 1: unknown key "channel": the file has one key, channels`}},
		{"duplicates, missing fields and tokens", write("many.yaml", `channels:
  - name: brand-b
    channel_id: ODI2
    token_file: `+tokB+`
    template: t
    namespace: ns
  - name: brand-b
    channel_id: ODI2
    token_file: `+tokB+`
    template: t
    namespace: ns
  - name: brand-c
    channel_id: ODI3
    template: t
  - name: default
    channel_id: ODI1
    token_file: `+filepath.Join(dir, "empty.token")+`
    template: t
    namespace: ns
    rate: -1
    pair_interval: soon
  - name: brand-d
    channel_id: ODI4
    template: t
    namespace: ns
`), []string{
			`channels[1] (brand-b): name "brand-b" is also the name of channels[0]: each channel needs its own name`,
			`channels[1] (brand-b): channel_id ODI2 is also the channel_id of channels[0]`,
			`channels[2] (brand-c): namespace is missing`,
			`channels[3] (default): the name "default" is taken by the channel of the ONEMSG_* variables`,
			`channels[3] (default): rate -1 is not a number from 0 to 100000`,
			`channels[3] (default): pair_interval "soon" is not a duration`,
		}},
		{"tokens", write("tokens.yaml", `channels:
  - name: brand-c
    channel_id: ODI3
    template: t
    namespace: ns
  - name: brand-e
    channel_id: ODI1
    token_file: `+filepath.Join(dir, "empty.token")+`
    template: t
    namespace: ns
  - name: brand-f
    channel_id: ODI6
    token_file: `+filepath.Join(dir, "missing.token")+`
    template: t
    namespace: ns
`), []string{
			`channels[0] (brand-c): no token: set token_file: /etc/cancelnotify/brand-c.token, or pass the systemd credential onemsg-token-brand-c`,
			`channels[1] (brand-e): channel_id ODI1 is ONEMSG_CHANNEL_ID, the default channel`,
			`channels[1] (brand-e): token_file ` + filepath.Join(dir, "empty.token") + ` is empty`,
			`channels[2] (brand-f): token_file ` + filepath.Join(dir, "missing.token") + ` cannot be read (no such file or directory)`,
		}},
		{"not YAML", write("bad.yaml", "channels: [\n"), []string{"is not valid YAML"}},
		{"empty", write("empty.yaml", ""), []string{"lists no channels"}},
		{"missing file", filepath.Join(dir, "nope.yaml"), []string{"CANCELNOTIFY_CHANNELS_FILE (--channels-file): " + filepath.Join(dir, "nope.yaml") + " cannot be read"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, with(tc.file), "run")
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "SECRET") {
				t.Errorf("stderr shows a token:\n%s", stderr)
			}
		})
	}
}

// A valid file passes the configuration check: run then fails only at the
// database, not at the configuration (exit 1, no configuration error).
func TestChannelsFileValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := filepath.Join(dir, "b.token")
	if err := os.WriteFile(tok, []byte("tok-b"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "channels.yaml")
	if err := os.WriteFile(file, []byte(`channels:
  - name: brand-b              # what a payload's "channel" key says
    channel_id: ODI371267301
    token_file: `+tok+`
    template: order_cancelled
    namespace: abc_ns
    language: en
    rate: 80                   # messages/s for this channel, all instances together
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, map[string]string{
		"DATABASE_URL": "postgres://u@127.0.0.1:1/db?connect_timeout=1", "ONEMSG_CHANNEL_ID": "ODI1", "ONEMSG_TOKEN": "t",
		"ONEMSG_TEMPLATE": "order_cancelled", "ONEMSG_NAMESPACE": "ns", "CANCELNOTIFY_CHANNELS_FILE": file,
	}, "run")
	if code == 2 || strings.Contains(stderr, "configuration is not usable") {
		t.Fatalf("exit %d; a valid channels file was refused:\n%s", code, stderr)
	}
}
