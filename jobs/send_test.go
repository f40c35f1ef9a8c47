package jobs

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

// A worker that dies between 1MSG's answer and the commit of it must not
// cause a second message: the retry finds the first one in the history.
func TestCrashBetweenSendAndCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	sbcfg := sandbox.DefaultConfig()
	sbcfg.DeliveredAfter, sbcfg.ReadAfter = 20*time.Millisecond, 50*time.Millisecond
	sb := sandbox.New(sbcfg)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	api, err := onemsg.NewClient(onemsg.Config{BaseURL: srv.URL, Channel: sandbox.DefaultChannel, Token: sandbox.DefaultToken})
	if err != nil {
		t.Fatal(err)
	}

	var crashes atomic.Int32
	l := &ledger.Ledger{Schema: schema}
	client, err := NewClient(Config{
		Pool: pool, Schema: schema, Ledger: l, Channels: []Channel{{API: api, Namespace: sandbox.DefaultNamespace}},
		TrackFirstPoll: 100 * time.Millisecond, TestOnly: true,
		afterSend: func(context.Context) error {
			if crashes.Add(1) == 1 {
				return errors.New("simulated crash after 1MSG answered")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var n *ledger.Notification
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ns, err := l.Create(ctx, tx, []ledger.New{{OutboxID: 1, EventID: "order-1-cancelled", EventCreatedAt: time.Now(),
			Phone: "79001234567", Template: sandbox.DefaultTemplate, Language: "en",
			Params: []string{"Alexey", "10482", "Wireless headphones", "Refund in 3–5 days"}, Status: ledger.StatusQueued}})
		if err != nil {
			return err
		}
		n = ns[0]
		_, err = client.InsertTx(ctx, tx, SendArgsOf(n, 0), nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := ledger.Get(ctx, pool, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == ledger.StatusRead {
			msgs := sb.Messages()
			if len(msgs) != 1 || got.Wamid != msgs[0].ID {
				t.Fatalf("sandbox has %d messages; notification wamid %s", len(msgs), got.Wamid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s after 20s", got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := sb.Stats()
	if st.SendRequests != 1 || st.Accepted != 1 || st.MessagesCalls == 0 {
		t.Errorf("sandbox: %d sends, %d accepted, %d history reads; want 1, 1, ≥1", st.SendRequests, st.Accepted, st.MessagesCalls)
	}
}
