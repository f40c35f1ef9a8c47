package jobs

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

func TestOfNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema}) // insert-only
	if err != nil {
		t.Fatal(err)
	}
	jobs := []struct {
		args river.JobArgs
		ofN5 bool
	}{
		{SendArgs{OutboxID: 1, NotificationID: 5, EventID: "order-5-cancelled"}, true},
		{SendArgs{OutboxID: 2, NotificationID: 6, EventID: "order-6-cancelled"}, false},
		{TrackArgs{NotificationID: 5, Wamid: "wamid.5", EventID: "order-5-cancelled"}, true},
		{SendArgs{OutboxID: 3, NotificationID: 55, EventID: "order-55-cancelled"}, false}, // 55 is not 5
		{CallbackArgs{NotificationID: 5}, true},
	}
	var want []int64
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, j := range jobs {
			res, err := client.InsertTx(ctx, tx, j.args, nil)
			if err != nil {
				return err
			}
			if j.ofN5 {
				want = append(want, res.Job.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := OfNotification(ctx, client, 5)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range rows {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("OfNotification(5) = jobs %v, want %v (send, track, callback, in id order)", got, want)
	}
}
