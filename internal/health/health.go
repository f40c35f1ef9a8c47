// Package health keeps each 1MSG channel's health (README "Channel
// health"): the channel_health table every daemon on the schema shares, the
// in-memory view the send workers consult before each send, and the prober
// that brings a held channel back.
//
// A refusal that no single message caused (bad token, template paused,
// channel not connected, account locked) holds the channel: its sends wait,
// still queued. One daemon at a time probes it (GET /status, GET
// /templates) with back-off up to a minute; when the probe passes, one real
// held send is let through as a trial, and when 1MSG takes it the channel is
// healthy again and the held sends are woken.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/onemsg"
)

// Default is the name of the channel the ONEMSG_* variables define.
const Default = "default"

// State is a channel's state (channel_health.state).
type State string

// The states of a channel.
const (
	Healthy State = "healthy" // sends go out
	Held    State = "held"    // no sends until a probe passes
	Trial   State = "trial"   // the probe passed; one real send decides
)

// Status is a channel's row, as `cancelnotify status`, `check`, /readyz and
// the gauges show it.
type Status struct {
	Channel        string     `json:"channel"`
	State          State      `json:"state"`
	Since          time.Time  `json:"since"`
	ErrorCode      string     `json:"error_code,omitempty"`
	Error          string     `json:"error,omitempty"`
	ProbeAt        *time.Time `json:"probe_at,omitempty"`
	Probes         int        `json:"probes"`
	LastProbeAt    *time.Time `json:"last_probe_at,omitempty"`
	LastProbeError string     `json:"last_probe_error,omitempty"`
	trialJob       int64
	trialUntil     *time.Time
	// Held counts the channel's queued notifications while it is not
	// healthy (0 when healthy): the messages waiting for it.
	Held int64 `json:"held"`
}

// Healthy reports whether the channel's sends go out.
func (s Status) Healthy() bool { return s.State == "" || s.State == Healthy }

// Describe says in one line what holds the channel, for people.
func (s Status) Describe() string {
	if s.Healthy() {
		return "healthy"
	}
	d := fmt.Sprintf("held since %s (%s): %s %s", s.Since.UTC().Format(time.RFC3339), time.Since(s.Since).Round(time.Second),
		s.ErrorCode, s.Error)
	if s.State == Trial {
		d += "; probe passed, one send decides"
	} else if s.LastProbeError != "" {
		d += "; last probe: " + s.LastProbeError
	}
	return fmt.Sprintf("%s; %d messages waiting", d, s.Held)
}

