package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarises one latency measurement, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// Missing counts samples whose end was never observed (a request that
	// did not reach the sandbox, a wamid never recorded).
	Missing int `json:"missing,omitempty"`
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted: the smallest sample at or below which p % of the samples lie. It
// never interpolates, so every figure reported is a latency that happened.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summarize returns p50, p95, p99 and max of ds.
func Summarize(ds []time.Duration) Latency {
	s := slices.Clone(ds)
	slices.Sort(s)
	l := Latency{N: len(s)}
	if len(s) == 0 {
		return l
	}
	l.P50 = ms(Percentile(s, 50))
	l.P95 = ms(Percentile(s, 95))
	l.P99 = ms(Percentile(s, 99))
	l.Max = ms(s[len(s)-1])
	return l
}

// Between pairs start and end times by key and summarises end − start.
// Keys of start with no end count as missing; ends with no start (rows of
// another phase) are ignored.
func Between(start, end map[string]time.Time) Latency {
	ds := make([]time.Duration, 0, len(start))
	missing := 0
	for k, s := range start {
		e, ok := end[k]
		if !ok {
			missing++
			continue
		}
		ds = append(ds, e.Sub(s))
	}
	l := Summarize(ds)
	l.Missing = missing
	return l
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

// round rounds f to n decimals, so that the JSON carries figures, not noise.
func round(f float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(f*p) / p
}

// rate returns n per second over d, 0 when d is not positive.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round(float64(n)/d.Seconds(), 1)
}

// Counters are Postgres's cumulative counters at one instant.
type Counters struct {
	At time.Time `json:"at"`
	// XactCommit is pg_stat_database.xact_commit of the database: every
	// committed transaction, read-only ones included.
	XactCommit int64 `json:"xact_commit"`
	// NextXid is the next transaction id to be assigned. Only transactions
	// that write get one, so its delta counts write transactions, which are
	// the commits that wait for a WAL flush. It is cluster-wide.
	NextXid int64 `json:"next_xid"`
	// WAL is the WAL insert position in bytes.
	WAL int64 `json:"wal_bytes"`
	// Monitor is how many statements the bench's monitoring connection had
	// issued before this reading; each one is a commit in XactCommit.
	Monitor int64 `json:"monitor_statements"`
}

// Rates are the daemon's costs per second with nothing to do: River's
// fetch polls, leader election and maintenance, the relay's fallback poll.
type Rates struct {
	Seconds        float64 `json:"seconds"`
	CommitsPerSec  float64 `json:"commits_per_s"`
	WriteTxsPerSec float64 `json:"write_txs_per_s"`
	WALBytesPerSec float64 `json:"wal_bytes_per_s"`
	MonitorCommits int64   `json:"monitor_commits"`
}

// IdleRates derives the daemon's idle rates from two readings taken with no
// cancellations flowing; the bench's own statements are taken out.
func IdleRates(before, after Counters) Rates {
	d := after.At.Sub(before.At)
	if d <= 0 {
		return Rates{}
	}
	mon := after.Monitor - before.Monitor
	commits := after.XactCommit - before.XactCommit - mon
	return Rates{
		Seconds:        round(d.Seconds(), 2),
		CommitsPerSec:  round(float64(max(commits, 0))/d.Seconds(), 2),
		WriteTxsPerSec: round(float64(max(after.NextXid-before.NextXid, 0))/d.Seconds(), 2),
		WALBytesPerSec: round(float64(max(after.WAL-before.WAL, 0))/d.Seconds(), 0),
		MonitorCommits: mon,
	}
}

// SandboxCounters are the sandbox's counters the cost figures use.
type SandboxCounters struct {
	SendRequests  int64 `json:"send_requests"`
	Accepted      int64 `json:"accepted"`
	HookInfoCalls int64 `json:"hookinfo_calls"`
	AcksPushed    int64 `json:"acks_pushed"`
	WebhookPushes int64 `json:"webhook_pushes"`
}

// CostInput is what one phase's cost is computed from.
type CostInput struct {
	Notifications int
	Before, After Counters
	// WriterTxs is the number of transactions the OMS writers committed in
	// the window, one per row; each also took one transaction id.
	WriterTxs int64
	// WriterWALPerRow is the WAL of one outbox row inserted with no daemon
	// running (the baseline phase), 0 when not measured.
	WriterWALPerRow float64
	// Idle are the daemon's idle rates; Tail is how long the window ran on
	// after the last message settled (waiting for Postgres's statistics to
	// be flushed) and Busy how long the messages were in flight. Idle work
	// in the tail is taken out; idle work during Busy is reported apart.
	Idle       Rates
	Tail, Busy time.Duration
	// Sandbox counters at the start and the end of the window.
	SandboxBefore, SandboxAfter SandboxCounters
}

