package ledger

import (
	"context"
	"fmt"
)

// FallBackLanguage records that notification id goes out in language to
// instead of the payload's language from, which the approved template
// lacks: language becomes to, language_fallback_from keeps from, and the
// history says why. The status does not change.
func FallBackLanguage(ctx context.Context, db DB, id int64, from, to, why string) error {
	_, err := db.Exec(ctx, `WITH u AS (
			UPDATE notification SET language = $3, language_fallback_from = $2, updated_at = now()
			WHERE id = $1 RETURNING id, status
		)
		INSERT INTO notification_event (notification_id, status, source, applied, detail)
		SELECT id, status, 'daemon', false, $4 FROM u`,
		id, from, to, detailJSON(map[string]any{"reason": "language fallback: the template lacks " + from + "; sent in " + to,
			"language_from": from, "language_to": to, "refusal": why}))
	if err != nil {
		return fmt.Errorf("record the language fallback of notification %d: %w", id, err)
	}
	return nil
}

// LanguageFallback returns the payload language notification id fell back
// from, or "" when it went out in the language it asked for.
func LanguageFallback(ctx context.Context, db DB, id int64) (string, error) {
	var from *string
	if err := db.QueryRow(ctx, `SELECT language_fallback_from FROM notification WHERE id = $1`, id).Scan(&from); err != nil {
		return "", fmt.Errorf("read the language fallback of notification %d: %w", id, err)
	}
	if from == nil {
		return "", nil
	}
	return *from, nil
}
