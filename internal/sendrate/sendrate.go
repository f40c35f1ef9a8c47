// Package sendrate shares a channel's send rate among every daemon on the
// schema (README.md, "One rate per channel across instances").
//
// Each channel has one token bucket row in Postgres (table send_rate). A
// daemon's Limiter takes whole sends from it a few at a time with one
// statement (send_rate_take), refilled by the time elapsed on the
// database's clock, and hands them to its waiting send jobs. There is no
// lease and no share to rebalance: a daemon that stops polling simply stops
// taking, and the others find the bucket fuller at their next take. A dead
// daemon loses at most the sends it had taken and not used, at most one
// burst.
package sendrate

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BurstSeconds sizes a channel's bucket: it holds at most this many
// seconds' worth of its rate (at least one send). It bounds how far any
// one-second window may exceed the rate: rate × (1 + BurstSeconds).
const BurstSeconds = 0.2

// Burst is the bucket size for rate: the most sends any daemon takes at
// once, and the burst allowance above the rate in any one-second window.
func Burst(rate float64) int {
	return max(1, int(math.Ceil(rate*BurstSeconds)))
}

// minPoll bounds how often a starved daemon asks again.
const minPoll = 5 * time.Millisecond

// Limiter paces one channel's sends for this daemon against the shared
// bucket. Wait blocks until a send may go; Run does the taking and must run
// while anything waits. It is safe for concurrent use.
//
// It takes only for Wait calls not served yet, and hands each send to one
// of them under the same lock that counts them: a send taken from the
// bucket is used at once, so no daemon keeps a stock of sends to spend in
// a later second (which would let the channel exceed its rate there).
type Limiter struct {
	pool    *pgxpool.Pool
	channel string
	rate    float64
	burst   int
	logger  *slog.Logger

	kick chan struct{} // a Wait call arrived

	mu      sync.Mutex
	queue   []chan struct{} // Wait calls without a send, oldest first
	spare   int             // sends taken whose Wait call gave up; the next calls use them
	taken   int64
	queries int64
}

// New returns the limiter of channel at rate sends per second for all
// daemons together (rate > 0).
func New(pool *pgxpool.Pool, channel string, rate float64, logger *slog.Logger) *Limiter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Limiter{pool: pool, channel: channel, rate: rate, burst: Burst(rate), logger: logger.With("channel", channel),
		kick: make(chan struct{}, 1)}
}

// Channel is the channel's name.
func (l *Limiter) Channel() string { return l.channel }

// Stats are what the limiter did so far: sends taken from the bucket and
// the statements that took them.
func (l *Limiter) Stats() (taken, queries int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken, l.queries
}

// Wait blocks until one send may go now, or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	if l.spare > 0 {
		l.spare--
		l.mu.Unlock()
		return nil
	}
	granted := make(chan struct{}, 1)
	l.queue = append(l.queue, granted)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	select {
	case <-granted:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(l.queue, granted); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	} else {
		l.handOut(1) // served as ctx ended: the send goes to the next call
	}
	return ctx.Err()
}

// want is how many sends to take now: one per unserved Wait call, at most
// a burst.
func (l *Limiter) want() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(len(l.queue), l.burst)
}

// grant hands n sends taken from the bucket to the oldest Wait calls.
func (l *Limiter) grant(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handOut(n)
}

// handOut gives n sends to the oldest Wait calls; any left over (their
// calls gave up meanwhile) wait for the next calls. l.mu is held.
func (l *Limiter) handOut(n int) {
	k := min(n, len(l.queue))
	for _, c := range l.queue[:k] {
		c <- struct{}{}
	}
	l.queue = slices.Delete(l.queue, 0, k)
	l.spare += n - k
}

// Run takes sends from the shared bucket while jobs wait, until ctx ends.
// A database error is logged once per outage and retried; sends wait
// meanwhile.
func (l *Limiter) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		want := l.want()
		if want <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.kick:
			}
			continue
		}
		got, left, err := l.take(ctx, want)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				l.logger.Warn("cannot take sends from the shared rate limit; sends wait until the database answers", "error", err)
			}
			sleep(ctx, min(time.Duration(failures)*100*time.Millisecond, 2*time.Second))
			continue
		}
		if failures > 0 {
			l.logger.Info("shared rate limit reachable again")
			failures = 0
		}
		l.grant(got)
		if got >= want {
			continue
		}
		// Short: come back when the rest will have accrued, or when the
		// bucket would be full, whichever is sooner. The other daemons take
		// from the same bucket meanwhile; that is the sharing.
		need := float64(want-got) - left
		d := time.Duration(need / l.rate * float64(time.Second))
		d = min(max(d, minPoll), time.Duration(float64(l.burst)/l.rate*float64(time.Second)))
		sleep(ctx, d)
	}
}

func (l *Limiter) take(ctx context.Context, want int) (int, float64, error) {
	var got int
	var left float64
	err := l.pool.QueryRow(ctx, "SELECT granted, tokens_left FROM send_rate_take($1, $2, $3, $4)",
		l.channel, want, l.rate, float64(l.burst)).Scan(&got, &left)
	if err != nil {
		return 0, 0, fmt.Errorf("send_rate_take(%s): %w", l.channel, err)
	}
	l.mu.Lock()
	l.taken += int64(got)
	l.queries++
	l.mu.Unlock()
	return got, left, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
