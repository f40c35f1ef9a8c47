package sandbox_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// TestControl drives a sandbox served over real HTTP through Control and
// checks each answer against what the Server itself reports.
func TestControl(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	c := sandbox.NewControl(e.srv.URL, nil)

	if err := c.WaitReady(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.send(sendBody("79001234567", okParams...))
	e.send(sendBody("79001112233", okParams...))

	st, err := c.Stats(ctx)
	if err != nil || st.Accepted != 2 || st.SendRequests != 2 {
		t.Fatalf("Stats = %+v, %v; want 2 requests, 2 accepted", st, err)
	}
	all, err := c.Messages(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("Messages(all) = %d, %v; want 2", len(all), err)
	}
	one, err := c.Messages(ctx, "79001234567")
	if err != nil || len(one) != 1 || one[0].Phone != "79001234567" || one[0].Params[1] != "10482" {
		t.Fatalf("Messages(79001234567) = %+v, %v", one, err)
	}
	reqs, err := c.Requests(ctx)
	if err != nil || len(reqs) != 2 || !strings.Contains(string(reqs[0].Body), `"order_cancelled"`) {
		t.Fatalf("Requests = %+v, %v", reqs, err)
	}

	want := sandbox.Faults{Status5xx: 0.5, Latency: 10 * time.Millisecond, PairInterval: 6 * time.Second}
	if err := c.SetFaults(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := e.sb.Faults(); got != want {
		t.Fatalf("server's faults = %+v, want %+v", got, want)
	}
	if got, err := c.Faults(ctx); err != nil || got != want {
		t.Fatalf("Faults = %+v, %v; want %+v", got, err, want)
	}
	err = c.SetFaults(ctx, sandbox.Faults{Status429: 2})
	if err == nil || !strings.Contains(err.Error(), "status429") {
		t.Fatalf("SetFaults(status429=2) = %v, want an error naming status429", err)
	}

	if err := c.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	if st := e.sb.Stats(); st.Accepted != 0 || len(e.sb.Messages()) != 0 || e.sb.Faults() != (sandbox.Faults{}) {
		t.Fatalf("after Reset: stats %+v, %d messages, faults %+v", st, len(e.sb.Messages()), e.sb.Faults())
	}
}

// TestControlWaitReady gives up on a sandbox that never answers and says
// where it looked.
func TestControlWaitReady(t *testing.T) {
	srv := httptest.NewServer(nil) // 404 everywhere: not a sandbox
	defer srv.Close()
	err := sandbox.NewControl(srv.URL, nil).WaitReady(context.Background(), 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("WaitReady = %v, want an error naming %s", err, srv.URL)
	}
}

// TestControlChannel points a Control at a second channel and checks that
// its messages, requests, stats and faults are that channel's alone.
func TestControlChannel(t *testing.T) {
	e := newEnv(t, func(c *sandbox.Config) {
		c.Channels = []sandbox.ChannelConfig{{Channel: "brandb", Token: "brandb-token"}}
	})
	ctx := context.Background()
	main := sandbox.NewControl(e.srv.URL, nil)
	b := main.Channel("brandb")

	e.send(sendBody("79001234567", okParams...))
	e.must(http.MethodPost, "/brandb/sendTemplate", map[string]string{"Authorization": "Bearer brandb-token", "Content-Type": "application/json"}, sendBody("79001112233", okParams...))
	e.must(http.MethodPost, "/brandb/sendTemplate", bearer, sendBody("79001112244", okParams...)) // the default channel's token: 401

	st, err := b.Stats(ctx)
	if err != nil || st.Accepted != 1 || st.Unauthorized != 1 {
		t.Fatalf("brandb Stats = %+v, %v; want 1 accepted, 1 unauthorized", st, err)
	}
	if st, err := main.Stats(ctx); err != nil || st.Accepted != 1 || st.Unauthorized != 0 {
		t.Fatalf("default Stats = %+v, %v; want 1 accepted, none unauthorized", st, err)
	}
	msgs, err := b.Messages(ctx, "79001112233")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("brandb Messages(79001112233) = %+v, %v; want 1", msgs, err)
	}
	if msgs, err := b.Messages(ctx, "79001234567"); err != nil || len(msgs) != 0 {
		t.Fatalf("brandb Messages(79001234567) = %+v, %v; want none: it went through the default channel", msgs, err)
	}
	reqs, err := b.Requests(ctx)
	if err != nil || len(reqs) != 2 || reqs[0].Outcome != sandbox.OutcomeAccepted || reqs[1].Outcome != sandbox.OutcomeUnauthorized {
		t.Fatalf("brandb Requests = %+v, %v; want accepted then unauthorized", reqs, err)
	}
	want := sandbox.Faults{Status5xx: 0.25}
	if err := b.SetFaults(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Faults(ctx); err != nil || got != want {
		t.Fatalf("brandb Faults = %+v, %v; want %+v", got, err, want)
	}
	if got := e.sb.Faults(); got != (sandbox.Faults{}) {
		t.Fatalf("the default channel's faults = %+v, want none", got)
	}
	if _, err := main.Channel("nope").Stats(ctx); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Stats of an unknown channel = %v, want an error naming it", err)
	}
}
