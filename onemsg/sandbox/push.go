package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxRetryBackoff caps the gap between two attempts of one push.
const maxRetryBackoff = 15 * time.Second

// ackItem is one status report waiting to be pushed.
type ackItem struct {
	gen      uint64
	entry    statusEntry
	phone    string
	category string
	errText  string // Meta error title, failed only
}

// pushJob is one POST of a batch of acks to one webhook URL.
type pushJob struct {
	gen     uint64
	url     string
	body    []byte
	acks    int
	first   time.Time
	attempt int
}

// pusher collects reports into batches and hands POSTs to a fixed pool of
// workers, so a burst of reports costs queue entries, not goroutines.
type pusher struct {
	mu      sync.Mutex
	pending []ackItem
	kick    chan struct{} // something is pending
	full    chan struct{} // a whole batch is pending: do not wait for the window
	jobs    chan *pushJob
	client  *http.Client
	// outstanding counts push jobs created and not yet finished (delivered,
	// dropped or made stale by a reset), retries included.
	outstanding atomic.Int64
}

// pendingAcks returns how much is still on its way to the webhooks: acks
// waiting for their batch plus POSTs not finished.
func (p *pusher) pendingAcks() int64 {
	p.mu.Lock()
	n := int64(len(p.pending))
	p.mu.Unlock()
	return n + p.outstanding.Load()
}

func newPusher(workers int) *pusher {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	return &pusher{
		kick:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		jobs:   make(chan *pushJob, 4*workers),
		client: &http.Client{Transport: tr},
	}
}

func (p *pusher) add(a ackItem, batchMax int) {
	p.mu.Lock()
	p.pending = append(p.pending, a)
	n := len(p.pending)
	p.mu.Unlock()
	signal(p.kick)
	if n >= batchMax {
		signal(p.full)
	}
}

func (p *pusher) take() []ackItem {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.pending
	p.pending = nil
	return out
}

func (p *pusher) clear() { p.take() }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// batchAcks waits for reports, lets the ones due together gather for
// AckBatchWindow (or until AckBatchMax are pending) and turns them into
// push jobs, one per batch and webhook URL.
func (s *Server) batchAcks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.push.kick:
		}
		window := time.NewTimer(s.cfg.AckBatchWindow)
		select {
		case <-ctx.Done():
			window.Stop()
			return
		case <-window.C:
		case <-s.push.full:
		}
		window.Stop()
		s.flushAcks(ctx, s.push.take())
	}
}

// flushAcks sends items to the webhooks registered now. Reports made while
// no webhook was registered or ack notifications were off are not pushed
// later, as with 1MSG.
func (s *Server) flushAcks(ctx context.Context, items []ackItem) {
	s.mu.Lock()
	set, gen := s.settings.clone(), s.gen
	s.mu.Unlock()
	if s.cfg.WebhooksDisabled || !set.AckNotificationsOn || len(set.WebhookURLs) == 0 {
		return
	}
	live := items[:0]
	for _, it := range items {
		if it.gen == gen {
			live = append(live, it)
		}
	}
	for len(live) > 0 {
		n := min(len(live), s.cfg.AckBatchMax)
		batch := live[:n]
		live = live[n:]
		body, err := s.ackPayload(batch, set.RawHooks)
		if err != nil {
			s.log.Error("sandbox: encoding an ack push", "err", err)
			continue
		}
		now := time.Now()
		for _, u := range set.WebhookURLs {
			job := &pushJob{gen: gen, url: u, body: body, acks: n, first: now}
			s.push.outstanding.Add(1)
			select {
			case s.push.jobs <- job:
			case <-ctx.Done():
				s.push.outstanding.Add(-1)
				return
			}
		}
	}
}

