package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

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

// A test drives a sandbox in another process through its instruments; here
// it is served in this one.
func ExampleControl() {
	sb := sandbox.New(sandbox.DefaultConfig())
	defer sb.Close()
	srv := httptest.NewServer(sb)
	defer srv.Close()

	ctl := sandbox.NewControl(srv.URL, nil)
	ctx := context.Background()
	if err := ctl.SetFaults(ctx, sandbox.Faults{Status5xx: 0.1, Latency: 50 * time.Millisecond}); err != nil {
		fmt.Println(err)
		return
	}
	f, _ := ctl.Faults(ctx)
	st, _ := ctl.Stats(ctx)
	fmt.Println(f.Status5xx, f.Latency, st.SendRequests)
	fmt.Println(ctl.SetFaults(ctx, sandbox.Faults{Hang: 2}))
	// Output:
	// 0.1 50ms 0
	// sandbox PUT /_sandbox/faults: 400 Bad Request: {"error":"faults: hang = 2 is not a share in [0,1]"}
}
