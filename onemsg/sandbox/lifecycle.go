package sandbox

import (
	"container/heap"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// step is one status report planned for a message, as offsets from its
// acceptance: when the status happens (its timestamp) and when the report
// arrives (recorded and pushed). They differ only for out-of-order acks.
type step struct {
	status    string
	happens   time.Duration
	arrives   time.Duration
	duplicate bool
}

// planLocked decides what WhatsApp will report about a message accepted now.
func (s *Server) planLocked(phone string) (final string, steps []step, failure *MetaError) {
	f := s.faults
	fail := s.chanceLocked(s.cfg.FailRate)
	for _, suffix := range s.cfg.FailSuffixes {
		if suffix != "" && strings.HasSuffix(phone, suffix) {
			fail = true
		}
	}
	at := func(status string, d time.Duration) step { return step{status: status, happens: d, arrives: d} }
	steps = append(steps, at(StatusSent, s.cfg.SentAfter))
	switch {
	case fail:
		final = StatusFailed
		steps = append(steps, at(StatusFailed, s.cfg.DeliveredAfter))
		failure = &MetaError{Code: s.cfg.FailCode, Title: s.cfg.FailText, Message: s.cfg.FailText, Details: s.cfg.FailText}
	case s.chanceLocked(s.cfg.NoReadRate):
		final = StatusDelivered
		steps = append(steps, at(StatusDelivered, s.cfg.DeliveredAfter))
	default:
		final = StatusRead
		steps = append(steps, at(StatusDelivered, s.cfg.DeliveredAfter), at(StatusRead, s.cfg.ReadAfter))
	}
	if s.chanceLocked(f.OutOfOrderAcks) {
		// The earlier of two neighbouring reports is held back until just
		// after the later one: delivered before sent, or read before
		// delivered. Timestamps stay true.
		i := s.rng.IntN(len(steps) - 1)
		steps[i].arrives = steps[i+1].arrives + time.Millisecond
	}
	if f.DuplicateAcks > 0 {
		for _, st := range steps {
			if s.chanceLocked(f.DuplicateAcks) {
				dup := st
				dup.arrives += 5 * time.Millisecond
				dup.duplicate = true
				steps = append(steps, dup)
			}
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int { return int(a.arrives - b.arrives) })
	return final, steps, failure
}

// acceptLocked accepts a validated message: it gets its wamid and number,
// the reports due at once are recorded before the client hears sent:true,
// and the later ones go to the scheduler.
func (s *Server) acceptLocked(snd sendable, requested, now time.Time, jobID string, dropped bool) *message {
	s.msgNumber++
	category := strings.ToLower(snd.tpl.Category)
	conv, ok := s.conversations[snd.phone]
	if !ok || !now.Before(conv.expires) {
		// Meta opens a 24-hour conversation with the first template.
		conv = conversation{id: s.randHexLocked(32), origin: category, expires: now.Add(24 * time.Hour)}
		s.conversations[snd.phone] = conv
	}
	m := &message{Message: Message{
		ID:          s.newIDLocked(snd.phone),
		Number:      s.msgNumber,
		Phone:       snd.phone,
		ChatID:      snd.phone + "@c.us",
		Template:    snd.tpl.Name,
		Namespace:   snd.tpl.Namespace,
		Language:    snd.tpl.Language,
		Category:    category,
		Params:      snd.params,
		Body:        snd.body,
		JobID:       jobID,
		RequestedAt: requested,
		AcceptedAt:  now,
		Dropped:     dropped,
	}, conv: conv}
	final, steps, failure := s.planLocked(snd.phone)
	m.Planned, m.Error = final, failure
	s.messages = append(s.messages, m)
	s.byID[m.ID] = m
	s.stats.Accepted++
	s.stats.AcceptedByPhone[snd.phone]++
	gen := s.gen
	for _, st := range steps {
		if st.arrives <= 0 {
			s.reportLocked(m, st)
			continue
		}
		s.sched.at(now.Add(st.arrives), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.gen == gen {
				s.reportLocked(m, st)
			}
		})
	}
	s.log.Debug("sandbox: accepted", "id", m.ID, "phone", m.Phone, "planned", final, "job_id", jobID)
	return m
}

// reportLocked records a status report and hands it to the ack pusher.
func (s *Server) reportLocked(m *message, st step) {
	ch := StatusChange{
		Status:    st.status,
		Timestamp: m.AcceptedAt.Add(st.happens),
		Arrived:   time.Now(),
		Duplicate: st.duplicate,
	}
	m.Statuses = append(m.Statuses, ch)
	if statusRank[ch.Status] > statusRank[m.Status] {
		m.Status = ch.Status
	}
	s.stats.StatusReports++
	if s.cfg.WebhooksDisabled {
		return
	}
	ack := ackItem{gen: s.gen, entry: m.entry(ch), phone: m.Phone, category: m.Category}
	if ch.Status == StatusFailed && m.Error != nil {
		ack.errText = m.Error.Title
	}
	s.push.add(ack, s.cfg.AckBatchMax)
}

// statusEntry is a Meta status object: a /hookInfo entry (with type
// "message") and, in raw hooks, an entry of value.statuses.
type statusEntry struct {
	ID           string            `json:"id"`
	Type         string            `json:"type,omitempty"`
	Status       string            `json:"status"`
	Timestamp    string            `json:"timestamp"`
	RecipientID  string            `json:"recipient_id"`
	Conversation *conversationJSON `json:"conversation,omitempty"`
	Pricing      *pricingJSON      `json:"pricing,omitempty"`
	Errors       []errorJSON       `json:"errors,omitempty"`
}

type conversationJSON struct {
	ID     string `json:"id"`
	Origin struct {
		Type string `json:"type"`
	} `json:"origin"`
	ExpirationTimestamp int64 `json:"expiration_timestamp"`
}

// pricingJSON is Meta's per-message pricing (pricing_model PMP, since July
// 2025): a template sent outside a customer-service window is charged as
// "regular" in the template's category.
type pricingJSON struct {
	Billable     bool   `json:"billable"`
	Category     string `json:"category"`
	PricingModel string `json:"pricing_model"`
	Type         string `json:"type"`
}

type errorJSON struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

// entry renders a report the way Meta does: sent and delivered carry the
// conversation and pricing, read carries neither, failed carries errors.
func (m *message) entry(ch StatusChange) statusEntry {
	e := statusEntry{
		ID:          m.ID,
		Status:      ch.Status,
		Timestamp:   strconv.FormatInt(ch.Timestamp.Unix(), 10),
		RecipientID: m.Phone,
	}
	switch ch.Status {
	case StatusSent, StatusDelivered:
		c := &conversationJSON{ID: m.conv.id, ExpirationTimestamp: m.conv.expires.Unix()}
		c.Origin.Type = m.conv.origin
		e.Conversation = c
		e.Pricing = &pricingJSON{Billable: true, Category: m.Category, PricingModel: "PMP", Type: "regular"}
	case StatusFailed:
		if m.Error != nil {
			var ej errorJSON
			ej.Code, ej.Title, ej.Message = m.Error.Code, m.Error.Title, m.Error.Message
			ej.ErrorData.Details = m.Error.Details
			e.Errors = []errorJSON{ej}
		}
	}
	return e
}

// scheduler runs functions at given times from one goroutine and a heap,
// so a thousand messages a second with three reports each cost heap
// entries, not goroutines or timers.
type scheduler struct {
	mu     sync.Mutex
	events eventHeap
	seq    uint64
	wake   chan struct{}
}

type event struct {
	at  time.Time
	seq uint64 // keeps events due at the same time in the order they were added
	run func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return e
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1)}
}

// at schedules fn to run at t (at once if t is past). fn runs on the
// scheduler goroutine and must not block for long.
func (sc *scheduler) at(t time.Time, fn func()) {
	sc.mu.Lock()
	sc.seq++
	heap.Push(&sc.events, event{at: t, seq: sc.seq, run: fn})
	first := sc.events[0].seq == sc.seq
	sc.mu.Unlock()
	if first {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// clear drops every pending event.
func (sc *scheduler) clear() {
	sc.mu.Lock()
	sc.events = nil
	sc.mu.Unlock()
}

func (sc *scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due []func()
	for {
		sc.mu.Lock()
		now := time.Now()
		due = due[:0]
		for len(sc.events) > 0 && !sc.events[0].at.After(now) {
			due = append(due, heap.Pop(&sc.events).(event).run)
		}
		wait := time.Duration(-1)
		if len(sc.events) > 0 {
			wait = sc.events[0].at.Sub(now)
		}
		sc.mu.Unlock()
		if len(due) > 0 {
			for i, fn := range due {
				fn()
				due[i] = nil
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-sc.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}