// ackPayload renders a batch in 1MSG's normalized shape
// {"instanceId","ack":[…]} (no timestamps: 1MSG's acks carry none) or, with
// rawHooks, as Meta's whatsapp_business_account notification.
func (s *Server) ackPayload(batch []ackItem, raw bool) ([]byte, error) {
	if !raw {
		type ack struct {
			ID       string `json:"id"`
			ChatID   string `json:"chatId"`
			Phone    string `json:"phone"`
			Status   string `json:"status"`
			Category string `json:"category"`
			Error    string `json:"error,omitempty"`
		}
		acks := make([]ack, len(batch))
		for i, it := range batch {
			acks[i] = ack{ID: it.entry.ID, ChatID: it.phone + "@c.us", Phone: it.phone,
				Status: it.entry.Status, Category: it.category, Error: it.errText}
		}
		return marshalCompact(struct {
			InstanceID string `json:"instanceId"`
			Ack        []ack  `json:"ack"`
		}{s.cfg.Channel, acks})
	}
	statuses := make([]statusEntry, len(batch))
	for i, it := range batch {
		statuses[i] = it.entry
	}
	type metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	}
	type value struct {
		MessagingProduct string        `json:"messaging_product"`
		Metadata         metadata      `json:"metadata"`
		Statuses         []statusEntry `json:"statuses"`
	}
	type change struct {
		Value value  `json:"value"`
		Field string `json:"field"`
	}
	type entry struct {
		ID      string   `json:"id"`
		Changes []change `json:"changes"`
	}
	return marshalCompact(struct {
		Object string  `json:"object"`
		Entry  []entry `json:"entry"`
	}{"whatsapp_business_account", []entry{{
		ID: s.wabaID,
		Changes: []change{{
			Field: "messages",
			Value: value{
				MessagingProduct: "whatsapp",
				Metadata:         metadata{DisplayPhoneNumber: s.cfg.BusinessPhone, PhoneNumberID: s.phoneNumberID},
				Statuses:         statuses,
			},
		}},
	}}})
}

func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// pushWorker delivers push jobs until the server closes.
func (s *Server) pushWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-s.push.jobs:
			s.deliver(ctx, job)
		}
	}
}

// deliver POSTs one job. A failure (transport error or non-2xx) is retried
// with exponential back-off, like 1MSG's guaranteed hooks, until
// WebhookRetryFor has passed since the first attempt; then the job is
// dropped and counted.
func (s *Server) deliver(ctx context.Context, job *pushJob) {
	retrying := false
	defer func() {
		if !retrying {
			s.push.outstanding.Add(-1)
		}
	}()
	s.mu.Lock()
	stale := job.gen != s.gen
	s.mu.Unlock()
	if stale {
		return
	}
	err := s.post(ctx, job)
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if job.gen != s.gen {
		return
	}
	if err == nil {
		s.stats.WebhookPushes++
		s.stats.AcksPushed += int64(job.acks)
		return
	}
	s.stats.WebhookPushFailures++
	backoff := maxRetryBackoff
	if job.attempt < 16 { // beyond that the shift could overflow
		backoff = min(s.cfg.WebhookRetryMin<<job.attempt, maxRetryBackoff)
	}
	next := time.Now().Add(backoff)
	if next.Sub(job.first) > s.cfg.WebhookRetryFor {
		s.stats.WebhookPushesDropped++
		s.log.Warn("sandbox: webhook push dropped after retries", "url", job.url,
			"attempts", job.attempt+1, "acks", job.acks, "err", err)
		return
	}
	s.log.Debug("sandbox: webhook push failed, will retry", "url", job.url,
		"attempt", job.attempt+1, "in", backoff, "err", err)
	job.attempt++
	retrying = true
	s.sched.at(next, func() { s.requeue(ctx, job) })
}

// requeue runs on the scheduler goroutine, which must not block: when the
// workers are all busy the job waits a little longer.
func (s *Server) requeue(ctx context.Context, job *pushJob) {
	select {
	case s.push.jobs <- job:
	case <-ctx.Done():
	default:
		s.sched.at(time.Now().Add(50*time.Millisecond), func() { s.requeue(ctx, job) })
	}
}

func (s *Server) post(ctx context.Context, job *pushJob) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.url, bytes.NewReader(job.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "1msg-sandbox")
	resp, err := s.push.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}
