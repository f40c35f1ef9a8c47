package jobs

import (
	"context"
	"testing"
	"time"
)

// A poll waits while a send is starting, no longer than pollYield, and not
// at all when none is.
func TestSendsFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var g sendsFirst

	start := time.Now()
	g.yield(ctx)
	if d := time.Since(start); d >= pollYield {
		t.Errorf("yield with no send starting took %s", d)
	}

	done := g.begin()
	start = time.Now()
	g.yield(ctx)
	if d := time.Since(start); d < pollYield {
		t.Errorf("yield returned after %s while a send was starting; want pollYield (%s)", d, pollYield)
	}
	done()
	done() // a second call changes nothing
	if n := g.starting.Load(); n != 0 {
		t.Errorf("%d sends starting after done, want 0", n)
	}
}
