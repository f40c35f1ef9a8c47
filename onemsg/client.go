// Package onemsg is a client for the parts of the 1MSG WhatsApp Business API
// (https://api.1msg.io) that cancelnotify uses: sending an approved template,
// reading delivery statuses and message history, and configuring webhooks.
//
// Every call has a timeout and authenticates with the Authorization header
// only, so the token never appears in a URL or an access log. Failures come
// back as *Error, whose Kind tells a caller what it may safely do next; in
// particular KindUnknown means 1MSG may have accepted the message and a
// resend could reach the customer twice.
package onemsg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/textcut"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
)

// DefaultBaseURL is 1MSG's production API.
const DefaultBaseURL = "https://api.1msg.io"

// DefaultTimeout bounds each API call unless Config.Timeout says otherwise.
const DefaultTimeout = 15 * time.Second

// maxResponseBytes bounds what the client reads of any answer.
const maxResponseBytes = 4 << 20

// Config configures a Client.
type Config struct {
	BaseURL    string        // default DefaultBaseURL
	Channel    string        // the channel (instance) id, first path segment
	Token      string        // secret; sent only as "Authorization: Bearer"
	Timeout    time.Duration // per call; default DefaultTimeout
	HTTPClient *http.Client  // default: a client with sane transport limits
	UserAgent  string        // default "cancelnotify"
	Observer   Observer      // optional: told of every call (metrics)
	// TracerProvider, when set, traces every call with otelhttp: one
	// client span "1msg <method>" (README, "Traces"). Default nil: none.
	TracerProvider trace.TracerProvider
}

// Observer learns the outcome class of every call: "ok" or an ErrorKind.
type Observer interface {
	Called(endpoint, outcome string, d time.Duration)
}

// Client calls one 1MSG channel. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	channel string
	token   string
	timeout time.Duration
	http    *http.Client
	ua      string
	obs     Observer
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("1MSG API URL %q is not an http(s) URL: set it like %s", redactURL(cfg.BaseURL), DefaultBaseURL)
	}
	if base.User != nil {
		return nil, errors.New("1MSG API URL must not carry credentials: put the token in ONEMSG_TOKEN")
	}
	if cfg.Channel == "" || strings.ContainsAny(cfg.Channel, "/?#") {
		return nil, fmt.Errorf("1MSG channel id %q is not usable: copy it from the 1MSG dashboard (e.g. ODI371267300)", cfg.Channel)
	}
	if cfg.Token == "" {
		return nil, errors.New("1MSG token is empty: set ONEMSG_TOKEN or ONEMSG_TOKEN_FILE")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
			ForceAttemptHTTP2:     true,
		}}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cancelnotify"
	}
	if cfg.TracerProvider != nil {
		traced := *cfg.HTTPClient // the caller's client stays as it was
		traced.Transport = tracing.Transport(cfg.TracerProvider, traced.Transport, "1msg")
		cfg.HTTPClient = &traced
	}
	return &Client{base: base, channel: cfg.Channel, token: cfg.Token, timeout: cfg.Timeout, http: cfg.HTTPClient, ua: cfg.UserAgent, obs: cfg.Observer}, nil
}

// Channel returns the channel id the client calls.
func (c *Client) Channel() string { return c.channel }

// finish ends every public call (deferred): it removes the token from the
// error — 1MSG's 401 body quotes the token it was given — and reports the
// call to the observer.
func (c *Client) finish(op string, start time.Time, err *error) {
	var e *Error
	if errors.As(*err, &e) {
		e.Message = strings.ReplaceAll(e.Message, c.token, "REDACTED")
		if e.Err != nil && strings.Contains(e.Err.Error(), c.token) {
			e.Err = errors.New(strings.ReplaceAll(e.Err.Error(), c.token, "REDACTED"))
		}
	}
	if c.obs == nil {
		return
	}
	outcome := "ok"
	if e != nil {
		outcome = e.Kind.String()
	} else if *err != nil {
		outcome = KindUnknown.String()
	}
	c.obs.Called(op, outcome, time.Since(start))
}

