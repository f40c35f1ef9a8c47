package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Faults are injected into the channel. Shares are probabilities in [0,1]
// decided per request (or per message for the ack faults) with the seeded
// random source; they apply to POST /sendTemplate unless said otherwise.
//
// Over HTTP (PUT /_sandbox/faults) the fields use the JSON names below and
// durations are either Go duration strings ("1.5s", "250ms") or numbers of
// milliseconds; GET returns duration strings.
type Faults struct {
	// Status429 answers HTTP 429 {"error":"Rate limit exceeded"}, 1MSG's own
	// limiter; RetryAfter, when positive, adds a Retry-After header in whole
	// seconds (rounded up). 1MSG does not promise the header.
	Status429  float64       `json:"status429"`
	RetryAfter time.Duration `json:"retryAfter"`
	// Status5xx answers HTTP 500 {"error":"Internal server error"}; the
	// message is not accepted.
	Status5xx float64 `json:"status5xx"`
	// AcceptThenDrop accepts and records the message (it is in /messages and
	// gets statuses) and then closes the connection without an answer: the
	// unknown-outcome case a client must reconcile.
	AcceptThenDrop float64 `json:"acceptThenDrop"`
	// Slow adds SlowBy after the request was processed and before the answer
	// is written, so a client that gives up meanwhile does not learn that its
	// message was accepted.
	Slow   float64       `json:"slow"`
	SlowBy time.Duration `json:"slowBy"`
	// Hang accepts nothing and holds the request until the client gives up.
	Hang float64 `json:"hang"`
	// Latency is added before every sendTemplate is processed (the way to the
	// server); a client that gives up meanwhile has sent nothing.
	Latency time.Duration `json:"latency"`
	// Queued answers {"sent":false,"jobId":"job_…","message":"queued"} and
	// accepts the message QueuedFor later (default 1s); only then is it in
	// /messages with an id.
	Queued    float64       `json:"queued"`
	QueuedFor time.Duration `json:"queuedFor"`
	// DuplicateAcks records and pushes a share of statuses twice.
	DuplicateAcks float64 `json:"duplicateAcks"`
	// OutOfOrderAcks delivers a share of messages' statuses out of order:
	// delivered before sent, or read before delivered (their timestamps stay
	// true, only the arrival order changes, as with Meta).
	OutOfOrderAcks float64 `json:"outOfOrderAcks"`
	// Down closes every connection to a channel path at once, without an
	// answer, as if 1MSG were unreachable. Nothing is accepted. The
	// /_sandbox/ paths keep working.
	Down bool `json:"down"`

	// Meta's limits, enforced when positive.
	//
	// RatePerSecond is the channel's throughput (Meta: 80 mps by default).
	// Exceeding it answers HTTP 429 with Meta error 130429 "Rate limit hit".
	RatePerSecond float64 `json:"ratePerSecond"`
	// PairInterval is the least gap between two messages to one recipient
	// (Meta: 6s). Violating it answers HTTP 200 {"sent":false} with Meta
	// error 131056, like every other rejection Meta returns through 1MSG's
	// send pipeline; 1MSG documents 429 only for its own limiter.
	PairInterval time.Duration `json:"pairInterval"`

	// StatusLatency delays every GET /status answer, so that a test can see
	// whether two clients probe the channel at once (Server.Calls).
	StatusLatency time.Duration `json:"statusLatency"`
}

// Validate reports the first field that is out of range.
func (f Faults) Validate() error {
	shares := []struct {
		name string
		v    float64
	}{
		{"status429", f.Status429}, {"status5xx", f.Status5xx},
		{"acceptThenDrop", f.AcceptThenDrop}, {"slow", f.Slow}, {"hang", f.Hang},
		{"queued", f.Queued}, {"duplicateAcks", f.DuplicateAcks},
		{"outOfOrderAcks", f.OutOfOrderAcks},
	}
	for _, s := range shares {
		if !(s.v >= 0 && s.v <= 1) { // also catches NaN
			return fmt.Errorf("faults: %s = %v is not a share in [0,1]", s.name, s.v)
		}
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"retryAfter", f.RetryAfter}, {"slowBy", f.SlowBy}, {"latency", f.Latency},
		{"queuedFor", f.QueuedFor}, {"pairInterval", f.PairInterval}, {"statusLatency", f.StatusLatency},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("faults: %s = %v is negative", d.name, d.v)
		}
	}
	if !(f.RatePerSecond >= 0) {
		return fmt.Errorf("faults: ratePerSecond = %v must be zero (off) or positive", f.RatePerSecond)
	}
	return nil
}

