package bench

import (
	"testing"
	"time"
)

func msDur(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", msDur(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"never interpolates", msDur(10, 20), 50, 10 * time.Millisecond},
		{"rounds the rank up", msDur(1, 2, 3), 50, 2 * time.Millisecond},
		{"tiny p is the min", msDur(1, 2, 3), 0.001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %g) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSortsACopy(t *testing.T) {
	in := msDur(30, 10, 20, 40)
	l := Summarize(in)
	want := Latency{N: 4, P50: 20, P95: 40, P99: 40, Max: 40}
	if l != want {
		t.Errorf("Summarize = %+v, want %+v", l, want)
	}
	if in[0] != 30*time.Millisecond {
		t.Errorf("Summarize reordered its input: %v", in)
	}
}

func TestBetweenPairsByKeyAndCountsMissing(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	start := map[string]time.Time{"a": t0, "b": t0, "c": t0}
	end := map[string]time.Time{
		"a":     t0.Add(3 * time.Millisecond),
		"b":     t0.Add(1500 * time.Microsecond),
		"other": t0.Add(time.Hour), // another phase's row: ignored
	}
	l := Between(start, end)
	if l.N != 2 || l.Missing != 1 || l.P50 != 1.5 || l.Max != 3 {
		t.Errorf("Between = %+v, want N 2, missing 1, p50 1.5, max 3", l)
	}
}

func TestIdleRatesTakeTheMonitorOut(t *testing.T) {
	t0 := time.Now()
	before := Counters{At: t0, XactCommit: 1000, NextXid: 500, WAL: 10_000, Monitor: 7}
	after := Counters{At: t0.Add(10 * time.Second), XactCommit: 1151, NextXid: 520, WAL: 12_000, Monitor: 8}
	got := IdleRates(before, after)
	// 151 commits, one of them the monitor's first reading.
	if got.CommitsPerSec != 15 || got.WriteTxsPerSec != 2 || got.WALBytesPerSec != 200 || got.MonitorCommits != 1 {
		t.Errorf("IdleRates = %+v", got)
	}
	if z := IdleRates(after, before); z != (Rates{}) {
		t.Errorf("IdleRates of a backwards window = %+v, want zero", z)
	}
}

func TestComputeCost(t *testing.T) {
	t0 := time.Now()
	in := CostInput{
		Notifications: 1000,
		Before:        Counters{At: t0, XactCommit: 10_000, NextXid: 2_000, WAL: 1_000_000, Monitor: 100},
		// 1000 writer commits + 40 monitor statements + 20 idle commits in
		// the 10 s tail + 3000 by the daemon.
		After:           Counters{At: t0.Add(30 * time.Second), XactCommit: 14_060, NextXid: 4_510, WAL: 4_010_000, Monitor: 140},
		WriterTxs:       1000,
		WriterWALPerRow: 1000,
		Idle:            Rates{CommitsPerSec: 2, WriteTxsPerSec: 1, WALBytesPerSec: 1000},
		Tail:            10 * time.Second,
		Busy:            20 * time.Second,
		SandboxBefore:   SandboxCounters{SendRequests: 50, Accepted: 50, HookInfoCalls: 5, AcksPushed: 150, WebhookPushes: 10},
		SandboxAfter:    SandboxCounters{SendRequests: 1052, Accepted: 1050, HookInfoCalls: 15, AcksPushed: 3150, WebhookPushes: 40},
	}
	c := ComputeCost(in)
	check := func(name string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("xact delta", float64(c.XactCommitDelta), 4060)
	check("monitor commits", float64(c.MonitorCommits), 40)
	check("tail idle commits", float64(c.TailIdleCommits), 20)
	check("daemon commits", float64(c.DaemonCommits), 3000)
	check("commits per notification", c.CommitsPerNotification, 3)
	check("background commits", float64(c.BackgroundCommits), 40)
	check("marginal commits per notification", c.MarginalCommitsPerNotification, 2.96)
	// 2510 xids: 1000 writers, 10 idle in the tail, 1500 daemon.
	check("daemon write txs", float64(c.DaemonWriteTxs), 1500)
	check("write txs per notification", c.WriteTxsPerNotification, 1.5)
	check("WAL per notification", c.WALPerNotification, 3010)
	check("writer WAL", float64(c.WriterWALBytes), 1_000_000)
	// 3,010,000 − 1,000,000 writers − 10,000 idle tail.
	check("daemon WAL per notification", c.DaemonWALPerNotification, 2000)
	check("hookInfo per notification", c.HookInfoPerNotification, 0.01)
	check("sendTemplate per notification", c.SendRequestsPerNotification, 1.002)
	check("acks per notification", c.AcksPerNotification, 3)
	check("webhook pushes", float64(c.Sandbox.WebhookPushes), 30)
}

func TestComputeCostWithoutBaselineLeavesDaemonWALUnknown(t *testing.T) {
	c := ComputeCost(CostInput{Notifications: 10, After: Counters{WAL: 5000}})
	if c.DaemonWALPerNotification != 0 || c.WALPerNotification != 500 {
		t.Errorf("cost = %+v: want WAL 500 per notification and no daemon share", c)
	}
	if z := ComputeCost(CostInput{}); z.CommitsPerNotification != 0 {
		t.Errorf("no notifications: %+v", z)
	}
}

func TestRate(t *testing.T) {
	if got := rate(2500, 2*time.Second); got != 1250 {
		t.Errorf("rate = %v", got)
	}
	if got := rate(10, 0); got != 0 {
		t.Errorf("rate over no time = %v, want 0", got)
	}
}

func TestOtherShareLeavesOursAndPostgresOut(t *testing.T) {
	a := cpuSample{total: 1000, busy: map[int]procTick{
		1: {"cancelnotify", 100}, 2: {"postgres", 50}, 3: {"go", 10},
	}}
	b := cpuSample{total: 2000, busy: map[int]procTick{
		1: {"cancelnotify", 500}, 2: {"postgres", 650}, 3: {"go", 60},
		4: {"chaos.test", 50}, // started in between: counts whole
	}}
	if got := otherShare(a, b, map[int]bool{1: true}); got != 0.1 {
		t.Errorf("otherShare = %v, want 0.1 (go 50 + chaos 50 of 1000 ticks)", got)
	}
	if got := otherShare(b, a, nil); got != 0 {
		t.Errorf("otherShare backwards = %v, want 0", got)
	}
}
