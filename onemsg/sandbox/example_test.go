package sandbox_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// The seed's request, pointed at the sandbox instead of api.1msg.io.
func Example() {
	sb := sandbox.New(sandbox.DefaultConfig())
	defer sb.Close()
	srv := httptest.NewServer(sb)
	defer srv.Close()

	body := `{"phone":"79001234567","template":"order_cancelled","namespace":"sandbox_ns",` +
		`"language":{"policy":"deterministic","code":"en"},` +
		`"params":[{"type":"body","parameters":[{"type":"text","text":"Alexey"},` +
		`{"type":"text","text":"10482"},{"type":"text","text":"Wireless headphones"},` +
		`{"type":"text","text":"Payment will be refunded within 3–5 business days"}]}]}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/sandbox/sendTemplate", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sandbox-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	var out struct {
		Sent    bool   `json:"sent"`
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	json.NewDecoder(res.Body).Decode(&out)

	m, _ := sb.Message(out.ID)
	fmt.Println(res.StatusCode, out.Sent, out.Message)
	fmt.Println(m.Body)
	fmt.Println(m.Status, "now,", m.Planned, "planned")
	// Output:
	// 200 true Sent to 79001234567@c.us
	// Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled. Payment will be refunded within 3–5 business days.
	// sent now, read planned
}