// DB is what Read needs.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const statusColumns = `channel, state, since, coalesce(error_code, ''), coalesce(error, ''), probe_at, probes,
	last_probe_at, coalesce(last_probe_error, ''), coalesce(trial_job_id, 0), trial_until,
	CASE WHEN state = 'healthy' THEN 0 ELSE (SELECT count(*) FROM notification n WHERE n.wamid IS NULL AND n.status = 'queued' AND n.channel = h.channel) END`

// ReadAll returns the default channel and every channel that has ever been
// held, for the commands that do not know the configured channels.
func ReadAll(ctx context.Context, db DB) ([]Status, error) {
	rows, err := db.Query(ctx, "SELECT channel FROM channel_health WHERE channel <> $1 ORDER BY channel", Default)
	if err != nil {
		return nil, fmt.Errorf("read channel health: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read channel health: %w", err)
	}
	return Read(ctx, db, append([]string{Default}, names...)...)
}

// Read returns the rows of the named channels, healthy ones included (a
// channel without a row has never been held).
func Read(ctx context.Context, db DB, channels ...string) ([]Status, error) {
	rows, err := db.Query(ctx, "SELECT "+statusColumns+" FROM channel_health h WHERE channel = ANY($1) ORDER BY channel", channels)
	if err != nil {
		return nil, fmt.Errorf("read channel health: %w", err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Status, error) {
		var s Status
		err := r.Scan(&s.Channel, &s.State, &s.Since, &s.ErrorCode, &s.Error, &s.ProbeAt, &s.Probes,
			&s.LastProbeAt, &s.LastProbeError, &s.trialJob, &s.trialUntil, &s.Held)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read channel health: %w", err)
	}
	out := make([]Status, 0, len(channels))
	for _, c := range channels {
		s := Status{Channel: c, State: Healthy}
		for _, g := range got {
			if g.Channel == c {
				s = g
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// API is what a probe calls; *onemsg.Client implements it.
type API interface {
	Status(ctx context.Context) (*onemsg.ChannelStatus, error)
	Templates(ctx context.Context) ([]onemsg.Template, error)
}

// Channel is one channel to watch.
type Channel struct {
	Name      string // Default for the ONEMSG_* channel
	API       API
	Template  string // the approved template the sends use
	Namespace string
	Language  string // the channel's default language
}

// Config configures a Monitor.
type Config struct {
	Pool     *pgxpool.Pool
	Owner    string // this daemon's name in probe_owner (its River client id)
	Channels []Channel
	// Wake makes up to limit (0: all) of the channel's held sends run now;
	// the send path implements it.
	Wake func(ctx context.Context, channel string, limit int) error

	Tick       time.Duration // how often the view is refreshed and probes considered; default 500ms
	BackoffMin time.Duration // first probe after a hold; default 1s, doubling per failed probe
	BackoffMax time.Duration // longest pause between probes; default 1m
	Lease      time.Duration // how long a probe or a trial send may take before another daemon takes over; default 1m
	Logger     *slog.Logger
}

// Monitor is one daemon's part in keeping channel health.
type Monitor struct {
	cfg Config

	mu        sync.Mutex
	view      map[string]Status
	lastWake  map[string]time.Time
	refreshed bool
}

// New returns a Monitor; Run keeps it current.
func New(cfg Config) *Monitor {
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = time.Minute
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if cfg.Wake == nil {
		cfg.Wake = func(context.Context, string, int) error { return nil }
	}
	return &Monitor{cfg: cfg, view: map[string]Status{}, lastWake: map[string]time.Time{}}
}

// Names returns the watched channels' names.
func (m *Monitor) Names() []string {
	out := make([]string, len(m.cfg.Channels))
	for i, c := range m.cfg.Channels {
		out[i] = c.Name
	}
	return out
}

// BackoffMax is the longest pause between probes, and so the longest a
// held send sleeps before looking again.
func (m *Monitor) BackoffMax() time.Duration { return m.cfg.BackoffMax }

// View returns this daemon's current view of a channel (at most a Tick old).
func (m *Monitor) View(channel string) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.view[channel]; ok {
		return s
	}
	return Status{Channel: channel, State: Healthy}
}

// Snapshot returns the current view of every watched channel.
func (m *Monitor) Snapshot() []Status {
	out := make([]Status, 0, len(m.cfg.Channels))
	for _, c := range m.cfg.Channels {
		out = append(out, m.View(c.Name))
	}
	return out
}

func (m *Monitor) set(s Status) {
	m.mu.Lock()
	m.view[s.Channel] = s
	m.mu.Unlock()
}

// Refresh reads every watched channel's row into the view.
func (m *Monitor) Refresh(ctx context.Context) error {
	st, err := Read(ctx, m.cfg.Pool, m.Names()...)
	if err != nil {
		return err
	}
	m.mu.Lock()
	for _, s := range st {
		m.view[s.Channel] = s
	}
	m.refreshed = true
	m.mu.Unlock()
	return nil
}

// Run refreshes the view every Tick and probes the held channels that are
// due, until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Debug("channel health: refresh failed", "error", err)
		}
		for _, c := range m.cfg.Channels {
			s := m.View(c.Name)
			switch s.State {
			case Held:
				if s.ProbeAt == nil || !s.ProbeAt.After(time.Now()) {
					m.probe(ctx, c)
				}
			case Trial:
				m.nudgeTrial(ctx, s)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backoff is the pause before probe n+1.
func (m *Monitor) backoff(probes int) time.Duration {
	d := m.cfg.BackoffMin
	for i := 0; i < probes && d < m.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.BackoffMax)
}

// Admission is what a send may do now.
type Admission struct {
	Send  bool          // go ahead
	Trial bool          // this send is the trial that decides a probed channel
	Wait  time.Duration // when not Send: look again after this long
	Why   string        // when not Send: what holds the channel
}

// Admit says whether job may send on channel now. A healthy channel costs
// a map read; a channel in trial lets exactly one job through.
func (m *Monitor) Admit(ctx context.Context, channel string, jobID int64) (Admission, error) {
	s := m.View(channel)
	switch s.State {
	case "", Healthy:
		return Admission{Send: true}, nil
	case Trial:
		tag, err := m.cfg.Pool.Exec(ctx, `UPDATE channel_health SET trial_job_id = $2, trial_until = now() + $3::interval, updated_at = now()
			WHERE channel = $1 AND state = 'trial' AND (trial_job_id IS NULL OR trial_job_id = $2 OR trial_until < now())`,
			channel, jobID, m.cfg.Lease)
		if err != nil {
			return Admission{}, fmt.Errorf("claim the trial send of channel %s: %w", channel, err)
		}
		if tag.RowsAffected() == 1 {
			return Admission{Send: true, Trial: true}, nil
		}
		// Another send is the trial; its outcome wakes this one.
		return Admission{Wait: min(5*time.Second, m.cfg.BackoffMax), Why: s.Describe()}, nil
	}
	wait := m.cfg.BackoffMax
	if s.ProbeAt != nil {
		wait = min(max(time.Until(*s.ProbeAt)+m.cfg.Tick, time.Second), m.cfg.BackoffMax)
	}
	return Admission{Wait: wait, Why: s.Describe()}, nil
}

// Refused records a channel-wide refusal met by a send (trial or not): the
// channel is held. Only the daemon whose refusal made the channel go down
// logs it, once. It returns how long the send should wait.
func (m *Monitor) Refused(ctx context.Context, channel string, e *onemsg.Error) (time.Duration, error) {
	var s Status
	var wentDown bool
	err := pgx.BeginFunc(ctx, m.cfg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO channel_health (channel) VALUES ($1) ON CONFLICT (channel) DO NOTHING`, channel); err != nil {
			return err
		}
		var state State
		var probes int
		if err := tx.QueryRow(ctx, `SELECT state, probes FROM channel_health WHERE channel = $1 FOR UPDATE`, channel).Scan(&state, &probes); err != nil {
			return err
		}
		code, text := e.CodeString(), e.Message
		switch state {
		case Held:
			// A send that passed the gate before the hold was seen: the
			// channel is already down; keep its probe schedule.
			_, err := tx.Exec(ctx, `UPDATE channel_health SET error_code = $2, error = $3, updated_at = now() WHERE channel = $1`, channel, code, text)
			if err != nil {
				return err
			}
		case Trial:
			// The one real send of a passed probe was refused: back to probing.
			_, err := tx.Exec(ctx, `UPDATE channel_health SET state = 'held', error_code = $2, error = $3,
				probe_at = now() + $4::interval, last_probe_error = $5, trial_job_id = NULL, trial_until = NULL, updated_at = now()
				WHERE channel = $1`, channel, code, text, m.backoff(probes), "trial send refused: "+code+" "+text)
			if err != nil {
				return err
			}
		default:
			wentDown = true
			_, err := tx.Exec(ctx, `UPDATE channel_health SET state = 'held', since = now(), error_code = $2, error = $3,
				probe_at = now() + $4::interval, probes = 0, probe_owner = NULL, probe_until = NULL, last_probe_at = NULL,
				last_probe_error = NULL, trial_job_id = NULL, trial_until = NULL, updated_at = now()
				WHERE channel = $1`, channel, code, text, m.cfg.BackoffMin)
			if err != nil {
				return err
			}
		}
		st, err := Read(ctx, tx, channel)
		if err != nil {
			return err
		}
		s = st[0]
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("hold channel %s: %w", channel, err)
	}
	m.set(s)
	if wentDown {
		m.cfg.Logger.Warn("channel held: 1MSG refused a send for a reason no single message caused; sends wait, still queued, and resume by themselves once a probe succeeds",
			"channel", channel, "error_code", s.ErrorCode, "error", s.Error)
	}
	a, err := m.Admit(ctx, channel, 0)
	return a.Wait, err
}

