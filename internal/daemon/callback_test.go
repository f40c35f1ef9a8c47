package daemon_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cancelnotify/cancelnotify/jobs"
)

// readmeBlock returns the first fenced block of lang after marker in
// README.md.
func readmeBlock(t *testing.T, marker, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %s block after %q", lang, marker)
	}
	s = s[start+len("```"+lang+"\n"):]
	return s[:strings.Index(s, "```")]
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The README's standard-library receiver, run as pasted, accepts the
// daemon's callbacks and refuses forged, stale and altered ones.
func TestReadmeCallbackReceiver(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to run the README's receiver: %v", err)
	}
	e := newEnv(t, fastSandbox())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var out lockedBuffer
	cmd := exec.Command(python, "-c", readmeBlock(t, "**Outgoing callback.**", "python"))
	cmd.Env = append(os.Environ(), "CANCELNOTIFY_CALLBACK_SECRET="+testCallbackSecret, "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	crm := "http://127.0.0.1:" + strconv.Itoa(port)
	e.waitFor(10*time.Second, "the README receiver to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	cfg := e.config()
	cfg.CallbackURL, cfg.CallbackSecret = crm, testCallbackSecret
	e.start(cfg)
	e.insert("order-ok", orderPayload(1))
	e.insert("order-bad", payload{"phone": "1"})
	e.waitFinal(20*time.Second, "order-ok", "order-bad")
	e.waitFor(20*time.Second, "the three callbacks accepted by the receiver", func() bool {
		var n int
		_ = e.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE queue = $1 AND state = 'completed'", jobs.QueueCallback).Scan(&n)
		return n == 3
	})
	for _, want := range []string{
		"verified " + jobs.DeliveryID(e.schema, e.notification("order-bad").ID, "rejected") + " rejected",
		"verified " + jobs.DeliveryID(e.schema, e.notification("order-ok").ID, "delivered") + " delivered",
		"verified " + jobs.DeliveryID(e.schema, e.notification("order-ok").ID, "read") + " read",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("receiver output lacks %q:\n%s", want, out.String())
		}
	}

	// Forgeries: the receiver answers 401, which the daemon would retry.
	signer, err := standardwebhooks.NewWebhook(testCallbackSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event_id":"x","status":"failed","order_number":"1"}`)
	post := func(id string, ts time.Time, sigBody, sentBody []byte) int {
		sig, _ := signer.Sign(id, ts, sigBody)
		req, _ := http.NewRequest("POST", crm, bytes.NewReader(sentBody))
		req.Header.Set(jobs.HeaderID, id)
		req.Header.Set(jobs.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(jobs.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name     string
		ts       time.Time
		sentBody []byte
		want     int
	}{
		{"genuine", time.Now(), body, http.StatusNoContent},
		{"stale timestamp (a replay)", time.Now().Add(-6 * time.Minute), body, http.StatusUnauthorized},
		{"timestamp from the future", time.Now().Add(6 * time.Minute), body, http.StatusUnauthorized},
		{"altered body", time.Now(), append(bytes.Clone(body), ' '), http.StatusUnauthorized},
	} {
		if got := post("test_1_failed", c.ts, body, c.sentBody); got != c.want {
			t.Errorf("%s: receiver answered %d, want %d", c.name, got, c.want)
		}
	}
}
