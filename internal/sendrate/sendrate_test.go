package sendrate_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/sendrate"
)

// Three limiters on one channel, as three daemons would run them, share
// the channel's rate: together they never hand out more than the rate
// allows since the first send plus one burst, and each gets sends.
func TestLimitersShareOneRate(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const rate, total = 40.0, 60
	burst := sendrate.Burst(rate)
	var granted atomic.Int64
	perLimiter := make([]atomic.Int64, 3)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range perLimiter {
		l := sendrate.New(pool, "default", rate, nil)
		go l.Run(ctx)
		for range 4 { // send workers of one daemon
			wg.Go(func() {
				for granted.Load() < total {
					if err := l.Wait(ctx); err != nil {
						return
					}
					if granted.Add(1) <= total {
						perLimiter[i].Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("only %d of %d sends handed out before the deadline", granted.Load(), total)
	}
	// A token bucket of `burst` refilled at `rate` cannot hand out `total`
	// sends in less than (total - burst) / rate, however the three share.
	if least := time.Duration(float64(total-burst) / rate * float64(time.Second)); elapsed < least {
		t.Errorf("%d sends in %s across three limiters; the rate %.0f/s with a burst of %d allows no less than %s", total, elapsed, rate, burst, least)
	}
	for i := range perLimiter {
		if perLimiter[i].Load() == 0 {
			t.Errorf("limiter %d got no send of %d: the bucket is not shared", i, total)
		}
	}
}

func TestBurst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate float64
		want int
	}{{0.5, 1}, {1, 1}, {20, 4}, {80, 16}, {81, 17}} {
		if got := sendrate.Burst(tt.rate); got != tt.want {
			t.Errorf("Burst(%v) = %d, want %d", tt.rate, got, tt.want)
		}
	}
}

// A limiter takes from the bucket only for the sends its jobs wait for:
// one job sending one message after another leaves no sends taken and
// unused, which the daemon could spend in a later second on top of the
// rate.
func TestLimiterTakesOnlyWhatIsWaitedFor(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const rate, sends = 400.0, 60
	l := sendrate.New(pool, "default", rate, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.Run(runCtx) }()
	for i := range sends {
		if err := l.Wait(ctx); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	stop()
	<-done
	if taken, _ := l.Stats(); taken != sends {
		t.Errorf("%d sends taken from the bucket for %d waited for", taken, sends)
	}
}
