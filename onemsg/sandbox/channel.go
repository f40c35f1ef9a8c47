package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxWebhooks is 1MSG's limit of webhook URLs per channel.
const maxWebhooks = 5

// handleHookInfo is GET /hookInfo?messageId=<wamid>: one entry per status
// report so far, in arrival order; an unknown id has no entries.
func (s *Server) handleHookInfo(w http.ResponseWriter, r *http.Request, _ map[string]json.RawMessage) {
	id := r.URL.Query().Get("messageId")
	s.mu.Lock()
	s.stats.HookInfoCalls++
	hooks := []statusEntry{}
	if m, ok := s.byID[id]; ok {
		for _, ch := range m.Statuses {
			e := m.entry(ch)
			e.Type = "message"
			hooks = append(hooks, e)
		}
	}
	s.mu.Unlock()
	if id == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "messageId is required: pass the id returned by sendTemplate as ?messageId="})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"hooks": hooks})
}

// historyMessage is a /messages item, with the keys of 1MSG's message objects
// (docs/onemsg.md, "GET /messages"). Template sends have type "template":
// 1MSG's sources list no type for them, and "chat" would claim a free-form
// text.
type historyMessage struct {
	ID            string  `json:"id"`
	Body          string  `json:"body"`
	Type          string  `json:"type"`
	FromMe        bool    `json:"fromMe"`
	Self          int     `json:"self"`
	IsForwarded   bool    `json:"isForwarded"`
	Author        string  `json:"author"`
	Time          int64   `json:"time"`
	ChatID        string  `json:"chatId"`
	MessageNumber int64   `json:"messageNumber"`
	SenderName    string  `json:"senderName"`
	Caption       *string `json:"caption"`
	QuotedMsgID   *string `json:"quotedMsgId"`
}

// handleMessages is GET /messages, the channel's history of outgoing
// messages, oldest first. Filters: chatId (with or without @c.us), msgId,
// min_time and max_time (unix seconds, inclusive), lastMessageNumber (only
// newer messages); limit (default 100) keeps the first ones, or the newest
// ones with last=1.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request, _ map[string]json.RawMessage) {
	q := r.URL.Query()
	s.mu.Lock()
	s.stats.MessagesCalls++
	s.mu.Unlock()
	if s.cfg.HistoryDisabled {
		writeJSON(w, http.StatusOK, struct {
			Notice   string           `json:"notice"`
			Messages []historyMessage `json:"messages"`
		}{"Message history is disabled for this channel", []historyMessage{}})
		return
	}
	ints := map[string]int64{"limit": 100, "min_time": -1, "max_time": -1, "lastMessageNumber": -1}
	for key := range ints {
		v := strings.TrimSpace(q.Get(key))
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{
				"error": fmt.Sprintf("%s must be a non-negative whole number, got %q", key, v),
			})
			return
		}
		ints[key] = n
	}
	chatID := strings.TrimSpace(q.Get("chatId"))
	if chatID != "" && !strings.Contains(chatID, "@") {
		chatID += "@c.us"
	}
	msgID := q.Get("msgId")
	last := truthy(q.Get("last"))

	s.mu.Lock()
	out := []historyMessage{}
	for _, m := range s.messages {
		t := m.AcceptedAt.Unix()
		switch {
		case chatID != "" && m.ChatID != chatID,
			msgID != "" && m.ID != msgID,
			ints["min_time"] >= 0 && t < ints["min_time"],
			ints["max_time"] >= 0 && t > ints["max_time"],
			ints["lastMessageNumber"] >= 0 && m.Number <= ints["lastMessageNumber"]:
			continue
		}
		out = append(out, historyMessage{
			ID: m.ID, Body: m.Body, Type: "template", FromMe: true, Self: 1,
			Author: s.cfg.BusinessPhone + "@c.us", Time: t, ChatID: m.ChatID,
			MessageNumber: m.Number, SenderName: s.cfg.BusinessName,
		})
	}
	s.mu.Unlock()
	if limit := int(ints["limit"]); limit > 0 && len(out) > limit {
		if last {
			out = out[len(out)-limit:]
		} else {
			out = out[:limit]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// handleWebhook is GET /webhook and POST /webhook. POST replaces the list
// (it never appends), as 1MSG documents.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, body map[string]json.RawMessage) {
	if r.Method == http.MethodGet {
		s.mu.Lock()
		urls := append([]string{}, s.settings.WebhookURLs...)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"webhookUrl": urls})
		return
	}
	raw, ok := body["webhookUrl"]
	if !ok || isNull(raw) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `webhookUrl is required: a URL or an array of at most 5 URLs`})
		return
	}
	urls, err := webhookURLs(raw)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	s.settings.WebhookURLs = urls
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		Set     bool   `json:"set"`
		Message string `json:"message"`
	}{true, strings.Join(urls, ", ")})
}

