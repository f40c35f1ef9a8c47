package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// sendsFirst lets hookInfo polls give way to sends on a busy machine. A
// send counts itself from the moment its rate allowed it until its
// sendTemplate request goes out; a poll about to start waits while any
// send does, for at most pollYield. Measured on two cores after a
// 10,000-row burst, the burst's polls (twenty at a time) were what delayed
// the next sends (README, "How messages are followed").
type sendsFirst struct {
	starting atomic.Int64
}

// pollYield is the longest a poll waits for sends: polls still run at
// TrackWorkers ÷ pollYield per second however many sends start.
const pollYield = 20 * time.Millisecond

// begin counts a send as starting; the returned func, safe to call more
// than once, ends that.
func (g *sendsFirst) begin() func() {
	g.starting.Add(1)
	var once sync.Once
	return func() { once.Do(func() { g.starting.Add(-1) }) }
}

// yield waits until no send is starting, pollYield at most.
func (g *sendsFirst) yield(ctx context.Context) {
	if g.starting.Load() == 0 {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	deadline := time.After(pollYield)
	for g.starting.Load() > 0 {
		select {
		case <-t.C:
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}
