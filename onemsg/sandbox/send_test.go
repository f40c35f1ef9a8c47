package sandbox_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	body := sendBody("79001234567", okParams...)
	bodyWithToken := func(tok string) string {
		return strings.Replace(body, `{"language"`, `{"token":`+strconvQuote(tok)+`,"language"`, 1)
	}
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		body    string
		status  int
		wantRaw string // exact body when set
	}{
		{"bearer header", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Authorization": "Bearer sandbox-token", "Content-Type": "application/json"}, body, 200, ""},
		{"raw header", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Authorization": "sandbox-token", "Content-Type": "application/json"}, body, 200, ""},
		{"query", http.MethodPost, "/sandbox/sendTemplate?token=sandbox-token",
			map[string]string{"Content-Type": "application/json"}, body, 200, ""},
		{"body", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Content-Type": "application/json"}, bodyWithToken("sandbox-token"), 200, ""},
		{"wrong bearer", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Authorization": "Bearer nope", "Content-Type": "application/json"}, body, 401,
			`{"error":"Wrong token \"nope\" for channel \"sandbox\". Please provide token as a GET parameter."}`},
		{"missing", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Content-Type": "application/json"}, body, 401,
			`{"error":"Wrong token \"\" for channel \"sandbox\". Please provide token as a GET parameter."}`},
		{"stale query overrides good header", http.MethodPost, "/sandbox/sendTemplate?token=old",
			map[string]string{"Authorization": "Bearer sandbox-token", "Content-Type": "application/json"}, body, 401,
			`{"error":"Wrong token \"old\" for channel \"sandbox\". Please provide token as a GET parameter."}`},
		{"stale body overrides good header", http.MethodPost, "/sandbox/sendTemplate",
			map[string]string{"Authorization": "Bearer sandbox-token", "Content-Type": "application/json"}, bodyWithToken("old"), 401,
			`{"error":"Wrong token \"old\" for channel \"sandbox\". Please provide token as a GET parameter."}`},
		{"GET with query token", http.MethodGet, "/sandbox/status?token=sandbox-token", nil, "", 200, `{"status":"connected"}`},
		{"GET wrong query token", http.MethodGet, "/sandbox/templates?token=x", nil, "", 401,
			`{"error":"Wrong token \"x\" for channel \"sandbox\". Please provide token as a GET parameter."}`},
		{"unknown channel", http.MethodGet, "/other/status?token=sandbox-token", nil, "", 404, ""},
		{"unknown method", http.MethodGet, "/sandbox/nope?token=sandbox-token", nil, "", 404, ""},
		{"wrong verb", http.MethodGet, "/sandbox/sendTemplate?token=sandbox-token", nil, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(tt.method, tt.path, tt.header, tt.body)
			if r.status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.wantRaw != "" && r.raw != tt.wantRaw {
				t.Fatalf("body\n got: %s\nwant: %s", r.raw, tt.wantRaw)
			}
		})
	}
	if got := e.sb.Stats().Unauthorized; got != 5 {
		t.Errorf("Stats.Unauthorized = %d, want 5", got)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestSendTemplateSuccess(t *testing.T) {
	e := newEnv(t, nil)
	body := sendBody("79001234567", okParams...)
	r := e.send(body)
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", r.status, r.raw)
	}
	id, _ := r.json["id"].(string)
	if !strings.HasPrefix(id, "wamid.") || len(id) < 20 {
		t.Fatalf("id = %q, want a wamid", id)
	}
	jsonEqual(t, r.raw, `{"sent":true,"id":`+strconvQuote(id)+`,"message":"Sent to 79001234567@c.us","description":"Message has been sent to the provider"}`)

	second := e.send(sendBody("79001234568", okParams...))
	if second.json["id"] == id {
		t.Fatalf("two messages got the same id %q", id)
	}

	reqs := e.sb.Requests()
	if len(reqs) != 2 {
		t.Fatalf("Requests() has %d entries, want 2", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.Path != "/sandbox/sendTemplate" || string(got.Body) != body ||
		got.Header.Get("Authorization") != "Bearer sandbox-token" || got.Header.Get("Content-Type") != "application/json" ||
		got.Outcome != sandbox.OutcomeAccepted || got.HTTPStatus != 200 || !got.Answered || got.MessageID != id {
		t.Fatalf("Requests()[0] = %+v", got)
	}
	msgs := e.sb.Messages()
	if len(msgs) != 2 {
		t.Fatalf("Messages() has %d entries, want 2", len(msgs))
	}
	m := msgs[0]
	if m.ID != id || m.Phone != "79001234567" || m.Template != "order_cancelled" || m.Language != "en" ||
		strings.Join(m.Params, "|") != strings.Join(okParams, "|") || m.Planned != sandbox.StatusRead || m.Status != sandbox.StatusSent {
		t.Fatalf("Messages()[0] = %+v", m)
	}
	st := e.sb.Stats()
	if st.SendRequests != 2 || st.Accepted != 2 || st.AcceptedByPhone["79001234567"] != 1 {
		t.Fatalf("Stats() = %+v", st)
	}
}

// TestSeedRequest posts exactly what the seed's Node.js example sends
// (JSON.stringify of its requestBody, with the seed's filled-in example) and
// checks that the history shows the seed's filled-in text.
func TestSeedRequest(t *testing.T) {
	e := newEnv(t, nil)
	const seedBody = `{"phone":"79001234567","template":"order_cancelled","namespace":"sandbox_ns",` +
		`"language":{"policy":"deterministic","code":"en"},` +
		`"params":[{"type":"body","parameters":[` +
		`{"type":"text","text":"Alexey"},` +
		`{"type":"text","text":"10482"},` +
		`{"type":"text","text":"Wireless headphones"},` +
		`{"type":"text","text":"Payment will be refunded within 3–5 business days to the card used for the order."}]}]}`
	r := e.must(http.MethodPost, "/sandbox/sendTemplate", map[string]string{
		"Content-Type":  "application/json",
		"Authorization": "Bearer sandbox-token",
	}, seedBody)
	if r.status != http.StatusOK || r.json["sent"] != true {
		t.Fatalf("seed request: HTTP %d %s", r.status, r.raw)
	}
	h := e.get("/sandbox/messages?chatId=79001234567@c.us")
	msgs := h.json["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("messages: %s", h.raw)
	}
	const filled = `Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled. Payment will be refunded within 3–5 business days to the card used for the order..`
	if body := msgs[0].(map[string]any)["body"]; body != filled {
		t.Fatalf("body = %q, want the seed's filled-in example %q", body, filled)
	}
	if got := string(e.sb.Requests()[0].Body); got != seedBody {
		t.Fatalf("recorded body differs from the wire body:\n%s", got)
	}
}

func TestSendTemplateRejections(t *testing.T) {
	custom := func(cfg *sandbox.Config) {
		cfg.Templates = append(sandbox.DefaultTemplates(),
			sandbox.Template{Name: "pending_one", Namespace: "sandbox_ns", Language: "en", Status: "pending", Category: "UTILITY", Body: "Hi {{1}}"},
			sandbox.Template{Name: "paused_one", Namespace: "sandbox_ns", Language: "en", Status: "paused", Category: "UTILITY", Body: "Hi {{1}}"},
			sandbox.Template{Name: "with_link", Namespace: "sandbox_ns", Language: "en", Status: "approved", Category: "UTILITY", Body: "Hi {{1}}",
				Buttons: []sandbox.Button{{Type: "URL", Text: "Open", URL: "https://shop.example/o/{{1}}"}}},
		)
	}
	e := newEnv(t, custom)
	withParams := func(p ...string) string { return sendBody("79001234567", p...) }
	replace := func(old, new string) string {
		b := withParams(okParams...)
		if !strings.Contains(b, old) {
			t.Fatalf("test body has no %q", old)
		}
		return strings.Replace(b, old, new, 1)
	}
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name    string
		body    string
		status  int
		code    float64 // Meta error.code in the sent:false body, 0 when none
		wantRaw string  // exact body when set
		want    string  // substring of the body otherwise
	}{
		{"missing template", replace(`,"template":"order_cancelled"`, ""), 200, 0, `{"sent":false,"message":"template is not defined"}`, ""},
		{"missing language", replace(`"language":{"code":"en","policy":"deterministic"},`, ""), 200, 0, `{"sent":false,"message":"template is not defined"}`, ""},
		{"empty language code", replace(`"code":"en"`, `"code":""`), 200, 0, `{"sent":false,"message":"template is not defined"}`, ""},
		{"missing namespace", replace(`"namespace":"sandbox_ns",`, ""), 422, 0, "", `"error":"Template namespace is required"`},
		{"too few body params", withParams("a", "b", "c"), 422, 0, "", `"error":"(#132000) Number of parameters does not match the expected number of params"`},
		{"too many body params", withParams("a", "b", "c", "d", "e"), 422, 0, "", "(#132000) Number of parameters does not match"},
		{"no params", replace(`,"params":[{"parameters":[{"text":"Alexey","type":"text"},{"text":"10482","type":"text"},{"text":"Wireless headphones","type":"text"},{"text":"Refund within 3-5 days","type":"text"}],"type":"body"}]`, ""), 422, 0, "", "(#132000)"},
		{"unknown template", replace(`"order_cancelled"`, `"order_canceled"`), 200, 132001, "", "(#132001) Template name does not exist in the translation"},
		{"wrong language", replace(`"code":"en"`, `"code":"ru"`), 200, 132001, "", "does not exist in ru"},
		{"wrong namespace", replace(`"sandbox_ns"`, `"other_ns"`), 200, 132001, "", `namespace \"other_ns\"`},
		{"template not approved", sendBodyFor("pending_one", "x"), 200, 132001, "", `not approved`},
		{"template paused", sendBodyFor("paused_one", "x"), 200, 132015, "", "Template is Paused"},
		{"missing recipient", replace(`"phone":"79001234567",`, ""), 400, 0, "", "recipient is missing"},
		{"phone with plus", replace(`"79001234567"`, `"+79001234567"`), 400, 0, "", `invalid \"phone\"`},
		{"phone too short", replace(`"79001234567"`, `"12345"`), 400, 0, "", `invalid \"phone\"`},
		{"phone too long", replace(`"79001234567"`, `"1234567890123456"`), 400, 0, "", `invalid \"phone\"`},
		{"bad chatId", replace(`"phone":"79001234567"`, `"chatId":"123@g.us"`), 400, 0, "", `invalid \"chatId\"`},
		{"phone and chatId", replace(`"phone":"79001234567"`, `"phone":"79001234567","chatId":"79001234567@c.us"`), 400, 0, "", "not both"},
		{"newline in param", withParams("Alexey", "10482", "Wireless\nheadphones", "x"), 200, 132018, "", "Param text cannot have new-line/tab characters or more than 4 consecutive spaces"},
		{"tab in param", withParams("Alexey", "10482", "x", "a\tb"), 200, 132018, "", "body parameter {{4}}: Param text cannot have new-line/tab"},
		{"five spaces", withParams("Alexey     Petrov", "10482", "x", "y"), 200, 132018, "", "more than 4 consecutive spaces"},
		{"empty param", withParams("", "10482", "x", "y"), 200, 132018, "", "cannot be empty"},
		{"hydrated too long", withParams("Alexey", "10482", long, "y"), 200, 132005, "", "Template Hydrated Text Too Long"},
		{"button param for static button", replace(`"type":"body"}]`, `"type":"body"},{"type":"button","sub_type":"url","index":0,"parameters":[{"type":"text","text":"10482"}]}]`),
			200, 132000, "", "is static"},
		{"dynamic button missing", sendBodyFor("with_link", "x"), 200, 132000, "", "needs a button parameter"},
		{"header for template without header", replace(`"type":"body"}]`, `"type":"body"},{"type":"header","parameters":[{"type":"text","text":"x"}]}]`),
			200, 132000, "", "no header variables"},
		{"non-text body param", replace(`{"text":"10482","type":"text"}`, `{"type":"currency","currency":{}}`), 200, 132012, "", "Parameter format does not match"},
		{"flat params", replace(`"params":[{"parameters"`, `"params":["Alexey"],"x":[{"parameters"`), 400, 0, "", "component object"},
		{"language as string", replace(`"language":{"code":"en","policy":"deterministic"}`, `"language":"en"`), 400, 0, "", `must be an object`},
		{"wrong policy", replace(`"policy":"deterministic"`, `"policy":"fallback"`), 400, 0, "", `must be \"deterministic\"`},
		{"not JSON", "{nope", 400, 0, "", "not a JSON object"},
	}
	// Without "Content-Type: application/json" the body is not read, as by
	// any web framework: the request looks empty.
	t.Run("JSON without Content-Type", func(t *testing.T) {
		r := e.must(http.MethodPost, "/sandbox/sendTemplate?token=sandbox-token", nil, withParams(okParams...))
		if r.status != 200 || r.raw != `{"sent":false,"message":"template is not defined"}` {
			t.Fatalf("HTTP %d %s", r.status, r.raw)
		}
		if d := e.sb.Requests()[0].Detail; !strings.Contains(d, "the body was ignored") {
			t.Fatalf("detail %q", d)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(tt.body)
			if r.status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.wantRaw != "" && r.raw != tt.wantRaw {
				t.Fatalf("body\n got: %s\nwant: %s", r.raw, tt.wantRaw)
			}
			if tt.want != "" && !strings.Contains(r.raw, tt.want) {
				t.Fatalf("body %s does not contain %s", r.raw, tt.want)
			}
			if tt.status != 400 && r.json["sent"] != false {
				t.Fatalf(`body has no "sent":false: %s`, r.raw)
			}
			if tt.code != 0 {
				errObj, _ := r.json["error"].(map[string]any)
				if errObj == nil || errObj["code"] != tt.code {
					t.Fatalf("error.code: want %v in %s", tt.code, r.raw)
				}
				if msg, _ := r.json["message"].(string); msg == "" {
					t.Fatalf("no readable message: %s", r.raw)
				}
			}
		})
	}
	st := e.sb.Stats()
	if st.Accepted != 0 || st.Rejected != int64(len(tests)+1) {
		t.Fatalf("Stats: accepted %d rejected %d, want 0 and %d", st.Accepted, st.Rejected, len(tests)+1)
	}
	for _, r := range e.sb.Requests() {
		if r.Outcome != sandbox.OutcomeRejected || r.Detail == "" {
			t.Fatalf("request %d: outcome %q detail %q", r.Seq, r.Outcome, r.Detail)
		}
	}
}

func sendBodyFor(template string, params ...string) string {
	return strings.Replace(sendBody("79001234567", params...), `"order_cancelled"`, strconvQuote(template), 1)
}

func TestSendTemplateAccepts(t *testing.T) {
	e := newEnv(t, func(cfg *sandbox.Config) {
		cfg.Templates = append(sandbox.DefaultTemplates(),
			sandbox.Template{Name: "with_link", Namespace: "sandbox_ns", Language: "en", Status: "approved", Category: "UTILITY", Body: "Hi {{1}}",
				Buttons: []sandbox.Button{{Type: "URL", Text: "Open", URL: "https://shop.example/o/{{1}}"}}})
	})
	b := sendBody("79001234567", okParams...)
	tests := []struct {
		name, body string
		phone      string
	}{
		{"phone as number", strings.Replace(b, `"79001234567"`, `79001234567`, 1), "79001234567"},
		{"chatId", strings.Replace(b, `"phone":"79001234567"`, `"chatId":"79001234568@c.us"`, 1), "79001234568"},
		{"four spaces are fine", sendBody("79001234569", "Alexey    Petrov", "1", "2", "3"), "79001234569"},
		{"uppercase component type", strings.Replace(b, `"type":"body"`, `"type":"BODY"`, 1), "79001234567"},
		{"dynamic URL button", strings.Replace(sendBodyFor("with_link", "x"), `"type":"body"}]`,
			`"type":"body"},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"10482"}]}]`, 1), "79001234567"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(tt.body)
			if r.status != 200 || r.json["sent"] != true {
				t.Fatalf("HTTP %d %s", r.status, r.raw)
			}
			if r.json["message"] != "Sent to "+tt.phone+"@c.us" {
				t.Fatalf("message = %v", r.json["message"])
			}
		})
	}
}

func TestSendTemplateForm(t *testing.T) {
	e := newEnv(t, nil)
	form := url.Values{
		"phone":                          {"79001234567"},
		"template":                       {"order_cancelled"},
		"namespace":                      {"sandbox_ns"},
		"language[policy]":               {"deterministic"},
		"language[code]":                 {"en"},
		"params[0][type]":                {"body"},
		"params[0][parameters][0][type]": {"text"},
		"params[0][parameters][0][text]": {"Alexey"},
		"params[0][parameters][1][type]": {"text"},
		"params[0][parameters][1][text]": {"10482"},
		"params[0][parameters][2][type]": {"text"},
		"params[0][parameters][2][text]": {"Wireless headphones"},
		"params[0][parameters][3][type]": {"text"},
		"params[0][parameters][3][text]": {"Refund"},
		"token":                          {"sandbox-token"},
	}
	jsonInForm := url.Values{
		"phone":     {"79001234568"},
		"template":  {"order_cancelled"},
		"namespace": {"sandbox_ns"},
		"language":  {`{"policy":"deterministic","code":"en"}`},
		"params":    {`[{"type":"body","parameters":[{"type":"text","text":"A"},{"type":"text","text":"1"},{"type":"text","text":"P"},{"type":"text","text":"N"}]}]`},
	}
	tests := []struct{ name, body string }{
		{"brackets", form.Encode()},
		{"json fields", jsonInForm.Encode()},
	}
	for _, tt := range tests {
		name, body := tt.name, tt.body
		t.Run(name, func(t *testing.T) {
			r := e.must(http.MethodPost, "/sandbox/sendTemplate?token=sandbox-token",
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body)
			if r.status != 200 || r.json["sent"] != true {
				t.Fatalf("HTTP %d %s", r.status, r.raw)
			}
		})
	}
	msgs := e.sb.Messages()
	if len(msgs) != 2 || strings.Join(msgs[0].Params, "|") != "Alexey|10482|Wireless headphones|Refund" {
		t.Fatalf("Messages() = %+v", msgs)
	}
}
