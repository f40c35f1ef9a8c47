package sandbox

import (
	"encoding/json"
	"maps"
	"net/http"
	"time"
)

// The statuses WhatsApp reports for an outgoing message.
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
	StatusFailed    = "failed"
)

// statusRank orders statuses so Message.Status never goes back when acks
// arrive out of order; failed is final.
var statusRank = map[string]int{StatusSent: 1, StatusDelivered: 2, StatusRead: 3, StatusFailed: 4}

// MetaError is the Meta error of a failed message, as its failed status
// carries it (hookInfo errors[], raw hooks; the normalized ack has only the
// title, as text).
type MetaError struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
	Details string `json:"details"`
}

// StatusChange is one status report about a message, as recorded (and
// pushed): in arrival order, duplicates included.
type StatusChange struct {
	Status string `json:"status"`
	// Timestamp is when the status happened, which is what Meta's timestamp
	// says; Arrived is when the sandbox recorded it. They differ for
	// out-of-order acks.
	Timestamp time.Time `json:"timestamp"`
	Arrived   time.Time `json:"arrived"`
	Duplicate bool      `json:"duplicate,omitempty"`
}

// Message is an accepted message as the sandbox knows it.
type Message struct {
	ID        string   `json:"id"` // wamid
	Number    int64    `json:"messageNumber"`
	Phone     string   `json:"phone"`
	ChatID    string   `json:"chatId"`
	Template  string   `json:"template"`
	Namespace string   `json:"namespace"`
	Language  string   `json:"language"`
	Category  string   `json:"category"`
	Params    []string `json:"params"` // body parameter texts, in order
	Body      string   `json:"body"`   // the hydrated body text
	// JobID is set when the send was answered as queued.
	JobID string `json:"jobId,omitempty"`
	// RequestedAt is when the sendTemplate request arrived; AcceptedAt when
	// the message was accepted (later for queued sends).
	RequestedAt time.Time `json:"requestedAt"`
	AcceptedAt  time.Time `json:"acceptedAt"`
	// Dropped means the client never got the answer (AcceptThenDrop).
	Dropped bool `json:"dropped,omitempty"`
	// Planned is the final status WhatsApp will report: read, delivered or
	// failed. Status is the strongest status reported so far ("" before the
	// first), Statuses every report so far.
	Planned  string         `json:"planned"`
	Status   string         `json:"status"`
	Statuses []StatusChange `json:"statuses"`
	// Error is the Meta error of a message planned to fail.
	Error *MetaError `json:"error,omitempty"`
}

func (m *Message) clone() Message {
	c := *m
	c.Params = append([]string(nil), m.Params...)
	c.Statuses = append([]StatusChange(nil), m.Statuses...)
	if m.Error != nil {
		e := *m.Error
		c.Error = &e
	}
	return c
}

// Outcome says how the sandbox answered a sendTemplate request.
type Outcome string

const (
	OutcomeAccepted     Outcome = "accepted"     // sent:true
	OutcomeDropped      Outcome = "dropped"      // accepted, then the connection was closed (AcceptThenDrop)
	OutcomeQueued       Outcome = "queued"       // sent:false with a jobId; accepted later
	OutcomeRejected     Outcome = "rejected"     // invalid request: 400, 422 or sent:false
	OutcomeThrottled    Outcome = "throttled"    // Meta limit: 130429 or 131056
	OutcomeUnauthorized Outcome = "unauthorized" // 401
	OutcomeFault429     Outcome = "fault_429"    // injected 429
	OutcomeFault500     Outcome = "fault_500"    // injected 500
	OutcomeHang         Outcome = "hang"         // held until the client gave up
	OutcomeDown         Outcome = "down"         // connection closed, nothing processed
	OutcomeClientGone   Outcome = "client_gone"  // the client gave up during Latency
)

// Request is a POST /sendTemplate as received, for tests that compare the
// wire request field by field.
type Request struct {
	Seq      int64       `json:"seq"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery"`
	Header   http.Header `json:"header"`
	// Body holds the raw bytes; in JSON it is a string with those bytes.
	Body []byte    `json:"-"`
	At   time.Time `json:"at"`

	Outcome Outcome `json:"outcome"`
	// HTTPStatus is the status answered; 0 when no answer was written.
	HTTPStatus int `json:"httpStatus"`
	// Answered is false when the client got no answer: dropped, down, hang,
	// or it gave up during Latency or Slow.
	Answered bool `json:"answered"`
	// Code is the Meta error code of a sent:false or Meta-limit answer.
	Code      int    `json:"code,omitempty"`
	Detail    string `json:"detail,omitempty"` // what was wrong, in words
	MessageID string `json:"messageId,omitempty"`
	JobID     string `json:"jobId,omitempty"`
}

// MarshalJSON writes Body as a string holding the exact bytes received.
func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request
	return json.Marshal(struct {
		plain
		Body string `json:"body"`
	}{plain(r), string(r.Body)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Request) UnmarshalJSON(b []byte) error {
	type plain Request
	var v struct {
		plain
		Body string `json:"body"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Request(v.plain)
	r.Body = []byte(v.Body)
	return nil
}

func (r *Request) clone() Request {
	c := *r
	c.Header = r.Header.Clone()
	c.Body = append([]byte(nil), r.Body...)
	return c
}

// Stats are counters since New or the last reset.
type Stats struct {
	// SendRequests counts every POST /sendTemplate that reached the channel,
	// whatever its outcome. Request.Outcome tells them apart; the counters
	// below are by outcome.
	SendRequests int64 `json:"sendRequests"`
	// Accepted counts messages accepted, whatever the client learnt:
	// answered sent:true, dropped after acceptance, and queued sends once
	// accepted.
	Accepted     int64 `json:"accepted"`
	Queued       int64 `json:"queued"`       // answered with a jobId
	Dropped      int64 `json:"dropped"`      // accepted, answer never sent (AcceptThenDrop)
	Rejected     int64 `json:"rejected"`     // 400, 422 and sent:false for a bad request
	Throttled    int64 `json:"throttled"`    // Meta limits 130429 and 131056
	Faulted      int64 `json:"faulted"`      // injected 429, 500, hang and down
	Unauthorized int64 `json:"unauthorized"` // 401 on any channel path

	HookInfoCalls int64 `json:"hookInfoCalls"`
	MessagesCalls int64 `json:"messagesCalls"`

	// StatusReports counts statuses recorded (duplicates included).
	StatusReports int64 `json:"statusReports"`
	// WebhookPushes counts POSTs answered 2xx, AcksPushed the ack entries
	// they carried, WebhookPushFailures the attempts that failed (non-2xx or
	// transport error) and WebhookPushesDropped the POSTs given up after
	// WebhookRetryFor.
	WebhookPushes        int64 `json:"webhookPushes"`
	AcksPushed           int64 `json:"acksPushed"`
	WebhookPushFailures  int64 `json:"webhookPushFailures"`
	WebhookPushesDropped int64 `json:"webhookPushesDropped"`
	// PushesPending is what is still on its way to the webhooks: acks
	// waiting for their batch plus POSTs not finished (retries included).
	PushesPending int64 `json:"pushesPending"`

	// AcceptedByPhone counts accepted messages per recipient.
	AcceptedByPhone map[string]int `json:"acceptedByPhone"`
}

func (s *Stats) clone() Stats {
	c := *s
	c.AcceptedByPhone = maps.Clone(s.AcceptedByPhone)
	if c.AcceptedByPhone == nil {
		c.AcceptedByPhone = map[string]int{}
	}
	return c
}