// Answered records that the trial send of channel got an answer that proves
// the channel works (accepted, or refused for its own recipient): the
// channel is healthy and every held send is woken.
func (m *Monitor) Answered(ctx context.Context, channel string, jobID int64) error {
	return m.resume(ctx, channel, "a trial send was answered", `AND trial_job_id = $2`, jobID)
}

func (m *Monitor) resume(ctx context.Context, channel, why, cond string, arg any) error {
	var since time.Time
	var code string
	err := m.cfg.Pool.QueryRow(ctx, `UPDATE channel_health h SET state = 'healthy', since = now(), probe_at = NULL,
			probe_owner = NULL, probe_until = NULL, trial_job_id = NULL, trial_until = NULL, updated_at = now()
		FROM (SELECT since, error_code FROM channel_health WHERE channel = $1) old
		WHERE h.channel = $1 AND h.state <> 'healthy' `+cond+`
		RETURNING old.since, coalesce(old.error_code, '')`, channel, arg).Scan(&since, &code)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // another send or daemon resumed it, or it is held again
	}
	if err != nil {
		return fmt.Errorf("resume channel %s: %w", channel, err)
	}
	m.set(Status{Channel: channel, State: Healthy, Since: time.Now()})
	m.cfg.Logger.Warn("channel resumed: held sends go out again", "channel", channel, "why", why,
		"held_for", time.Since(since).Round(time.Second).String(), "refusal_was", code)
	return m.cfg.Wake(ctx, channel, 0)
}

