package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/health"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// A refusal holds the channel in Postgres, where a second daemon's
// Monitor sees it; sends on it are told to wait and why, and the other
// channel's sends go on.
func TestRefusedHoldsTheChannelForEveryDaemon(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	cfg := health.Config{Pool: pool, Channels: []health.Channel{{Name: "default"}, {Name: "brand-b"}},
		BackoffMin: time.Second, BackoffMax: 4 * time.Second}
	a, b := health.New(cfg), health.New(cfg)

	if adm, err := a.Admit(ctx, "default", 1); err != nil || !adm.Send {
		t.Fatalf("Admit on a channel never held = %+v, %v; want Send", adm, err)
	}
	wait, err := a.Refused(ctx, "default", &onemsg.Error{Op: "sendTemplate", Kind: onemsg.KindRejected, HTTPStatus: 401, Message: "Wrong token"})
	if err != nil {
		t.Fatal(err)
	}
	if wait <= 0 || wait > cfg.BackoffMax {
		t.Errorf("Refused says wait %s; want a pause up to BackoffMax %s", wait, cfg.BackoffMax)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	st := b.View("default")
	if st.Healthy() || st.ErrorCode != "http_401" || !strings.Contains(st.Describe(), "Wrong token") {
		t.Errorf("the other daemon sees %+v (%s); want held by http_401 Wrong token", st, st.Describe())
	}
	adm, err := b.Admit(ctx, "default", 2)
	if err != nil || adm.Send || adm.Wait <= 0 || !strings.Contains(adm.Why, "http_401") {
		t.Errorf("Admit on the held channel = %+v, %v; want no send, a wait and the reason", adm, err)
	}
	if adm, err := b.Admit(ctx, "brand-b", 3); err != nil || !adm.Send {
		t.Errorf("Admit on the other channel = %+v, %v; want Send", adm, err)
	}
	rows, err := health.Read(ctx, pool, "default", "brand-b")
	if err != nil || len(rows) != 2 || rows[0].Channel != "default" || rows[0].State != health.Held ||
		rows[1].Channel != "brand-b" || !rows[1].Healthy() {
		t.Errorf("Read = %+v, %v; want default held and brand-b (never held) healthy", rows, err)
	}

	// status and check, which do not know the configured channels, see
	// every channel that was ever held.
	if _, err := b.Refused(ctx, "brand-b", &onemsg.Error{Op: "sendTemplate", Kind: onemsg.KindRejected, Code: 132015, Message: "Template is paused"}); err != nil {
		t.Fatal(err)
	}
	all, err := health.ReadAll(ctx, pool)
	if err != nil || len(all) != 2 || all[0].Channel != "default" || all[1].Channel != "brand-b" || all[1].Healthy() || all[1].ErrorCode != "132015" {
		t.Errorf("ReadAll = %+v, %v; want default, then brand-b held by 132015", all, err)
	}
}
