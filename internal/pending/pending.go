// Package pending tracks this process's sendTemplate calls from the request
// to the committed answer, so that a webhook status for a wamid nobody has
// recorded yet can wait for the sends that may still record it instead of
// being held in webhook_orphan (a row written and deleted again, about half a
// kilobyte of WAL per message when 1MSG pushes `sent` before its answer to
// the send is committed).
package pending

import (
	"context"
	"sync"
)

// Sends counts sends in flight. The zero value is not usable; use New. A nil
// *Sends tracks nothing: Begin returns a no-op and Wait returns at once.
type Sends struct {
	mu      sync.Mutex
	next    uint64              // sequence number of the next Begin
	open    map[uint64]struct{} // sends begun and not ended
	low     uint64              // smallest open sequence number; next when none is open
	changed chan struct{}       // closed and replaced when low advances
}

// New returns an empty Sends.
func New() *Sends {
	return &Sends{open: map[uint64]struct{}{}, changed: make(chan struct{})}
}

// Begin records a send about to be requested. The returned end must be
// called once its outcome is committed or abandoned; calling it again does
// nothing.
func (s *Sends) Begin() (end func()) {
	if s == nil {
		return func() {}
	}
	s.mu.Lock()
	seq := s.next
	s.next++
	if len(s.open) == 0 {
		s.low = seq
	}
	s.open[seq] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.end(seq) }) }
}

func (s *Sends) end(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, seq)
	if seq != s.low {
		return
	}
	// Sends end in about the order they began, so the new low is near.
	s.low = s.next
	for q := range s.open {
		s.low = min(s.low, q)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Mark is a point in the sequence of sends: those begun before it.
type Mark uint64

// Mark returns the point after every send begun so far.
func (s *Sends) Mark() Mark {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Mark(s.next)
}

// Settled reports whether every send begun before m has ended.
func (s *Sends) Settled(m Mark) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settled(m)
}

// settled is Settled with s.mu held.
func (s *Sends) settled(m Mark) bool { return len(s.open) == 0 || s.low >= uint64(m) }

// Wait blocks until every send begun before m has ended, or ctx ends; it
// returns ctx's error in the latter case.
func (s *Sends) Wait(ctx context.Context, m Mark) error {
	if s == nil {
		return nil
	}
	for {
		s.mu.Lock()
		if s.settled(m) {
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
