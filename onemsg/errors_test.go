package onemsg

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestDecodeSendResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body     string
		wantID   string
		wantJob  string
		wantKind ErrorKind
		wantCode int
		wantMsg  string
	}{
		{body: `{"sent":true,"id":"wamid.X","message":"Sent to 1@c.us","description":"Message has been sent to the provider"}`, wantID: "wamid.X"},
		{body: `{"sent":false,"jobId":"job_1","message":"queued"}`, wantJob: "job_1"},
		{body: `{"sent":true}`, wantKind: KindUnknown},
		{body: `{"sent":false,"message":"template is not defined"}`, wantKind: KindRejected, wantMsg: "template is not defined"},
		{body: `{"sent":false,"error":{"code":131026,"title":"Message undeliverable"}}`, wantKind: KindRejected, wantCode: 131026, wantMsg: "Message undeliverable"},
		{body: `{"sent":false,"error":{"code":130429,"message":"Rate limit hit"}}`, wantKind: KindThrottled, wantCode: 130429},
		{body: `{"sent":false,"error":"(#131056) (Business Account, Consumer Account) pair rate limit hit"}`, wantKind: KindThrottled, wantCode: 131056},
		{body: `{"sent":false,"error":{"error_code":131000,"message":"Something went wrong"}}`, wantKind: KindNotSent, wantCode: 131000},
		{body: `{"sent":false,"error":{"error_user_title":"Bad params","error_user_msg":"Param text cannot have new-line","code":132018}}`, wantKind: KindRejected, wantCode: 132018, wantMsg: "Bad params: Param text cannot have new-line"},
		{body: `{"sent":false}`, wantKind: KindRejected, wantMsg: "sent:false without an explanation"},
		{body: `<html>oops</html>`, wantKind: KindUnknown},
	}
	for _, tt := range tests {
		res, err := decodeSendResult(json.RawMessage(tt.body))
		if tt.wantKind == 0 {
			if err != nil || res.ID != tt.wantID || res.JobID != tt.wantJob {
				t.Errorf("%s: %+v, %v", tt.body, res, err)
			}
			if tt.wantJob != "" && !res.Queued() {
				t.Errorf("%s: not Queued()", tt.body)
			}
			continue
		}
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("%s: err %v is not *Error", tt.body, err)
			continue
		}
		if e.Kind != tt.wantKind || e.Code != tt.wantCode || (tt.wantMsg != "" && e.Message != tt.wantMsg) {
			t.Errorf("%s: kind %s code %d msg %q; want %s %d %q", tt.body, e.Kind, e.Code, e.Message, tt.wantKind, tt.wantCode, tt.wantMsg)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"garbage", 0}, {"-3", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCodeString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Kind: KindRejected, Code: 132000, HTTPStatus: 422}, "132000"},
		{Error{Kind: KindRejected, HTTPStatus: 401}, "http_401"},
		{Error{Kind: KindUnknown}, "unknown_outcome"},
	} {
		if got := tt.e.CodeString(); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.e, got, tt.want)
		}
	}
}

func TestUnixTime(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{`"1654864094"`, 1654864094}, {`1654864094`, 1654864094}, {`"1654864094000"`, 1654864094}, {`null`, 0}, {`"x"`, 0},
	} {
		var u UnixTime
		if err := json.Unmarshal([]byte(tt.in), &u); err != nil {
			t.Fatal(err)
		}
		got := int64(0)
		if !u.IsZero() {
			got = u.Unix()
		}
		if got != tt.want {
			t.Errorf("%s: %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestNewClientRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{BaseURL: "ftp://x", Channel: "c", Token: "t"},
		{BaseURL: "https://user:pw@api.1msg.io", Channel: "c", Token: "t"},
		{Channel: "", Token: "t"},
		{Channel: "a/b", Token: "t"},
		{Channel: "c", Token: ""},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted a bad config", cfg)
		}
	}
}
