package sandbox_test

import (
	"net/http"
	"strings"
	"testing"
)

// The account controls change what 1MSG answers at run time, over HTTP.
func TestAccountControls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	body := sendBody("491510000001", "A", "1", "B", "C")
	control := func(path, in string) {
		t.Helper()
		if r := e.must(http.MethodPost, "/_sandbox/"+path, map[string]string{"Content-Type": "application/json"}, in); r.status != http.StatusOK {
			t.Fatalf("POST /_sandbox/%s %s: HTTP %d %s", path, in, r.status, r.raw)
		}
	}
	tests := []struct {
		name, on, off string
		path          string
		check         func(r response) string // "" when the refusal is 1MSG's
		statusAfter   string
	}{
		{"token revoked", `{"revoked":true}`, `{"revoked":false}`, "token", func(r response) string {
			if r.status != http.StatusUnauthorized || !strings.Contains(r.raw, `Wrong token \"sandbox-token\" for channel \"sandbox\". Please provide token as a GET parameter.`) {
				return "want HTTP 401 with 1MSG's body"
			}
			return ""
		}, ""},
		{"template paused", `{"name":"order_cancelled","language":"en","status":"paused"}`, `{"name":"order_cancelled","status":"approved"}`, "template", func(r response) string {
			errObj, _ := r.json["error"].(map[string]any)
			if r.status != http.StatusOK || r.json["sent"] != false || errObj == nil || errObj["code"] != float64(132015) ||
				!strings.Contains(r.raw, "Template is Paused") {
				return "want sent:false with Meta's 132015 and its title"
			}
			return ""
		}, ""},
		{"channel disconnected", `{"status":"disconnected"}`, `{"status":"connected"}`, "channel", func(r response) string {
			if r.status != http.StatusOK || r.json["sent"] != false || !strings.Contains(r.raw, "not connected") {
				return "want sent:false saying the channel is not connected"
			}
			return ""
		}, "disconnected"},
	}
	for _, tt := range tests {
		control(tt.path, tt.on)
		if msg := tt.check(e.send(body)); msg != "" {
			t.Errorf("%s: %s", tt.name, msg)
		}
		if tt.statusAfter != "" {
			if r := e.get("/sandbox/status"); r.json["status"] != tt.statusAfter {
				t.Errorf("%s: GET /status = %s, want %q", tt.name, r.raw, tt.statusAfter)
			}
		}
		control(tt.path, tt.off)
		if r := e.send(body); r.json["sent"] != true {
			t.Errorf("%s cleared: send answered %d %s, want sent:true", tt.name, r.status, r.raw)
		}
	}
	if r := e.get("/sandbox/templates"); !strings.Contains(r.raw, `"status":"approved"`) {
		t.Errorf("templates after unpause: %s", r.raw)
	}
	if r := e.must(http.MethodPost, "/_sandbox/channel", nil, `{"status":"asleep"}`); r.status != http.StatusBadRequest || !strings.Contains(r.raw, "not one of") {
		t.Errorf("bad channel status: HTTP %d %s, want 400 naming the values", r.status, r.raw)
	}
	calls := e.sb.Calls()
	if len(calls) == 0 || calls[0].Method != "status" {
		t.Errorf("call log %+v: want the GET /status first", calls)
	}
}

// A payload language the template lacks is Meta's 132001 naming the
// languages it has.
func TestTemplateLacksLanguage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	body := strings.Replace(sendBody("491510000002", "A", "1", "B", "C"), `"code":"en"`, `"code":"ru"`, 1)
	r := e.send(body)
	errObj, _ := r.json["error"].(map[string]any)
	if r.json["sent"] != false || errObj == nil || errObj["code"] != float64(132001) || !strings.Contains(r.raw, "it exists in en") {
		t.Fatalf("send in ru: %d %s; want sent:false, 132001, naming en", r.status, r.raw)
	}
}
