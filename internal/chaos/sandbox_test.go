package chaos

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/channels"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// TestWriteChannelsFile checks that the daemon's own parser reads the
// run's channels file as the run's second channel, with its token.
func TestWriteChannelsFile(t *testing.T) {
	chans := runChannels(0.3)
	if len(chans) != 2 || chans[1].Name != SecondChannel || chans[1].token == chans[0].token || chans[1].ID == chans[0].ID {
		t.Fatalf("runChannels = %+v: want the default channel and %s with its own id and token", chans, SecondChannel)
	}
	if one := runChannels(0); len(one) != 1 {
		t.Fatalf("runChannels(0) = %+v: want the default channel only", one)
	}
	path, err := writeChannelsFile(t.TempDir(), chans, 500)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	specs, probs := channels.Parse(f)
	if len(probs) > 0 {
		t.Fatalf("the daemon would refuse the channels file: %q", probs)
	}
	c := chans[1]
	if len(specs) != 1 || specs[0].Name != c.Name || specs[0].ChannelID != c.ID || specs[0].Template != c.Template ||
		specs[0].Namespace != c.Namespace || specs[0].Rate == nil || *specs[0].Rate != 500 {
		t.Fatalf("channels file = %+v, want %+v at rate 500", specs, c.ChannelInfo)
	}
	tok, err := os.ReadFile(specs[0].TokenFile)
	if err != nil || strings.TrimSpace(string(tok)) != c.token {
		t.Fatalf("token file %s: %v; does not hold the channel's token", specs[0].TokenFile, err)
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name string
		req  sandbox.Request
		want string
	}{
		{"bearer header", sandbox.Request{Header: http.Header{"Authorization": {"Bearer abc"}}}, "abc"},
		{"query", sandbox.Request{RawQuery: "token=q1", Header: http.Header{"Authorization": {"Bearer abc"}}}, "q1"},
		{"body first", sandbox.Request{Body: []byte(`{"token":"b1"}`), RawQuery: "token=q1"}, "b1"},
		{"none", sandbox.Request{Body: []byte(`{"phone":"1"}`)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := requestToken(tt.req); got != tt.want {
				t.Errorf("requestToken = %q, want %q", got, tt.want)
			}
		})
	}
}
