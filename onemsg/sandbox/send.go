package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Meta's limits and texts for template parameters (docs/onemsg.md, "Meta's
// rules that 1MSG passes on").
const (
	maxHydratedBody = 1024
	paramTextRule   = "Param text cannot have new-line/tab characters or more than 4 consecutive spaces"
	paramsMismatch  = "Number of parameters does not match the expected number of params"
)

var (
	phonePattern  = regexp.MustCompile(`^[0-9]{6,15}$`)
	chatIDPattern = regexp.MustCompile(`^([0-9]{6,15})@c\.us$`)
)

// sendable is a validated sendTemplate request.
type sendable struct {
	phone  string
	tpl    Template
	params []string
	body   string
}

// sendAnswer is a sendTemplate body. Its fields are in the order 1MSG's
// Node.js answers have them: sent, id|jobId, error, message, description.
type sendAnswer struct {
	Sent        bool   `json:"sent"`
	ID          string `json:"id,omitempty"`
	JobID       string `json:"jobId,omitempty"`
	Error       any    `json:"error,omitempty"`
	Message     string `json:"message,omitempty"`
	Description string `json:"description,omitempty"`
}

// graphError is the Graph API error object Meta returns and 1MSG relays.
type graphError struct {
	Message   string `json:"message"`
	Type      string `json:"type"`
	Code      int    `json:"code"`
	ErrorData struct {
		MessagingProduct string `json:"messaging_product"`
		Details          string `json:"details"`
	} `json:"error_data"`
	FBTraceID string `json:"fbtrace_id"`
}

// rejection is a sendTemplate answer that refuses the message.
type rejection struct {
	status  int
	outcome Outcome
	code    int    // Meta code, 0 when none
	detail  string // what was wrong, for Request.Detail
	body    any
}

func badRequest(format string, args ...any) *rejection {
	msg := fmt.Sprintf(format, args...)
	return &rejection{status: http.StatusBadRequest, outcome: OutcomeRejected, detail: msg,
		body: map[string]any{"error": msg}}
}

// unprocessable is the use case's HTTP 422 (missing namespace, wrong number
// of body variables). 1MSG's published specs never show a 422, but 1MSG's
// order-cancellation use case states it for exactly these two mistakes
// (docs/onemsg.md, "POST /sendTemplate").
func unprocessable(code int, errText, message string) *rejection {
	return &rejection{status: http.StatusUnprocessableEntity, outcome: OutcomeRejected, code: code,
		detail: message, body: map[string]any{"sent": false, "error": errText, "message": message}}
}

// metaRejectLocked builds the sent:false answer 1MSG relays from Meta: the
// Graph API error object under "error", and a readable "message" that also
// says what was wrong.
func (s *Server) metaRejectLocked(status int, outcome Outcome, code int, title, details string) *rejection {
	head := fmt.Sprintf("(#%d) %s", code, title)
	ge := graphError{Message: head, Type: "OAuthException", Code: code, FBTraceID: "A" + s.randHexLocked(22)}
	ge.ErrorData.MessagingProduct = "whatsapp"
	ge.ErrorData.Details = details
	return &rejection{status: status, outcome: outcome, code: code, detail: details,
		body: sendAnswer{Error: ge, Message: head + ": " + details}}
}

func (s *Server) metaReject(code int, title, details string) *rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metaRejectLocked(http.StatusOK, OutcomeRejected, code, title, details)
}

// decision is what the fault dice said for one request.
type decision struct {
	hang, status429, status5xx, drop, queued bool
	slowBy                                   time.Duration
}

func (s *Server) decide(f Faults) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d decision
	d.hang = s.chanceLocked(f.Hang)
	d.status429 = s.chanceLocked(f.Status429)
	d.status5xx = s.chanceLocked(f.Status5xx)
	if s.chanceLocked(f.Slow) {
		d.slowBy = f.SlowBy
	}
	d.drop = s.chanceLocked(f.AcceptThenDrop)
	d.queued = s.chanceLocked(f.Queued)
	return d
}

