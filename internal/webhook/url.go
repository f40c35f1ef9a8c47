package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrNoSecret is returned by PublicURL for a base URL without the route
// when no secret is given.
var ErrNoSecret = errors.New("CANCELNOTIFY_WEBHOOK_SECRET is not set: the URL needs it as its last path segment (the daemon must use the same one)")

// PublicURL is the URL 1MSG must push to: raw as given when it already has
// the route (PathPrefix), else raw + PathPrefix + secret. raw is the public
// base URL of the daemon's webhook listener.
func PublicURL(raw, secret string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("webhook URL %q is not an http(s) URL: give the public base URL of the daemon's webhook listener, e.g. https://hooks.shop.example", raw)
	}
	if strings.Contains(u.Path, PathPrefix) {
		return u.String(), nil
	}
	if secret == "" {
		return "", ErrNoSecret
	}
	u.Path = strings.TrimRight(u.Path, "/") + PathPrefix + secret
	return u.String(), nil
}

// Redact hides the secret path segment of one of our URLs, for display.
func Redact(s string) string {
	if i := strings.Index(s, PathPrefix); i >= 0 {
		return s[:i+len(PathPrefix)] + "REDACTED"
	}
	return s
}
