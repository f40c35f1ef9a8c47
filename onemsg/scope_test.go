package onemsg

import (
	"fmt"
	"net/http"
	"testing"
)

func TestScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		e     Error
		kind  ErrorKind // 0: not checked (HTTP answers)
		scope Scope
	}{
		{"401 wrong token", Error{HTTPStatus: http.StatusUnauthorized, Message: `Wrong token "x" for channel "c".`}, 0, ScopeChannel},
		{"403 subscription blocked", Error{HTTPStatus: http.StatusForbidden, Message: "Forbidden"}, 0, ScopeChannel},
		{"400 invalid phone", Error{HTTPStatus: http.StatusBadRequest, Message: `invalid "phone"`}, 0, ScopeMessage},
		{"not connected, no code", Error{HTTPStatus: 200, Message: "Channel is not connected (status: disconnected)"}, 0, ScopeChannel},
		{"template is not defined", Error{HTTPStatus: 200, Message: "template is not defined"}, 0, ScopeMessage},
		{"title only: template paused", Error{HTTPStatus: 200, Message: "Template is Paused"}, 0, ScopeChannel},
		{"title only: undeliverable", Error{HTTPStatus: 200, Message: "Message undeliverable"}, 0, ScopeMessage},
		{"unknown code", Error{HTTPStatus: 200, Code: 100, Message: "Invalid parameter"}, KindRejected, ScopeMessage},
	}
	// One case per row of the table, by code and by its title alone.
	for _, r := range refusals {
		tests = append(tests, struct {
			name  string
			e     Error
			kind  ErrorKind
			scope Scope
		}{fmt.Sprintf("code %d", r.code), Error{HTTPStatus: 200, Code: r.code, Message: "x"}, r.kind, r.scope})
		if r.title != "" {
			tests = append(tests, struct {
				name  string
				e     Error
				kind  ErrorKind
				scope Scope
			}{fmt.Sprintf("title %q", r.title), Error{HTTPStatus: 200, Message: "Meta: " + r.title}, 0, r.scope})
		}
	}
	want := map[int]Scope{
		130429: ScopeMessage, 131056: ScopeMessage, 131000: ScopeMessage, 131016: ScopeMessage,
		131026: ScopeMessage, 131047: ScopeMessage, 131048: ScopeMessage, 131049: ScopeMessage, 130472: ScopeMessage,
		132000: ScopeMessage, 132005: ScopeMessage, 132007: ScopeMessage, 132012: ScopeMessage, 132018: ScopeMessage,
		132001: ScopeChannel, 132015: ScopeChannel, 132016: ScopeChannel, 131031: ScopeChannel, 131042: ScopeChannel, 368: ScopeChannel,
	}
	for code, s := range want {
		if r, ok := refusalByCode(code); !ok || r.scope != s {
			t.Errorf("code %d: table says %v (listed %v), want %v", code, r.scope, ok, s)
		}
	}
	for _, tt := range tests {
		if got := tt.e.Scope(); got != tt.scope {
			t.Errorf("%s: scope %v, want %v", tt.name, got, tt.scope)
		}
		if tt.kind != 0 {
			if got := kindOfRefusal(tt.e.Code); got != tt.kind {
				t.Errorf("%s: kind %v, want %v", tt.name, got, tt.kind)
			}
		}
		if tt.e.Code == 0 && tt.e.HTTPStatus == 200 {
			if r, ok := refusalByText(tt.e.Message); ok && CodeForText(tt.e.Message) != r.code {
				t.Errorf("%s: CodeForText %d, want %d", tt.name, CodeForText(tt.e.Message), r.code)
			}
		}
	}
}