// answer writes a sendTemplate answer after the Slow delay, or writes
// nothing when the client gives up first, and records what happened.
type answer struct {
	w      http.ResponseWriter
	ctx    context.Context
	s      *Server
	rec    *Request
	slowBy time.Duration
}

func (a answer) send(status int, outcome Outcome, body any) {
	a.rec.Outcome = outcome
	if !a.s.sleep(a.ctx, a.slowBy) {
		return
	}
	a.rec.HTTPStatus = status
	a.rec.Answered = true
	writeJSON(a.w, status, body)
}

func (a answer) reject(r *rejection) {
	a.rec.Code, a.rec.Detail = r.code, r.detail
	a.send(r.status, r.outcome, r.body)
}

// handleSendTemplate is POST /{channel}/sendTemplate. Its order of checks:
// Down, Latency, token, injected faults, request validation (1MSG's, then
// Meta's), Meta's limits, then queue or accept.
func (s *Server) handleSendTemplate(w http.ResponseWriter, r *http.Request) {
	rec := &Request{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), At: time.Now(),
	}
	raw, readErr := readBody(w, r)
	rec.Body = raw
	s.mu.Lock()
	s.reqSeq++
	rec.Seq = s.reqSeq
	s.stats.SendRequests++
	f, gen := s.faults, s.gen
	s.mu.Unlock()
	// The record is made before a dropped connection is closed, so that a
	// client that sees the drop already finds it in the instruments.
	recorded := false
	record := func() {
		if !recorded {
			recorded = true
			s.finish(rec, gen)
		}
	}
	defer record()

	if f.Down {
		rec.Outcome = OutcomeDown
		record()
		dropConnection(w)
		return
	}
	ctx := r.Context()
	if !s.sleep(ctx, f.Latency) {
		rec.Outcome = OutcomeClientGone
		return
	}

	var body map[string]json.RawMessage
	var ignored string
	parseErr := readErr
	if parseErr == nil {
		body, ignored, parseErr = parseBody(r.Header.Get("Content-Type"), raw)
	}
	if t := requestToken(r, body); !s.tokenOK(t) {
		rec.Outcome, rec.HTTPStatus, rec.Answered = OutcomeUnauthorized, http.StatusUnauthorized, true
		writeJSON(w, http.StatusUnauthorized, unauthorizedBody(t, s.cfg.Channel))
		return
	}

	d := s.decide(f)
	ans := answer{w: w, ctx: ctx, s: s, rec: rec, slowBy: d.slowBy}
	if rej := s.notConnected(); rej != nil {
		ans.reject(rej)
		return
	}
	switch {
	case d.hang:
		rec.Outcome = OutcomeHang
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		return
	case d.status429:
		if f.RetryAfter > 0 {
			secs := int64((f.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		ans.send(http.StatusTooManyRequests, OutcomeFault429, map[string]string{"error": "Rate limit exceeded"})
		return
	case d.status5xx:
		ans.send(http.StatusInternalServerError, OutcomeFault500, map[string]string{"error": "Internal server error"})
		return
	}
	if parseErr != nil {
		ans.reject(badRequest("%v", parseErr))
		return
	}
	snd, rej := s.validateSend(body)
	if rej != nil {
		if ignored != "" {
			rej.detail = ignored + "; " + rej.detail
		}
		ans.reject(rej)
		return
	}

	s.mu.Lock()
	now := time.Now()
	switch last, seen := s.lastByPhone[snd.phone]; {
	case s.limiter != nil && !s.limiter.AllowN(now, 1):
		// HTTP 429 as Meta's current table has it (docs/onemsg.md, "Throughput").
		rej = s.metaRejectLocked(http.StatusTooManyRequests, OutcomeThrottled, 130429, "Rate limit hit",
			fmt.Sprintf("Cloud API message throughput has been reached: the channel allows %g messages per second", f.RatePerSecond))
	case f.PairInterval > 0 && seen && now.Sub(last) < f.PairInterval:
		rej = s.metaRejectLocked(http.StatusOK, OutcomeThrottled, 131056, "(Business Account, Consumer Account) pair rate limit hit",
			fmt.Sprintf("Message failed to send because there were too many messages sent from this phone number to %s in a short period of time: wait %v between messages to one recipient (last one %v ago)",
				snd.phone, f.PairInterval, now.Sub(last).Round(time.Millisecond)))
	}
	if rej != nil || gen != s.gen {
		s.mu.Unlock()
		if rej == nil {
			// A test reset the sandbox while this request was in flight; it
			// belongs to the forgotten past, so accepting it would leave a
			// message without its request. Not a 1MSG answer.
			msg := "sandbox was reset while the request was processed; send again"
			rej = &rejection{status: http.StatusServiceUnavailable, outcome: OutcomeRejected, detail: msg,
				body: map[string]string{"error": msg}}
		}
		ans.reject(rej)
		return
	}
	s.lastByPhone[snd.phone] = now
	if d.queued {
		jobID := "job_" + s.randHexLocked(24)
		wait := f.QueuedFor
		if wait <= 0 {
			wait = time.Second
		}
		requested := rec.At
		s.sched.at(now.Add(wait), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.gen == gen {
				s.acceptLocked(snd, requested, time.Now(), jobID, false)
			}
		})
		s.mu.Unlock()
		rec.JobID = jobID
		ans.send(http.StatusOK, OutcomeQueued, sendAnswer{JobID: jobID, Message: "queued"})
		return
	}
	m := s.acceptLocked(snd, rec.At, now, "", d.drop)
	s.mu.Unlock()
	rec.MessageID = m.ID
	if d.drop {
		rec.Outcome = OutcomeDropped
		record()
		dropConnection(w)
		return
	}
	ans.send(http.StatusOK, OutcomeAccepted, sendAnswer{
		Sent:        true,
		ID:          m.ID,
		Message:     "Sent to " + snd.phone + "@c.us",
		Description: "Message has been sent to the provider",
	})
}

// finish records a sendTemplate request once its outcome is known.
func (s *Server) finish(rec *Request, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return
	}
	switch rec.Outcome {
	case OutcomeRejected:
		s.stats.Rejected++
	case OutcomeThrottled:
		s.stats.Throttled++
	case OutcomeUnauthorized:
		s.stats.Unauthorized++
	case OutcomeQueued:
		s.stats.Queued++
	case OutcomeDropped:
		s.stats.Dropped++
	case OutcomeFault429, OutcomeFault500, OutcomeHang, OutcomeDown:
		s.stats.Faulted++
	}
	s.requests = append(s.requests, *rec)
	s.log.Debug("sandbox: sendTemplate", "seq", rec.Seq, "outcome", rec.Outcome,
		"http_status", rec.HTTPStatus, "code", rec.Code, "message_id", rec.MessageID, "detail", rec.Detail)
}