// webhookURLs reads one URL or an array of URLs; "" or [] clears the list.
func webhookURLs(raw json.RawMessage) ([]string, error) {
	var list []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if strings.TrimSpace(one) != "" {
			list = []string{one}
		}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("webhookUrl must be a URL or an array of URLs, got %s", kindOf(raw))
	}
	if len(list) > maxWebhooks {
		return nil, fmt.Errorf("too many webhook URLs: %d given, a channel has at most %d", len(list), maxWebhooks)
	}
	out := []string{}
	for _, u := range list {
		u = strings.TrimSpace(u)
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("invalid webhook URL %q: want an absolute http(s) URL", u)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// settingsBody is the GET /settings body. webhookUrl is a string for none
// or one URL and an array for several, mirroring what was set.
type settingsBody struct {
	WebhookURL                 any  `json:"webhookUrl"`
	AckNotificationsOn         bool `json:"ackNotificationsOn"`
	RawHooks                   bool `json:"rawHooks"`
	GuaranteedHooks            bool `json:"guaranteedHooks"`
	TemplateAnalyticsEnabled   bool `json:"template_analytics_enabled"`
	CTAURLLinkTrackingOptedOut bool `json:"cta_url_link_tracking_opted_out"`
}

func settingsView(st Settings) settingsBody {
	var hook any = ""
	switch len(st.WebhookURLs) {
	case 0:
	case 1:
		hook = st.WebhookURLs[0]
	default:
		hook = append([]string(nil), st.WebhookURLs...)
	}
	return settingsBody{
		WebhookURL:                 hook,
		AckNotificationsOn:         st.AckNotificationsOn,
		RawHooks:                   st.RawHooks,
		GuaranteedHooks:            st.GuaranteedHooks,
		TemplateAnalyticsEnabled:   st.TemplateAnalyticsEnabled,
		CTAURLLinkTrackingOptedOut: st.CTAURLLinkTrackingOptedOut,
	}
}

// handleSettings is GET /settings and POST /settings. POST changes the
// fields given (all or none: an invalid field changes nothing) and answers
// the settings plus "update", the fields that changed with their new values.
// Unknown fields are ignored.
func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request, body map[string]json.RawMessage) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, settingsView(s.Settings()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.settings.clone()
	update := map[string]any{}
	if raw, ok := body["webhookUrl"]; ok {
		urls := []string{}
		if !isNull(raw) {
			var err error
			if urls, err = webhookURLs(raw); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
		}
		if !slices.Equal(urls, next.WebhookURLs) {
			next.WebhookURLs = urls
			update["webhookUrl"] = settingsView(next).WebhookURL
		}
	}
	flags := []struct {
		key string
		dst *bool
	}{
		{"ackNotificationsOn", &next.AckNotificationsOn},
		{"rawHooks", &next.RawHooks},
		{"guaranteedHooks", &next.GuaranteedHooks},
		{"template_analytics_enabled", &next.TemplateAnalyticsEnabled},
		{"cta_url_link_tracking_opted_out", &next.CTAURLLinkTrackingOptedOut},
	}
	for _, f := range flags {
		raw, ok := body[f.key]
		if !ok {
			continue
		}
		v, err := boolValue(raw)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%s: %v", f.key, err)})
			return
		}
		if v != *f.dst {
			*f.dst = v
			update[f.key] = v
		}
	}
	s.settings = next
	writeJSON(w, http.StatusOK, struct {
		settingsBody
		Update map[string]any `json:"update"`
	}{settingsView(next), update})
}

// boolValue reads a JSON boolean, or the strings and numbers a form sends.
func boolValue(raw json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "on", "yes":
		return true, nil
	case "false", "0", "off", "no", "":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %s", raw)
}

// handleTemplates is GET /templates: every template on the channel with its
// components in Meta's shape.
func (s *Server) handleTemplates(w http.ResponseWriter, _ *http.Request, _ map[string]json.RawMessage) {
	type button struct {
		Type string `json:"type"`
		Text string `json:"text"`
		URL  string `json:"url,omitempty"`
	}
	type comp struct {
		Type    string   `json:"type"`
		Text    string   `json:"text,omitempty"`
		Buttons []button `json:"buttons,omitempty"`
	}
	type tplJSON struct {
		Name           string `json:"name"`
		Namespace      string `json:"namespace"`
		Language       string `json:"language"`
		Status         string `json:"status"`
		Category       string `json:"category"`
		Components     []comp `json:"components"`
		RejectedReason string `json:"rejected_reason"`
	}
	tpls := s.templates()
	list := make([]tplJSON, 0, len(tpls))
	for _, t := range tpls {
		comps := []comp{{Type: "BODY", Text: t.Body}}
		if len(t.Buttons) > 0 {
			bs := make([]button, len(t.Buttons))
			for i, b := range t.Buttons {
				bs[i] = button{Type: strings.ToUpper(b.Type), Text: b.Text, URL: b.URL}
			}
			comps = append(comps, comp{Type: "BUTTONS", Buttons: bs})
		}
		reason := "NONE"
		if strings.EqualFold(t.Status, "rejected") {
			reason = "INVALID_FORMAT"
		}
		list = append(list, tplJSON{
			Name: t.Name, Namespace: t.Namespace, Language: t.Language,
			Status: strings.ToLower(t.Status), Category: t.Category,
			Components: comps, RejectedReason: reason,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Total     int       `json:"total"`
		Templates []tplJSON `json:"templates"`
	}{len(list), list})
}

// handleStatus is GET /status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ map[string]json.RawMessage) {
	if !s.sleep(r.Context(), s.Faults().StatusLatency) {
		return
	}
	s.mu.Lock()
	st := s.account.status
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"status": st})
}

// handleMe is GET /me, the business profile.
func (s *Server) handleMe(w http.ResponseWriter, _ *http.Request, _ map[string]json.RawMessage) {
	writeJSON(w, http.StatusOK, map[string]any{
		"about": "", "address": "", "description": s.cfg.BusinessName, "email": "",
		"phone": s.cfg.BusinessPhone, "vertical": "RETAIL", "photo": "", "websites": []string{},
	})
}