// Release gives up job's trial claim when its send proved nothing (it was
// throttled, 1MSG was unreachable, or nothing was sent), so another may try.
func (m *Monitor) Release(ctx context.Context, channel string, jobID int64) error {
	_, err := m.cfg.Pool.Exec(ctx, `UPDATE channel_health SET trial_job_id = NULL, trial_until = NULL, updated_at = now()
		WHERE channel = $1 AND state = 'trial' AND trial_job_id = $2`, channel, jobID)
	if err != nil {
		return fmt.Errorf("release the trial send of channel %s: %w", channel, err)
	}
	return nil
}

// probe takes the channel's probe lease and, if it got it, checks GET
// /status and GET /templates. Only the daemon holding the lease probes.
func (m *Monitor) probe(ctx context.Context, c Channel) {
	var probes int
	err := m.cfg.Pool.QueryRow(ctx, `UPDATE channel_health SET probe_owner = $2, probe_until = now() + $3::interval, updated_at = now()
		WHERE channel = $1 AND state = 'held' AND (probe_at IS NULL OR probe_at <= now())
			AND (probe_until IS NULL OR probe_until < now() OR probe_owner = $2)
		RETURNING probes`, c.Name, m.cfg.Owner, m.cfg.Lease).Scan(&probes)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil {
			m.cfg.Logger.Debug("channel health: probe lease failed", "channel", c.Name, "error", err)
		}
		return // another daemon probes, or the channel is no longer held
	}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/2)
	problem := check(pctx, c)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the lease lapses and another daemon probes
	}
	if problem != "" {
		next := m.backoff(probes + 1)
		_, err := m.cfg.Pool.Exec(ctx, `UPDATE channel_health SET probes = probes + 1, probe_at = now() + $3::interval,
				last_probe_at = now(), last_probe_error = $4, probe_owner = NULL, probe_until = NULL, updated_at = now()
			WHERE channel = $1 AND state = 'held' AND probe_owner = $2`, c.Name, m.cfg.Owner, next, problem)
		if err != nil {
			m.cfg.Logger.Debug("channel health: recording a probe failed", "channel", c.Name, "error", err)
		}
		m.cfg.Logger.Debug("channel still held", "channel", c.Name, "probe", problem, "next_probe_in", next)
		_ = m.Refresh(ctx)
		return
	}
	// Status and templates answer: let one real send decide. With nothing
	// waiting to send there is nothing to try, and nothing held.
	var waiting bool
	err = m.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notification WHERE wamid IS NULL AND status = 'queued' AND channel = $1)`, c.Name).Scan(&waiting)
	if err == nil && !waiting {
		if err := m.resume(ctx, c.Name, "the probe passed and nothing waits", `AND probe_owner = $2`, m.cfg.Owner); err != nil {
			m.cfg.Logger.Debug("channel health: resume failed", "channel", c.Name, "error", err)
		}
		return
	}
	_, err = m.cfg.Pool.Exec(ctx, `UPDATE channel_health SET state = 'trial', probes = probes + 1, last_probe_at = now(),
			last_probe_error = NULL, probe_owner = NULL, probe_until = NULL, trial_job_id = NULL, trial_until = NULL, updated_at = now()
		WHERE channel = $1 AND state = 'held' AND probe_owner = $2`, c.Name, m.cfg.Owner)
	if err != nil {
		m.cfg.Logger.Debug("channel health: recording a probe failed", "channel", c.Name, "error", err)
		return
	}
	m.cfg.Logger.Info("channel probe passed: one held send goes out as a trial", "channel", c.Name)
	_ = m.Refresh(ctx)
	m.wakeTrial(ctx, c.Name)
}

// nudgeTrial wakes one held send when no live send holds the trial.
func (m *Monitor) nudgeTrial(ctx context.Context, s Status) {
	if s.trialJob != 0 && s.trialUntil != nil && s.trialUntil.After(time.Now()) {
		return
	}
	m.mu.Lock()
	last := m.lastWake[s.Channel]
	m.mu.Unlock()
	if time.Since(last) < 5*time.Second {
		return
	}
	m.wakeTrial(ctx, s.Channel)
}

func (m *Monitor) wakeTrial(ctx context.Context, channel string) {
	m.mu.Lock()
	m.lastWake[channel] = time.Now()
	m.mu.Unlock()
	if err := m.cfg.Wake(ctx, channel, 1); err != nil {
		m.cfg.Logger.Debug("channel health: waking the trial send failed", "channel", channel, "error", err)
	}
}

// check is one probe: the channel is connected and the template is
// approved in the default language. It returns what is wrong, or "".
func check(ctx context.Context, c Channel) string {
	st, err := c.API.Status(ctx)
	if err != nil {
		return "GET /status: " + err.Error()
	}
	if !st.OK() {
		return fmt.Sprintf("GET /status: the channel is %q, not connected", st.Status)
	}
	tpls, err := c.API.Templates(ctx)
	if err != nil {
		return "GET /templates: " + err.Error()
	}
	var found []string
	for _, t := range tpls {
		if t.Name != c.Template || (c.Namespace != "" && t.Namespace != "" && t.Namespace != c.Namespace) {
			continue
		}
		if strings.EqualFold(t.Language, c.Language) && t.Approved() {
			return ""
		}
		found = append(found, t.Language+" "+strings.ToLower(t.Status))
	}
	if len(found) == 0 {
		return fmt.Sprintf("GET /templates: template %s is not on the channel", c.Template)
	}
	return fmt.Sprintf("GET /templates: template %s is not approved in %s (found: %s)", c.Template, c.Language, strings.Join(found, ", "))
}