// validateSend checks a sendTemplate body as 1MSG and then Meta would, and
// returns the first problem.
func (s *Server) validateSend(body map[string]json.RawMessage) (sendable, *rejection) {
	var snd sendable

	// 1MSG's own checks.
	name, rej := stringField(body, "template")
	if rej != nil {
		return snd, rej
	}
	lang, rej := languageCode(body)
	if rej != nil {
		return snd, rej
	}
	if name == "" || lang == "" {
		return snd, &rejection{status: http.StatusOK, outcome: OutcomeRejected,
			detail: "template is not defined: template and language.code are required",
			body:   sendAnswer{Message: "template is not defined"}}
	}
	ns, rej := stringField(body, "namespace")
	if rej != nil {
		return snd, rej
	}
	if ns == "" {
		return snd, unprocessable(0, "Template namespace is required",
			`namespace is missing: pass the template's "namespace" as listed by GET /templates`)
	}
	phone, rej := recipient(body)
	if rej != nil {
		return snd, rej
	}
	snd.phone = phone
	comps, rej := components(body)
	if rej != nil {
		return snd, rej
	}

	// Meta's checks, in the order Meta reports them.
	tpl, rej := s.findTemplate(name, ns, lang)
	if rej != nil {
		return snd, rej
	}
	snd.tpl = tpl
	want := tpl.bodyParams()
	var bodies []component
	var others []component
	for _, c := range comps {
		if c.kind == "body" {
			bodies = append(bodies, c)
		} else {
			others = append(others, c)
		}
	}
	got := 0
	for _, c := range bodies {
		got += len(c.params)
	}
	if len(bodies) > 1 || got != want {
		msg := fmt.Sprintf("body: template %q (%s) has %d variables, the request has %d body parameters", tpl.Name, tpl.Language, want, got)
		if len(bodies) > 1 {
			msg = fmt.Sprintf("params has %d body components; send one with all %d parameters", len(bodies), want)
		}
		return snd, unprocessable(132000, "(#132000) "+paramsMismatch, "(#132000) "+paramsMismatch+": "+msg)
	}
	if rej := s.checkOtherComponents(tpl, others); rej != nil {
		return snd, rej
	}
	if len(bodies) == 1 {
		for i, p := range bodies[0].params {
			where := fmt.Sprintf("body parameter {{%d}}", i+1)
			if p.Type != "text" {
				return snd, s.metaReject(132012, "Parameter format does not match format in the created template",
					fmt.Sprintf("%s has type %q; the template's body variables take type \"text\"", where, p.Type))
			}
			if rej := s.checkParamText(where, p.Text); rej != nil {
				return snd, rej
			}
			snd.params = append(snd.params, *p.Text)
		}
	}
	snd.body = tpl.hydrate(snd.params)
	if n := utf8.RuneCountInString(snd.body); n > maxHydratedBody {
		return snd, s.metaReject(132005, "Template Hydrated Text Too Long",
			fmt.Sprintf("the body with its parameters is %d characters; Meta allows %d", n, maxHydratedBody))
	}
	return snd, nil
}

