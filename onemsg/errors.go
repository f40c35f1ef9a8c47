package onemsg

import (
	"fmt"
	"time"
)

// ErrorKind says what a failed call means for the message and what a caller
// may do next.
type ErrorKind int

const (
	// KindRejected: 1MSG or Meta refused the request for good (bad token,
	// unknown template, wrong parameters, undeliverable recipient). Sending
	// the same request again will fail again.
	KindRejected ErrorKind = iota + 1
	// KindThrottled: rate limited (HTTP 429, Meta 130429 or 131056). Nothing
	// was sent; wait RetryAfter (or back off) and send again.
	KindThrottled
	// KindNotSent: 1MSG never received the request (connection refused, DNS,
	// TLS) or said it did not take it. Safe to send again.
	KindNotSent
	// KindUnknown: the request reached 1MSG but no usable answer came back
	// (timeout, connection dropped, 5xx, garbled 2xx). The message may have
	// been accepted: reconcile with the message history before any resend.
	KindUnknown
)

func (k ErrorKind) String() string {
	switch k {
	case KindRejected:
		return "rejected"
	case KindThrottled:
		return "throttled"
	case KindNotSent:
		return "not_sent"
	case KindUnknown:
		return "unknown_outcome"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Error is a failed 1MSG call.
type Error struct {
	Op         string        // API method, e.g. "sendTemplate"
	Kind       ErrorKind     // what the failure means
	HTTPStatus int           // 0 when no HTTP answer arrived
	Code       int           // Meta error code when 1MSG passed one on, else 0
	Message    string        // 1MSG's or Meta's own text, kept as sent
	RetryAfter time.Duration // for KindThrottled, when 1MSG said how long
	Err        error         // underlying transport error, if any
}

func (e *Error) Error() string {
	s := "1MSG " + e.Op + ": " + e.Kind.String()
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// CodeString is the value cancelnotify stores in notification.error_code:
// the Meta code when there is one, else "http_<status>", else the kind.
func (e *Error) CodeString() string {
	switch {
	case e.Code != 0:
		return fmt.Sprint(e.Code)
	case e.HTTPStatus != 0:
		return fmt.Sprintf("http_%d", e.HTTPStatus)
	}
	return e.Kind.String()
}

// Meta error codes that mean "slow down", not "never".
const (
	CodeThroughputLimit = 130429 // Cloud API throughput reached
	CodePairRateLimit   = 131056 // too many messages to one recipient
)

// kindOfRefusal classifies a `sent:false` answer carrying a Meta code.
func kindOfRefusal(code int) ErrorKind {
	if r, ok := refusalByCode(code); ok {
		return r.kind
	}
	return KindRejected
}

// CodeForText returns the Meta error code a failure text names, or 0. Acks
// carry only the text; finance queries want the code.
func CodeForText(text string) int {
	if c := metaCodeIn(text); c != 0 {
		return c
	}
	if r, ok := refusalByText(text); ok {
		return r.code
	}
	return 0
}