// endpoint builds {base}/{channel}/{method}?query.
func (c *Client) endpoint(method string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + url.PathEscape(c.channel) + "/" + method
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do performs one call and decodes a 2xx JSON answer into out. It returns
// the HTTP status and the raw body for callers that classify further.
func (c *Client) do(ctx context.Context, op, httpMethod, method string, q url.Values, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &Error{Op: op, Kind: KindRejected, Message: "encode request: " + err.Error()}
		}
		body = bytes.NewReader(b)
	}
	// wrote records whether a request reached the wire completely: before
	// that, a failure proves 1MSG never saw it; after, the outcome is unknown.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, httpMethod, c.endpoint(method, q), body)
	if err != nil {
		return &Error{Op: op, Kind: KindRejected, Message: "build request: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		kind := KindNotSent
		if wrote.Load() {
			kind = KindUnknown
		}
		msg := transportText(err)
		if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "dial" {
			// The URL is what the operator can fix; say which setting holds it.
			msg = fmt.Sprintf("cannot connect to %s (ONEMSG_API_URL): %s", redactURL(c.base.String()), msg)
		}
		return &Error{Op: op, Kind: kind, Message: msg, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &Error{Op: op, Kind: KindUnknown, HTTPStatus: resp.StatusCode, Message: "read response: " + transportText(err), Err: scrubURLError(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return httpError(op, resp, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{Op: op, Kind: KindUnknown, HTTPStatus: resp.StatusCode, Message: fmt.Sprintf("answer is not the JSON 1MSG documents (%v): %s", err, snippet(raw))}
	}
	return nil
}

// httpError classifies a non-2xx answer.
func httpError(op string, resp *http.Response, raw []byte) *Error {
	e := &Error{Op: op, HTTPStatus: resp.StatusCode}
	e.Message, e.Code = errorText(raw)
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		// 1MSG's text talks of a token "as a GET parameter"; this client
		// sends it as a Bearer header, so say what to check instead.
		e.Kind = KindRejected
		e.Message = "the channel refused the token: check ONEMSG_TOKEN / ONEMSG_TOKEN_FILE and ONEMSG_CHANNEL_ID (1MSG said: " + e.Message + ")"
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind = KindThrottled
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		// The request arrived; whether 1MSG acted on it before failing is not
		// something a 5xx promises either way.
		e.Kind = KindUnknown
	default:
		e.Kind = KindRejected
	}
	return e
}

// errorText pulls 1MSG's explanation and any Meta error code out of a body:
// {"error":"…"}, {"error":{"code":…,"message":…}}, {"message":"…"},
// {"response":{"error":"…"}}, or plain text.
func errorText(raw []byte) (string, int) {
	var b struct {
		Error    json.RawMessage `json:"error"`
		Message  string          `json:"message"`
		Response *struct {
			Error json.RawMessage `json:"error"`
		} `json:"response"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return snippet(raw), 0
	}
	if len(b.Error) == 0 && b.Response != nil {
		b.Error = b.Response.Error
	}
	msg, code := decodeErrorField(b.Error)
	if msg == "" {
		msg = b.Message
	} else if b.Message != "" && !strings.Contains(msg, b.Message) {
		msg = msg + ": " + b.Message
	}
	if code == 0 {
		code = metaCodeIn(msg)
	}
	return msg, code
}

// decodeErrorField reads "error" as a string or as a Meta-style object.
func decodeErrorField(raw json.RawMessage) (string, int) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, metaCodeIn(s)
	}
	var o struct {
		Code      json.Number `json:"code"`
		ErrorCode json.Number `json:"error_code"`
		Title     string      `json:"title"`
		Message   string      `json:"message"`
		UserTitle string      `json:"error_user_title"`
		UserMsg   string      `json:"error_user_msg"`
		ErrorData *struct {
			Details string `json:"details"`
		} `json:"error_data"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return snippet(raw), 0
	}
	code, _ := strconv.Atoi(o.Code.String())
	if code == 0 {
		code, _ = strconv.Atoi(o.ErrorCode.String())
	}
	var parts []string
	for _, p := range []string{o.UserTitle, o.Title, o.Message, o.UserMsg} {
		if p != "" && !containsAny(parts, p) {
			parts = append(parts, p)
		}
	}
	if o.ErrorData != nil && o.ErrorData.Details != "" && !containsAny(parts, o.ErrorData.Details) {
		parts = append(parts, o.ErrorData.Details)
	}
	msg := strings.Join(parts, ": ")
	if code == 0 {
		code = metaCodeIn(msg)
	}
	return msg, code
}

func containsAny(parts []string, s string) bool {
	for _, p := range parts {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// metaCodeIn finds a Meta code written as "(#132000)" in a text.
func metaCodeIn(s string) int {
	i := strings.Index(s, "(#")
	if i < 0 {
		return 0
	}
	j := strings.IndexByte(s[i:], ')')
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(s[i+2 : i+j])
	if err != nil {
		return 0
	}
	return n
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// snippet is the start of an answer body for an error text.
func snippet(b []byte) string {
	return textcut.Truncate(strings.TrimSpace(string(b)), 300)
}

// transportText describes a transport failure without the request URL.
func transportText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer before the timeout"
	}
	return err.Error()
}

// scrubURLError drops the URL from a *url.Error, keeping the cause: the URL
// holds nothing secret today, but errors end up in logs and tables.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	q := u.Query()
	if q.Has("token") {
		q.Set("token", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// BaseURL returns the API base URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }
