package channels_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/channels"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const good = `channels:
  - name: brand-b
    channel_id: ODI2
    token_file: /etc/cancelnotify/brand-b.token
    template: brand_b_cancelled
    namespace: ns_b
    language: ru
    rate: 20
    pair_interval: 10s
    phone_region: DE
`
	specs, probs := channels.Parse(strings.NewReader(good))
	if len(probs) != 0 || len(specs) != 1 {
		t.Fatalf("Parse(good) = %v, %v; want one channel, no problem", specs, probs)
	}
	s := specs[0]
	if s.Name != "brand-b" || s.ChannelID != "ODI2" || s.Template != "brand_b_cancelled" || s.Namespace != "ns_b" ||
		s.Language != "ru" || s.Rate == nil || *s.Rate != 20 || s.PairInterval == nil || *s.PairInterval != 10*time.Second ||
		s.PhoneRegion != "DE" || s.TokenFile != "/etc/cancelnotify/brand-b.token" {
		t.Errorf("Parse(good) = %+v", s)
	}

	tests := []struct {
		name, file string
		want       []string // fragments, one problem each
	}{
		{"empty", "channels: []\n", []string{"lists no channels"}},
		{"not YAML", "channels: [\n", []string{"is not valid YAML"}},
		{"unknown field", "channels:\n  - name: b\n    colour: red\n", []string{`unknown field "colour"`}},
		{"reserved and duplicate names, missing fields", `channels:
  - name: default
    channel_id: A
    template: t
    namespace: n
  - name: b
    channel_id: B
    template: t
    namespace: n
  - name: b
    channel_id: B
`, []string{`the name "default" is taken`, `name "b" is also the name of channels[1]`, "template", "namespace"}},
		{"bad values", `channels:
  - name: b
    channel_id: B
    template: t
    namespace: n
    language: English
    rate: -1
    phone_region: XX
    api_url: ftp://x
`, []string{`language "English"`, "rate -1", `phone_region: "XX"`, `api_url "ftp://x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, probs := channels.Parse(strings.NewReader(tt.file))
			all := strings.Join(probs, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q:\n%s", w, all)
				}
			}
		})
	}
}