// jsonDuration reads a Go duration string or a number of milliseconds and
// writes a duration string, so a shell script can say either "1.5s" or 1500.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*d = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			// A bare number in a string is milliseconds too.
			ms, errNum := strconv.ParseFloat(s, 64)
			if errNum != nil {
				return fmt.Errorf("duration %q: want a Go duration like \"250ms\" or a number of milliseconds", s)
			}
			v = time.Duration(ms * float64(time.Millisecond))
		}
		*d = jsonDuration(v)
		return nil
	}
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a Go duration string or a number of milliseconds", b)
	}
	*d = jsonDuration(ms * float64(time.Millisecond))
	return nil
}

// faultsJSON mirrors Faults with durations that accept both notations.
type faultsJSON struct {
	Status429      float64      `json:"status429"`
	RetryAfter     jsonDuration `json:"retryAfter"`
	Status5xx      float64      `json:"status5xx"`
	AcceptThenDrop float64      `json:"acceptThenDrop"`
	Slow           float64      `json:"slow"`
	SlowBy         jsonDuration `json:"slowBy"`
	Hang           float64      `json:"hang"`
	Latency        jsonDuration `json:"latency"`
	Queued         float64      `json:"queued"`
	QueuedFor      jsonDuration `json:"queuedFor"`
	DuplicateAcks  float64      `json:"duplicateAcks"`
	OutOfOrderAcks float64      `json:"outOfOrderAcks"`
	Down           bool         `json:"down"`
	RatePerSecond  float64      `json:"ratePerSecond"`
	PairInterval   jsonDuration `json:"pairInterval"`
	StatusLatency  jsonDuration `json:"statusLatency"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Status429: f.Status429, RetryAfter: jsonDuration(f.RetryAfter),
		Status5xx: f.Status5xx, AcceptThenDrop: f.AcceptThenDrop,
		Slow: f.Slow, SlowBy: jsonDuration(f.SlowBy), Hang: f.Hang,
		Latency: jsonDuration(f.Latency), Queued: f.Queued, QueuedFor: jsonDuration(f.QueuedFor),
		DuplicateAcks: f.DuplicateAcks, OutOfOrderAcks: f.OutOfOrderAcks, Down: f.Down,
		RatePerSecond: f.RatePerSecond, PairInterval: jsonDuration(f.PairInterval),
		StatusLatency: jsonDuration(f.StatusLatency),
	})
}

// UnmarshalJSON reads durations as Go duration strings or milliseconds.
// Unknown fields are an error, so a typo does not silently inject nothing.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if dec.More() {
		return errors.New("faults: trailing data after the JSON object")
	}
	*f = Faults{
		Status429: j.Status429, RetryAfter: time.Duration(j.RetryAfter),
		Status5xx: j.Status5xx, AcceptThenDrop: j.AcceptThenDrop,
		Slow: j.Slow, SlowBy: time.Duration(j.SlowBy), Hang: j.Hang,
		Latency: time.Duration(j.Latency), Queued: j.Queued, QueuedFor: time.Duration(j.QueuedFor),
		DuplicateAcks: j.DuplicateAcks, OutOfOrderAcks: j.OutOfOrderAcks, Down: j.Down,
		RatePerSecond: j.RatePerSecond, PairInterval: time.Duration(j.PairInterval),
		StatusLatency: time.Duration(j.StatusLatency),
	}
	return nil
}
