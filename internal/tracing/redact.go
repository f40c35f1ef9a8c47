package tracing

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Redacted replaces what Redact removes.
const Redacted = "REDACTED"

// keptQuery are the query parameters whose values may be exported: 1MSG's
// hookInfo?messageId= is a wamid. Every other value (chatId carries a
// phone number) is replaced.
var keptQuery = map[string]bool{"messageId": true}

// secretPaths are path prefixes whose next segment is a secret: the webhook
// receiver's route (README, "Webhooks").
var secretPaths = []string{"/webhooks/1msg/"}

// urlKeys are the attributes otelhttp fills with a URL or a part of one.
var urlKeys = map[attribute.Key]bool{"url.full": true, "url.path": true, "url.query": true, "http.url": true, "http.target": true}

// freeTextKeys hold error texts, which may quote a phone number.
var freeTextKeys = map[attribute.Key]bool{"exception.message": true, "error.message": true}

// phoneLike matches a run of at least 9 digits, separators allowed: what
// is left of a phone number in an error text. Ids and timestamps in such
// texts are shorter.
var phoneLike = regexp.MustCompile(`\+?\d(?:[ \-().]?\d){8,}`)

// Redact wraps exp so that no exported span carries a secret, a query
// value other than a wamid, a webhook secret in a path, or a phone number
// in an error text. secrets are replaced wherever they appear.
func Redact(exp sdktrace.SpanExporter, secrets ...string) sdktrace.SpanExporter {
	r := &redactor{SpanExporter: exp}
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

type redactor struct {
	sdktrace.SpanExporter
	secrets []string
}

func (r *redactor) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactedSpan{ReadOnlySpan: s, r: r}
	}
	return r.SpanExporter.ExportSpans(ctx, out)
}

type redactedSpan struct {
	sdktrace.ReadOnlySpan
	r *redactor
}

func (s redactedSpan) Name() string { return s.r.secret(s.ReadOnlySpan.Name()) }

func (s redactedSpan) Attributes() []attribute.KeyValue {
	return s.r.attrs(s.ReadOnlySpan.Attributes())
}

func (s redactedSpan) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	st.Description = s.r.text(st.Description)
	return st
}

func (s redactedSpan) Events() []sdktrace.Event {
	evs := s.ReadOnlySpan.Events()
	out := make([]sdktrace.Event, len(evs))
	for i, e := range evs {
		e.Attributes = s.r.attrs(e.Attributes)
		out[i] = e
	}
	return out
}

func (s redactedSpan) Links() []sdktrace.Link {
	ls := s.ReadOnlySpan.Links()
	out := make([]sdktrace.Link, len(ls))
	for i, l := range ls {
		l.Attributes = s.r.attrs(l.Attributes)
		out[i] = l
	}
	return out
}

func (r *redactor) attrs(in []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(in))
	for i, kv := range in {
		switch {
		case kv.Value.Type() == attribute.STRINGSLICE:
			vs := kv.Value.AsStringSlice()
			for j := range vs {
				vs[j] = r.secret(vs[j])
			}
			kv = kv.Key.StringSlice(vs)
		case kv.Value.Type() != attribute.STRING:
		case urlKeys[kv.Key]:
			kv = kv.Key.String(r.secret(redactURL(kv.Key, kv.Value.AsString())))
		case freeTextKeys[kv.Key]:
			kv = kv.Key.String(r.text(kv.Value.AsString()))
		default:
			kv = kv.Key.String(r.secret(kv.Value.AsString()))
		}
		out[i] = kv
	}
	return out
}

// text redacts a free text: secrets and phone-like digit runs.
func (r *redactor) text(s string) string {
	return phoneLike.ReplaceAllString(r.secret(s), "[number]")
}

func (r *redactor) secret(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return s
}

// redactURL keeps a URL's shape: scheme, host, path (without secret
// segments) and query keys, with every query value but a wamid replaced.
func redactURL(key attribute.Key, s string) string {
	switch key {
	case "url.path":
		return redactPath(s)
	case "url.query":
		return redactQuery(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	u.User = nil
	u.Path, u.RawPath = redactPath(u.Path), ""
	u.RawQuery = redactQuery(u.RawQuery)
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

func redactPath(p string) string {
	for _, prefix := range secretPaths {
		if i := strings.Index(p, prefix); i >= 0 {
			rest := p[i+len(prefix):]
			tail := ""
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				tail = rest[j:]
			}
			p = p[:i+len(prefix)] + "{secret}" + tail
		}
	}
	return p
}

func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return Redacted
	}
	for k, vs := range vals {
		if keptQuery[k] {
			continue
		}
		for i := range vs {
			vs[i] = Redacted
		}
	}
	return vals.Encode()
}
