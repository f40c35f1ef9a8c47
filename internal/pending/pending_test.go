package pending_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/pending"
)

func TestSettled(t *testing.T) {
	t.Parallel()
	s := pending.New()
	endA := s.Begin()
	endB := s.Begin()
	m := s.Mark()
	endC := s.Begin() // begun after the mark: never waited for
	tests := []struct {
		end  func()
		want bool
	}{
		{endB, false}, // A still open
		{endA, true},  // both before the mark ended; C does not count
		{endC, true},
	}
	for i, tt := range tests {
		tt.end()
		if got := s.Settled(m); got != tt.want {
			t.Errorf("step %d: Settled = %v, want %v", i, got, tt.want)
		}
	}
	endA() // a second end changes nothing
	if !s.Settled(s.Mark()) {
		t.Error("nothing open, yet not settled")
	}
}

func TestWaitEndsWithTheSendsBefore(t *testing.T) {
	t.Parallel()
	s := pending.New()
	end := s.Begin()
	m := s.Mark()
	later := s.Begin()
	defer later()
	done := make(chan error, 1)
	go func() { done <- s.Wait(context.Background(), m) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with a send still open", err)
	default:
	}
	end()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A send that never ends: Wait gives up with its context.
	stuck := s.Begin()
	defer stuck()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx, s.Mark()); err != context.DeadlineExceeded {
		t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
	}
}

func TestNilTracksNothing(t *testing.T) {
	t.Parallel()
	var s *pending.Sends
	s.Begin()()
	if !s.Settled(s.Mark()) || s.Wait(context.Background(), s.Mark()) != nil {
		t.Fatal("a nil Sends must never make anyone wait")
	}
}

func Example() {
	sends := pending.New()
	end := sends.Begin() // a send worker posts to 1MSG

	// A webhook arrives for a wamid nobody has recorded yet.
	arrived := sends.Mark()
	fmt.Println("settled on arrival:", sends.Settled(arrived))

	end() // the worker committed 1MSG's answer
	fmt.Println("settled after the commit:", sends.Settled(arrived))
	// Output:
	// settled on arrival: false
	// settled after the commit: true
}
