package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// This file is the only place that reaches into River's driver, below its
// public API: riverdriver's JobSetStateIfRunningMany and
// JobSetStateCompleted are internals River may change in any release. An
// upgrade of River (go.mod) must re-run TestCompleteTx, which checks the
// behaviour this relies on against a real job row.

// completeTx marks running jobs completed in tx, as river.JobCompleteTx
// does for one job, with one statement for all of them: the query
// JobCompleteTx runs takes many jobs, and one statement per job was a
// quarter of the database's time at a thousand messages a second. It fails,
// and tx must roll back, when a job is neither running nor completed
// already (River rescued it meanwhile, say).
func completeTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], schema string, jobs []*rivertype.JobRow) error {
	if len(jobs) == 0 {
		return nil
	}
	p := &riverdriver.JobSetStateIfRunningManyParams{Schema: schema}
	now := time.Now()
	for _, j := range jobs {
		s := riverdriver.JobSetStateCompleted(j.ID, now, nil)
		p.ID = append(p.ID, s.ID)
		p.Attempt = append(p.Attempt, s.Attempt)
		p.ErrData = append(p.ErrData, s.ErrData)
		p.FinalizedAt = append(p.FinalizedAt, s.FinalizedAt)
		p.MetadataDoMerge = append(p.MetadataDoMerge, false)
		p.MetadataUpdates = append(p.MetadataUpdates, nil)
		p.ScheduledAt = append(p.ScheduledAt, s.ScheduledAt)
		p.State = append(p.State, s.State)
	}
	rows, err := client.Driver().UnwrapExecutor(tx).JobSetStateIfRunningMany(ctx, p)
	if err != nil {
		return fmt.Errorf("complete send jobs: %w", err)
	}
	// River returns every row, changed or not: one not completed now was
	// not running.
	completed := 0
	for _, r := range rows {
		if r.State == rivertype.JobStateCompleted {
			completed++
		}
	}
	if completed != len(jobs) {
		// A job was no longer running (rescued by another client): the batch
		// rolls back and each acceptance is retried alone.
		return fmt.Errorf("complete send jobs: %d of %d were running", completed, len(jobs))
	}
	return nil
}