// Cost is what the daemon cost Postgres and 1MSG per notification in one
// phase.
type Cost struct {
	Notifications int `json:"notifications"`

	XactCommitDelta int64 `json:"xact_commit_delta"`
	WriterCommits   int64 `json:"writer_commits"`
	MonitorCommits  int64 `json:"monitor_commits"`
	TailIdleCommits int64 `json:"tail_idle_commits"`
	// DaemonCommits is what is left: the daemon's commits while the
	// messages were in flight, its background polling included.
	DaemonCommits          int64   `json:"daemon_commits"`
	CommitsPerNotification float64 `json:"commits_per_notification"`
	// BackgroundCommits estimates the share of DaemonCommits the daemon
	// would have made idle over the same time (idle rate × busy time).
	BackgroundCommits int64 `json:"background_commits"`
	// MarginalCommitsPerNotification leaves the background out.
	MarginalCommitsPerNotification float64 `json:"marginal_commits_per_notification"`

	XidDelta                int64   `json:"xid_delta"`
	DaemonWriteTxs          int64   `json:"daemon_write_txs"`
	WriteTxsPerNotification float64 `json:"write_txs_per_notification"`

	WALBytes       int64 `json:"wal_bytes"`
	WriterWALBytes int64 `json:"writer_wal_bytes"`
	DaemonWALBytes int64 `json:"daemon_wal_bytes"`
	// WALPerNotification includes the OMS's outbox insert;
	// DaemonWALPerNotification takes the writers' measured share out.
	WALPerNotification       float64 `json:"wal_bytes_per_notification"`
	DaemonWALPerNotification float64 `json:"daemon_wal_bytes_per_notification"`

	Sandbox                     SandboxCounters `json:"sandbox"`
	SendRequestsPerNotification float64         `json:"send_requests_per_notification"`
	HookInfoPerNotification     float64         `json:"hookinfo_calls_per_notification"`
	AcksPerNotification         float64         `json:"acks_pushed_per_notification"`
}

// ComputeCost turns a phase's readings into per-notification costs.
//
// pg_stat_database counts every committed transaction of the database, so
// the daemon's commits are the delta less the OMS writers' own (one per
// row), less the bench's monitoring statements (each its own transaction),
// less the daemon's idle commits in the tail the bench waits for statistics
// to be flushed. Transaction ids count only transactions that wrote.
func ComputeCost(in CostInput) Cost {
	c := Cost{Notifications: in.Notifications}
	tail := in.Tail.Seconds()
	c.XactCommitDelta = in.After.XactCommit - in.Before.XactCommit
	c.WriterCommits = in.WriterTxs
	c.MonitorCommits = in.After.Monitor - in.Before.Monitor
	c.TailIdleCommits = int64(math.Round(in.Idle.CommitsPerSec * tail))
	c.DaemonCommits = c.XactCommitDelta - c.WriterCommits - c.MonitorCommits - c.TailIdleCommits
	c.BackgroundCommits = int64(math.Round(in.Idle.CommitsPerSec * in.Busy.Seconds()))

	c.XidDelta = in.After.NextXid - in.Before.NextXid
	c.DaemonWriteTxs = c.XidDelta - in.WriterTxs - int64(math.Round(in.Idle.WriteTxsPerSec*tail))

	c.WALBytes = in.After.WAL - in.Before.WAL
	c.WriterWALBytes = int64(math.Round(in.WriterWALPerRow * float64(in.WriterTxs)))
	c.DaemonWALBytes = c.WALBytes - c.WriterWALBytes - int64(math.Round(in.Idle.WALBytesPerSec*tail))

	c.Sandbox = SandboxCounters{
		SendRequests:  in.SandboxAfter.SendRequests - in.SandboxBefore.SendRequests,
		Accepted:      in.SandboxAfter.Accepted - in.SandboxBefore.Accepted,
		HookInfoCalls: in.SandboxAfter.HookInfoCalls - in.SandboxBefore.HookInfoCalls,
		AcksPushed:    in.SandboxAfter.AcksPushed - in.SandboxBefore.AcksPushed,
		WebhookPushes: in.SandboxAfter.WebhookPushes - in.SandboxBefore.WebhookPushes,
	}
	if n := float64(in.Notifications); n > 0 {
		c.CommitsPerNotification = round(float64(c.DaemonCommits)/n, 2)
		c.MarginalCommitsPerNotification = round(float64(c.DaemonCommits-c.BackgroundCommits)/n, 2)
		c.WriteTxsPerNotification = round(float64(c.DaemonWriteTxs)/n, 2)
		c.WALPerNotification = round(float64(c.WALBytes)/n, 0)
		if in.WriterWALPerRow > 0 {
			c.DaemonWALPerNotification = round(float64(c.DaemonWALBytes)/n, 0)
		}
		c.SendRequestsPerNotification = round(float64(c.Sandbox.SendRequests)/n, 3)
		c.HookInfoPerNotification = round(float64(c.Sandbox.HookInfoCalls)/n, 3)
		c.AcksPerNotification = round(float64(c.Sandbox.AcksPushed)/n, 3)
	}
	return c
}
