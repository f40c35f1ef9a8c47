package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cancelnotify/cancelnotify/internal/webhook"
)

func TestPublicURL(t *testing.T) {
	const secret = "s3cret-s3cret-s3cret"
	tests := []struct {
		raw, secret string
		want        string
		wantErr     string
	}{
		{"https://hooks.shop.example", secret, "https://hooks.shop.example/webhooks/1msg/" + secret, ""},
		{"https://hooks.shop.example/base/", secret, "https://hooks.shop.example/base/webhooks/1msg/" + secret, ""},
		{"http://127.0.0.1:8080", secret, "http://127.0.0.1:8080/webhooks/1msg/" + secret, ""},
		{"https://h.example/webhooks/1msg/given", "", "https://h.example/webhooks/1msg/given", ""},
		{"https://hooks.shop.example", "", "", "CANCELNOTIFY_WEBHOOK_SECRET"},
		{"hooks.shop.example", secret, "", "not an http(s) URL"},
		{"ftp://h.example", secret, "", "not an http(s) URL"},
	}
	for _, tt := range tests {
		got, err := webhook.PublicURL(tt.raw, tt.secret)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PublicURL(%q) = %q, %v; want an error containing %q", tt.raw, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("PublicURL(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
	if _, err := webhook.PublicURL("https://h.example", ""); !errors.Is(err, webhook.ErrNoSecret) {
		t.Errorf("without a secret: %v, want ErrNoSecret", err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"https://h.example/webhooks/1msg/s3cret": "https://h.example/webhooks/1msg/REDACTED",
		"https://crm.example/hook":               "https://crm.example/hook",
	}
	for in, want := range tests {
		if got := webhook.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