// checkParamText applies Meta's rules for a text parameter.
func (s *Server) checkParamText(where string, text *string) *rejection {
	const title = "There was an issue with the parameters in your template."
	switch {
	case text == nil:
		return s.metaReject(132018, title, where+`: Param text cannot be empty: "text" is missing`)
	case *text == "":
		return s.metaReject(132018, title, where+": Param text cannot be empty")
	case strings.ContainsAny(*text, "\n\t"), strings.Contains(*text, "     "):
		return s.metaReject(132018, title, where+": "+paramTextRule)
	}
	return nil
}

// checkOtherComponents checks header, button and carousel components: the
// templates the sandbox knows have no header variables and no carousel, and
// only a URL button whose URL has a variable takes a parameter.
func (s *Server) checkOtherComponents(tpl Template, comps []component) *rejection {
	mismatch := func(details string) *rejection {
		return s.metaReject(132000, paramsMismatch, details)
	}
	given := map[int]bool{}
	for _, c := range comps {
		switch c.kind {
		case "header":
			return mismatch(fmt.Sprintf("header: template %q has no header variables, the request has %d header parameters", tpl.Name, len(c.params)))
		case "carousel":
			return mismatch(fmt.Sprintf("carousel: template %q has no carousel", tpl.Name))
		case "button":
			if c.index < 0 || c.index >= len(tpl.Buttons) {
				return mismatch(fmt.Sprintf("button: index %d does not exist; template %q has %d buttons", c.index, tpl.Name, len(tpl.Buttons)))
			}
			b := tpl.Buttons[c.index]
			if !b.dynamic() {
				return mismatch(fmt.Sprintf("button %d (%s %q) is static: it takes no parameters, so params must not include a button component for it", c.index, b.Type, b.Text))
			}
			if !strings.EqualFold(c.subType, "url") {
				return mismatch(fmt.Sprintf("button %d is a URL button; its component needs \"sub_type\":\"url\", got %q", c.index, c.subType))
			}
			if given[c.index] || len(c.params) != 1 {
				return mismatch(fmt.Sprintf("button %d (URL %q) takes exactly one parameter", c.index, b.URL))
			}
			given[c.index] = true
			p := c.params[0]
			if p.Type != "text" {
				return s.metaReject(132012, "Parameter format does not match format in the created template",
					fmt.Sprintf("button %d parameter has type %q; a URL button takes type \"text\"", c.index, p.Type))
			}
			if rej := s.checkParamText(fmt.Sprintf("button %d parameter", c.index), p.Text); rej != nil {
				return rej
			}
		}
	}
	for i, b := range tpl.Buttons {
		if b.dynamic() && !given[i] {
			return mismatch(fmt.Sprintf("button %d (URL %q) has a variable and needs a button parameter with \"index\":%d", i, b.URL, i))
		}
	}
	return nil
}

