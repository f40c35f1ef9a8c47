package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// OfNotification lists the River jobs (send, track, callback) of one
// notification, oldest first. Finished jobs are there until River's
// retention deletes them. An insert-only client will do.
func OfNotification(ctx context.Context, client *river.Client[pgx.Tx], notificationID int64) ([]*rivertype.JobRow, error) {
	res, err := client.JobList(ctx, river.NewJobListParams().
		Kinds(SendArgs{}.Kind(), TrackArgs{}.Kind(), CallbackArgs{}.Kind()).
		Where("args @> @args::jsonb", river.NamedArgs{"args": fmt.Sprintf(`{"notification_id":%d}`, notificationID)}).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc).
		First(1000))
	if err != nil {
		return nil, fmt.Errorf("list the River jobs of notification %d: %w", notificationID, err)
	}
	return res.Jobs, nil
}
