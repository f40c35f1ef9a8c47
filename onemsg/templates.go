package onemsg

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Template is one entry of GET /templates.
type Template struct {
	Name           string              `json:"name"`
	Namespace      string              `json:"namespace"`
	Language       string              `json:"language"`
	Status         string              `json:"status"`
	Category       string              `json:"category"`
	RejectedReason string              `json:"rejected_reason"`
	Components     []TemplateComponent `json:"-"`
}

// TemplateComponent is a template's BODY, HEADER, FOOTER or BUTTONS part.
type TemplateComponent struct {
	Type    string           `json:"type"`
	Format  string           `json:"format,omitempty"`
	Text    string           `json:"text,omitempty"`
	Buttons []TemplateButton `json:"buttons,omitempty"`
}

// TemplateButton is a button of a BUTTONS component.
type TemplateButton struct {
	Type string `json:"type"`
	Text string `json:"text"`
	URL  string `json:"url,omitempty"`
}

// UnmarshalJSON handles the quirks seen in the wild: components sent as a
// JSON string, and the namespace under message_template_namespace.
func (t *Template) UnmarshalJSON(b []byte) error {
	type plain Template
	var w struct {
		plain
		Components json.RawMessage `json:"components"`
		AltNS      string          `json:"message_template_namespace"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Template(w.plain)
	if t.Namespace == "" {
		t.Namespace = w.AltNS
	}
	raw := w.Components
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	_ = json.Unmarshal(raw, &t.Components) // templates without readable components still list
	return nil
}

// Approved reports whether Meta approved the template.
func (t Template) Approved() bool { return strings.EqualFold(t.Status, "approved") }

// Body returns the BODY component's text.
func (t Template) Body() string {
	for _, c := range t.Components {
		if strings.EqualFold(c.Type, "BODY") {
			return c.Text
		}
	}
	return ""
}

var bodyVar = regexp.MustCompile(`\{\{\s*(\d+)\s*\}\}`)

// BodyParams counts the distinct {{n}} variables of the body.
func (t Template) BodyParams() int {
	seen := map[string]bool{}
	for _, m := range bodyVar.FindAllStringSubmatch(t.Body(), -1) {
		seen[m[1]] = true
	}
	return len(seen)
}

// Templates lists the channel's templates (GET /templates).
func (c *Client) Templates(ctx context.Context) (_ []Template, err error) {
	defer c.finish("templates", time.Now(), &err)
	var out struct {
		Templates []Template      `json:"templates"`
		Error     json.RawMessage `json:"error"`
	}
	if err := c.do(ctx, "templates", http.MethodGet, "templates", nil, nil, &out); err != nil {
		return nil, err
	}
	if len(out.Error) > 0 && string(out.Error) != "null" && len(out.Templates) == 0 {
		msg, code := decodeErrorField(out.Error)
		return nil, &Error{Op: "templates", Kind: KindUnknown, HTTPStatus: 200, Code: code, Message: msg}
	}
	return out.Templates, nil
}