// findTemplate finds an approved template by name, namespace and language.
func (s *Server) findTemplate(name, ns, lang string) (Template, *rejection) {
	const notExist = "Template name does not exist in the translation"
	var named []Template
	for _, t := range s.templates() {
		if t.Name == name {
			named = append(named, t)
		}
	}
	if len(named) == 0 {
		return Template{}, s.metaReject(132001, notExist,
			fmt.Sprintf("template name (%s) does not exist in %s: the channel has no template with that name", name, lang))
	}
	for _, t := range named {
		if t.Language != lang {
			continue
		}
		if t.Namespace != ns {
			return Template{}, s.metaReject(132001, notExist,
				fmt.Sprintf("template name (%s) does not exist in %s under namespace %q; its namespace is %q", name, lang, ns, t.Namespace))
		}
		switch strings.ToLower(t.Status) {
		case "approved":
			return t, nil
		case "paused":
			return Template{}, s.metaReject(132015, "Template is Paused",
				fmt.Sprintf("template %s (%s) is paused because of low quality", name, lang))
		case "disabled":
			return Template{}, s.metaReject(132016, "Template is Disabled",
				fmt.Sprintf("template %s (%s) is disabled", name, lang))
		default:
			return Template{}, s.metaReject(132001, notExist,
				fmt.Sprintf("template name (%s) does not exist in %s: its status is %q, not approved", name, lang, t.Status))
		}
	}
	langs := make([]string, len(named))
	for i, t := range named {
		langs[i] = t.Language
	}
	return Template{}, s.metaReject(132001, notExist,
		fmt.Sprintf("template name (%s) does not exist in %s; it exists in %s", name, lang, strings.Join(langs, ", ")))
}

// stringField reads an optional string field; absent or null is "".
func stringField(body map[string]json.RawMessage, key string) (string, *rejection) {
	raw, ok := body[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest("%q must be a string, got %s", key, kindOf(raw))
	}
	return strings.TrimSpace(v), nil
}

