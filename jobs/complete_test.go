package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
)

type completeTxArgs struct{}

func (completeTxArgs) Kind() string { return "cancelnotify_test_complete_tx" }

// TestCompleteTx checks, against River's real job table, what completeTx
// relies on from River's driver internals (complete.go): a running job is
// completed in the caller's transaction, and a job no longer running makes
// the call fail so the batch rolls back. Re-run it on every River upgrade.
func TestCompleteTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := dbtest.New(t)

	done := make(chan *rivertype.JobRow, 1)
	errs := make(chan error, 1)
	var client *river.Client[pgx.Tx]
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[completeTxArgs]) error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return completeTx(ctx, tx, client, schema, []*rivertype.JobRow{job.JobRow})
		})
		done <- job.JobRow
		errs <- err
		return nil // River's own completion finds the job completed already
	}))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: schema, Workers: workers, TestOnly: true,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	if _, err := client.Insert(ctx, completeTxArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	var row *rivertype.JobRow
	select {
	case row = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("River did not work the job within 20 s")
	}
	if err := <-errs; err != nil {
		t.Fatalf("completeTx of a running job: %v", err)
	}
	got, err := client.JobGet(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rivertype.JobStateCompleted || got.FinalizedAt == nil {
		t.Fatalf("job after completeTx: state %s, finalized %v; want completed with a time", got.State, got.FinalizedAt)
	}

	// A job no client works: available, as a job River rescued from a
	// killed worker is until another client fetches it.
	waiting, err := client.Insert(ctx, completeTxArgs{}, &river.InsertOpts{Queue: "cancelnotify_test_unworked"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		jobs    []*rivertype.JobRow
		wantErr string
	}{
		{"no jobs", nil, ""},
		{"a job completed already", []*rivertype.JobRow{row}, ""},
		{"a job not running", []*rivertype.JobRow{waiting.Job}, "0 of 1 were running"},
		{"one of two not running", []*rivertype.JobRow{row, waiting.Job}, "1 of 2 were running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return completeTx(ctx, tx, client, schema, tt.jobs)
			})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("completeTx = %v, want %q", err, tt.wantErr)
			}
			if j, err := client.JobGet(ctx, waiting.Job.ID); err != nil || j.State != rivertype.JobStateAvailable {
				t.Fatalf("the job not running is %v (%v) afterwards; want it left available", j.State, err)
			}
		})
	}
}
