package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	r := &Report{
		Version:   ReportVersion,
		StartedAt: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC),
		Seconds:   150,
		Complete:  true,
		Machine: Machine{Cores: 2, CPU: "AMD EPYC", MemoryBytes: 24 << 30, OS: "linux/amd64", Go: "go1.26.8",
			Postgres: "PostgreSQL 15.20", PostgresSettings: map[string]string{"synchronous_commit": "on", "fsync": "on"}},
		Settings: Settings{Schema: "cancelnotify_bench", SandboxLatency: "50ms", DeliveredAfter: "200ms", ReadAfter: "500ms",
			TrackFirstPoll: "2s", Writers: 16, Burst: 20000, PacedRate: 80, PacedFor: "1m0s", SendWorkers: "daemon default", DBMaxConns: "daemon default",
			AfterBurst: 10000, Webhooks: true},
		Ceiling: &CeilingResult{Connections: 16, Seconds: 5, Rows: 25000, RowsPerSec: 5000},
		OMSCost: &OMSCostResult{
			Stopped: &OMSRates{Connections: 16, Rounds: 3, SliceSeconds: 2, OutboxPerSec: 4750, CopyPerSec: 5000, Ratio: 0.95},
			Working: &OMSRates{Connections: 16, Rounds: 3, SliceSeconds: 2, OutboxPerSec: 2100, CopyPerSec: 3000, Ratio: 0.7}},
		Idle: &Rates{CommitsPerSec: 12.5, WriteTxsPerSec: 0.4, WALBytesPerSec: 300},
		AfterBurst: &PacedResult{Rate: 80, Seconds: 60, Rows: 4800, AchievedRate: 80, Settled: true, BurstBefore: 10000,
			ToSendTemplate: Latency{N: 4800, P50: 7.1, P95: 12, P99: 31.5, Max: 90},
			Cost:           &Cost{Notifications: 14800, CommitsPerNotification: 3.5}},
		Paced: &PacedResult{Rate: 80, Seconds: 60, Rows: 4800, AchievedRate: 80, Settled: true,
			ToSendTemplate: Latency{N: 4800, P50: 6.2, P95: 9, P99: 42.5, Max: 80},
			ToSentAt:       Latency{N: 4800, P50: 58, P95: 68, P99: 88, Max: 118},
			OMSTransaction: Latency{N: 4800, P50: 1.1, P95: 2, P99: 3, Max: 9},
			Cost:           &Cost{Notifications: 4800, CommitsPerNotification: 4.5, HookInfoPerNotification: 0},
			Statuses:       map[string]int{"read": 4800}},
		Burst: &BurstResult{Rows: 20000, Writers: 16, WriterRate: 4100, WriterRateAlone: 5200, Sent: 20000, Settled: 20000,
			ToSentSeconds: 12.5, SentPerSec: 1600, ToFinalSeconds: 14, FinalPerSec: 1428.6, Complete: true,
			Cost: &Cost{Notifications: 20000, CommitsPerNotification: 3.2, DaemonWALPerNotification: 2500, WALPerNotification: 3100}},
		Daemon: DaemonResult{PID: 42, PeakRSSBytes: 90 << 20},
	}
	r.Targets = Evaluate(r)
	return r
}

func TestEvaluate(t *testing.T) {
	r := sampleReport()
	got := map[string]bool{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg.Pass
	}
	want := map[string]bool{
		"burst: notifications/s, first commit → last wamid": true,
		"paced: commit → sendTemplate p50":                  true,
		"paced: commit → sendTemplate p99":                  true,
		"burst: Postgres commits per notification":          true,
		"paced: Postgres commits per notification":          false, // 4.5 > 4
		"after burst: commit → sendTemplate p50":            true,
		"after burst: commit → sendTemplate p99":            true,
		"OMS commit rate, outbox / copy, daemon stopped":    true,
		"OMS commit rate, outbox / copy, daemon working":    true,
		"burst: WAL bytes per notification":                 true,
		"burst: hookInfo calls per notification":            true,
	}
	if len(got) != len(want) {
		t.Fatalf("targets = %+v", r.Targets)
	}
	for name, pass := range want {
		if p, ok := got[name]; !ok || p != pass {
			t.Errorf("target %q: pass %v (present %v), want %v", name, p, ok, pass)
		}
	}
}

func TestEvaluateNeverPassesAnIncompleteRun(t *testing.T) {
	r := sampleReport()
	r.Burst.Complete = false
	r.Paced.ToSendTemplate.Missing = 3
	r.AfterBurst.ToSendTemplate.Missing = 1
	r.OMSCost = nil
	for _, tg := range Evaluate(r) {
		if tg.Pass && !strings.HasPrefix(tg.Name, "paced: Postgres") {
			t.Errorf("target %q passes on an incomplete phase", tg.Name)
		}
	}
}

func TestEvaluateSkipsPhasesNotRun(t *testing.T) {
	r := sampleReport()
	r.Burst, r.Paced, r.AfterBurst, r.OMSCost = nil, nil, nil, nil
	if ts := Evaluate(r); len(ts) != 0 {
		t.Errorf("targets with no phases: %+v", ts)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2 cores, AMD EPYC", "PostgreSQL 15.20", "go1.26.8",
		"CEILING", "5,000 rows/s",
		"BURST", "20,000 cancellations", "1,600 /s", "12.5 s",
		"PACED", "6.20", "42.5",
		"OMS COST", "4,750 /s", "0.95", "0.70",
		"AFTER BURST", "10,000 cancellations", "31.5",
		"COST", "3.20", "4.50", "2,500",
		"daemon peak RSS (VmHWM), whole run", "90 MiB",
		"PASS", "MISS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "MISS") != 1 {
		t.Errorf("want exactly one MISS:\n%s", out)
	}
}

func TestWriteTableOfAPartialReport(t *testing.T) {
	r := &Report{Machine: Machine{Cores: 2}, Burst: &BurstResult{Rows: 10, Sent: 4, Settled: 2}}
	r.Targets = Evaluate(r)
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "INCOMPLETE: 4 sent, 2 final") {
		t.Errorf("partial burst not flagged:\n%s", b.String())
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	r := sampleReport()
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Burst.SentPerSec != 1600 || back.Paced.ToSendTemplate.P99 != 42.5 || back.Machine.Cores != 2 || len(back.Targets) != 11 {
		t.Errorf("JSON lost figures: %+v", back)
	}
	for _, key := range []string{`"p50_ms"`, `"commits_per_notification"`, `"peak_rss_bytes"`, `"sent_per_s"`, `"rows_per_s"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestNum(t *testing.T) {
	tests := map[float64]string{
		0: "0", 3: "3", 3.2: "3.20", 42.5: "42.5", 1600: "1,600", 1428.6: "1,429", 20000: "20,000",
		-1234: "-1,234", 0.013: "0.01", 1234567: "1,234,567",
	}
	for in, want := range tests {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}