// languageCode reads language.code; the object form is the only one 1MSG
// documents, and "deterministic" the only policy.
func languageCode(body map[string]json.RawMessage) (string, *rejection) {
	raw, ok := body["language"]
	if !ok || isNull(raw) {
		return "", nil
	}
	var l struct {
		Policy *string `json:"policy"`
		Code   *string `json:"code"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return "", badRequest(`"language" must be an object like {"policy":"deterministic","code":"en"}, got %s`, kindOf(raw))
	}
	if l.Policy != nil && *l.Policy != "deterministic" {
		return "", badRequest(`"language.policy" must be "deterministic", got %q`, *l.Policy)
	}
	if l.Code == nil {
		return "", nil
	}
	return strings.TrimSpace(*l.Code), nil
}

// recipient returns the phone from "phone" (string or number) or "chatId".
func recipient(body map[string]json.RawMessage) (string, *rejection) {
	rawPhone, hasPhone := body["phone"]
	rawChat, hasChat := body["chatId"]
	hasPhone = hasPhone && !isNull(rawPhone)
	hasChat = hasChat && !isNull(rawChat)
	switch {
	case hasPhone && hasChat:
		return "", badRequest(`pass either "phone" or "chatId", not both`)
	case hasPhone:
		var phone string
		if err := json.Unmarshal(rawPhone, &phone); err != nil {
			var n json.Number
			dec := json.NewDecoder(bytes.NewReader(rawPhone))
			dec.UseNumber()
			if dec.Decode(&n) != nil {
				return "", badRequest(`"phone" must be a string of digits, got %s`, kindOf(rawPhone))
			}
			phone = n.String()
		}
		if !phonePattern.MatchString(phone) {
			return "", badRequest(`invalid "phone" %q: use 6 to 15 digits with the country code, without "+", spaces or dashes`, phone)
		}
		return phone, nil
	case hasChat:
		var chat string
		if err := json.Unmarshal(rawChat, &chat); err != nil {
			return "", badRequest(`"chatId" must be a string, got %s`, kindOf(rawChat))
		}
		m := chatIDPattern.FindStringSubmatch(chat)
		if m == nil {
			return "", badRequest(`invalid "chatId" %q: use <6 to 15 digits>@c.us (the sandbox has no groups, BSUIDs or usernames)`, chat)
		}
		return m[1], nil
	}
	return "", badRequest(`the recipient is missing: pass "phone" (digits with the country code) or "chatId"`)
}

// component is one decoded params item.
type component struct {
	kind    string // lowercased type
	subType string
	index   int
	params  []parameter
}

type parameter struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// components decodes "params", which must be Cloud API component objects.
func components(body map[string]json.RawMessage) ([]component, *rejection) {
	raw, ok := body["params"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest(`"params" must be an array of component objects like {"type":"body","parameters":[…]}, got %s`, kindOf(raw))
	}
	out := make([]component, 0, len(items))
	for i, item := range items {
		var c struct {
			Type       string            `json:"type"`
			SubType    string            `json:"sub_type"`
			Index      json.RawMessage   `json:"index"`
			Parameters []json.RawMessage `json:"parameters"`
		}
		if err := json.Unmarshal(item, &c); err != nil {
			return nil, badRequest(`params[%d] must be a component object like {"type":"body","parameters":[…]}, got %s`, i, kindOf(item))
		}
		comp := component{kind: strings.ToLower(c.Type), subType: c.SubType}
		switch comp.kind {
		case "body", "header", "button", "carousel":
		case "":
			return nil, badRequest(`params[%d] has no "type"; use body, header, button or carousel`, i)
		default:
			return nil, badRequest(`params[%d].type %q is not one of body, header, button, carousel`, i, c.Type)
		}
		if comp.kind == "button" {
			idx, err := indexOf(c.Index)
			if err != nil {
				return nil, badRequest(`params[%d].index: %v`, i, err)
			}
			comp.index = idx
		}
		for j, rp := range c.Parameters {
			var p parameter
			if err := json.Unmarshal(rp, &p); err != nil {
				return nil, badRequest(`params[%d].parameters[%d] must be an object like {"type":"text","text":"…"}, got %s`, i, j, kindOf(rp))
			}
			p.Type = strings.ToLower(p.Type)
			comp.params = append(comp.params, p)
		}
		out = append(out, comp)
	}
	return out, nil
}

// indexOf reads a button index given as a number or a numeric string (Meta
// documents it as a string, 1MSG's examples use numbers).
func indexOf(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || isNull(raw) {
		return 0, fmt.Errorf(`a button component needs "index", the button's position in the template`)
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return v, nil
		}
	}
	return 0, fmt.Errorf("want a whole number, got %s", raw)
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// kindOf names a JSON value's kind for error messages.
func kindOf(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
