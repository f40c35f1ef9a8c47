// Package ledger owns cancelnotify's record of each notification: the
// notification and notification_event tables and the one rule that decides
// how a reported status changes a row (never downgrade, design §2). The
// relay, the send and track workers, the webhook receiver and the operator
// commands all change statuses through this package, so they cannot disagree.
package ledger

import "fmt"

// Status is a notification's status as stored in notification.status.
type Status string

// The statuses of design §2.
const (
	StatusQueued    Status = "queued"
	StatusSending   Status = "sending"
	StatusInDoubt   Status = "in_doubt"
	StatusSent      Status = "sent"
	StatusDelivered Status = "delivered"
	StatusRead      Status = "read"
	StatusFailed    Status = "failed"
	StatusRejected  Status = "rejected"
	StatusSkipped   Status = "skipped"
	StatusExpired   Status = "expired"
)

// Statuses lists every status in the order reports show them.
var Statuses = []Status{
	StatusQueued, StatusSending, StatusInDoubt, StatusSent, StatusDelivered,
	StatusRead, StatusFailed, StatusRejected, StatusSkipped, StatusExpired,
}

// rank orders the statuses WhatsApp reports about an accepted message.
// A status only replaces one of lower rank. expired < failed < delivered
// because a late failure is more precise than "we stopped waiting", and a
// delivered after failed happens on multi-device accounts (design §2).
var rank = map[Status]int{
	StatusQueued:    0,
	StatusSending:   1,
	StatusInDoubt:   1,
	StatusSent:      2,
	StatusExpired:   3,
	StatusFailed:    4,
	StatusDelivered: 5,
	StatusRead:      6,
}

// Valid reports whether s is one of the statuses of design §2.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Final reports whether s ends the notification's life for CRM and finance.
// delivered, failed and expired are final but can still be upgraded by a
// later, stronger status.
func (s Status) Final() bool {
	switch s {
	case StatusDelivered, StatusRead, StatusFailed, StatusRejected, StatusSkipped, StatusExpired:
		return true
	}
	return false
}

// UpgradedBy reports whether a reported status next should replace the
// current status cur. Duplicates and weaker statuses never do; rejected and
// skipped rows were never sent, so nothing WhatsApp reports applies to them.
func (cur Status) UpgradedBy(next Status) bool {
	if cur == StatusRejected || cur == StatusSkipped {
		return false
	}
	rc, okc := rank[cur]
	rn, okn := rank[next]
	return okc && okn && rn > rc
}

// ParseStatus maps a status name to a Status, or an error naming the value.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if !st.Valid() {
		return "", fmt.Errorf("unknown status %q: want one of queued, sending, in_doubt, sent, delivered, read, failed, rejected, skipped, expired", s)
	}
	return st, nil
}

// DefaultChannel names the channel the ONEMSG_* variables define; a
// payload without a "channel" key goes out through it.
const DefaultChannel = "default"
