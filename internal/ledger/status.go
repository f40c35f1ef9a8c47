// Package ledger owns cancelnotify's record of each notification: the
// notification, notification_event and webhook_orphan tables and the one
// rule that decides how a reported status changes a row (never downgrade,
// docs/database.md, "The status rule"). Every statement the daemon and the CLI run on these tables is
// here: the relay, the send and track workers, the webhook receiver, the
// operator commands, status and metrics read and change them through this
// package, so they cannot disagree. Only the benchmark and the chaos run
// query them directly, to measure from outside.
package ledger

import (
	"fmt"
	"slices"
)

// Status is a notification's status as stored in notification.status.
type Status string

// The statuses of notification.status (docs/database.md, "Statuses").
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
// delivered after failed happens on multi-device accounts (docs/onemsg.md).
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

// Valid reports whether s is one of the statuses in Statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// FinalStatuses returns the statuses that end a notification's life for CRM
// and finance. delivered, failed and expired are final but can still be
// upgraded by a later, stronger status. The view notification_report's
// final column spells the same set in SQL; a test keeps the two equal.
func FinalStatuses() []Status {
	return []Status{StatusDelivered, StatusRead, StatusFailed, StatusRejected, StatusSkipped, StatusExpired}
}

// Final reports whether s is one of FinalStatuses.
func (s Status) Final() bool { return slices.Contains(FinalStatuses(), s) }

// RetryableStatuses returns the statuses an operator can re-drive with
// `cancelnotify retry`: the message did not reach the customer, and sending
// it again cannot duplicate one that did.
func RetryableStatuses() []Status { return []Status{StatusFailed, StatusExpired} }

// Retryable reports whether s is one of RetryableStatuses.
func (s Status) Retryable() bool { return slices.Contains(RetryableStatuses(), s) }

// Strings returns the statuses as strings, for a SQL text[] parameter.
func Strings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
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
