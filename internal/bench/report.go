package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ReportVersion is the version of bench.json's layout.
const ReportVersion = 1

// Report is everything one run measured. The table and bench.json show the
// same figures.
type Report struct {
	Version   int       `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	// Complete is false when a phase failed or did not settle in time; the
	// figures measured until then are kept.
	Complete bool     `json:"complete"`
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`

	Ceiling    *CeilingResult `json:"ceiling,omitempty"`
	OMSCost    *OMSCostResult `json:"oms_cost,omitempty"`
	Idle       *Rates         `json:"idle,omitempty"`
	Paced      *PacedResult   `json:"paced,omitempty"`
	Burst      *BurstResult   `json:"burst,omitempty"`
	AfterBurst *PacedResult   `json:"after_burst,omitempty"`
	Daemon     DaemonResult   `json:"daemon"`

	Targets []Target `json:"targets"`
	Notes   []string `json:"notes,omitempty"`
}

// Settings are the knobs of the run, as given.
type Settings struct {
	Schema          string  `json:"schema"`
	SandboxLatency  string  `json:"sandbox_latency"`
	DeliveredAfter  string  `json:"delivered_after"`
	ReadAfter       string  `json:"read_after"`
	TrackFirstPoll  string  `json:"track_first_poll"`
	Writers         int     `json:"writers"`
	CeilingConns    int     `json:"ceiling_connections"`
	Burst           int     `json:"burst"`
	PacedRate       float64 `json:"paced_rate"`
	PacedFor        string  `json:"paced_for"`
	AfterBurst      int     `json:"after_burst"`
	Webhooks        bool    `json:"webhooks"`
	SendWorkers     string  `json:"send_workers"`
	DBMaxConns      string  `json:"db_max_conns"`
	DaemonOverrides string  `json:"daemon_env,omitempty"`
}

// CeilingResult is the single-row INSERT … COMMIT rate with no daemon.
type CeilingResult struct {
	Connections int     `json:"connections"`
	Seconds     float64 `json:"seconds"`
	Rows        int     `json:"rows"`
	RowsPerSec  float64 `json:"rows_per_s"`
}

// PacedResult is the steady-rate phase: latency from the OMS's COMMIT.
type PacedResult struct {
	Rate         float64 `json:"rate"`
	Seconds      float64 `json:"seconds"`
	Rows         int     `json:"rows"`
	AchievedRate float64 `json:"achieved_rate"`
	// BurstBefore rows were committed as fast as possible just before the
	// paced rows (after-burst phase); their cost is in Cost, not their
	// latency.
	BurstBefore int  `json:"burst_before,omitempty"`
	Settled     bool `json:"settled"`
	// ToSendTemplate ends at the request's arrival at the sandbox (its
	// recorded `at`); ToSentAt at notification.sent_at, the daemon's clock
	// as it begins the transaction that records the wamid (its commit
	// follows within milliseconds).
	ToSendTemplate Latency `json:"commit_to_send_template"`
	ToSentAt       Latency `json:"commit_to_sent_at"`
	OMSTransaction Latency `json:"oms_transaction"`
	// OtherCPU is the share of the machine's CPU that processes other than
	// the bench, its children and Postgres used during the phase.
	OtherCPU float64        `json:"other_processes_cpu_share"`
	Cost     *Cost          `json:"cost,omitempty"`
	Statuses map[string]int `json:"statuses"`
}

// BurstResult is the flash-sale phase.
type BurstResult struct {
	Rows    int `json:"rows"`
	Writers int `json:"writers"`
	// WriterRate is the rows per second the writers committed with the
	// daemon running; WriterRateAlone the same rows with no daemon
	// (baseline).
	WriterRate      float64 `json:"writer_commits_per_s"`
	WriterRateAlone float64 `json:"writer_commits_per_s_no_daemon"`
	WriteSeconds    float64 `json:"write_seconds"`
	// From the first commit to the last wamid recorded (sent_at) and to
	// the last final status (updated_at of the last row to settle).
	Sent           int     `json:"sent"`
	ToSentSeconds  float64 `json:"to_sent_seconds"`
	SentPerSec     float64 `json:"sent_per_s"`
	Settled        int     `json:"settled"`
	ToFinalSeconds float64 `json:"to_final_seconds"`
	FinalPerSec    float64 `json:"final_per_s"`
	Complete       bool    `json:"complete"`
	// WriterWALPerRow is the WAL of one outbox insert with no daemon.
	WriterWALPerRow float64        `json:"writer_wal_bytes_per_row"`
	OtherCPU        float64        `json:"other_processes_cpu_share"`
	Cost            *Cost          `json:"cost,omitempty"`
	Statuses        map[string]int `json:"statuses"`
}

// DaemonResult describes the measured process.
type DaemonResult struct {
	PID          int    `json:"pid"`
	AdminAddr    string `json:"admin_addr,omitempty"` // /debug/pprof/ during the run
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	Warnings     int    `json:"log_warnings"`
	Errors       int    `json:"log_errors"`
}

// Target is one of the benchmark's targets beside the figure it judges.
type Target struct {
	Name  string  `json:"name"`
	Want  string  `json:"want"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Pass  bool    `json:"pass"`
}

// The benchmark's targets (README.md, "What each number means") for a
// 2-core machine shared by daemon, sandbox and Postgres.
const (
	TargetBurstPerSec   = 1000.0 // notifications/s to sent
	TargetPacedP50Ms    = 10.0   // commit → sendTemplate
	TargetPacedP99Ms    = 50.0
	TargetCommitsPerMsg = 4.0 // for the whole life of a message
	TargetWALPerMsg     = 8192.0
	TargetOMSStopped    = 0.8 // OMS commit rate, outbox / trigger-less copy
	TargetOMSWorking    = 0.5
	TargetHookInfoPoll  = 1.2  // hookInfo calls per notification without webhooks
	TargetHookInfoHooks = 0.05 // … with healthy webhooks: about none
)

// Evaluate judges the measured figures against the targets; a phase not
// run yields no target.
func Evaluate(r *Report) []Target {
	var ts []Target
	if b := r.Burst; b != nil {
		ts = append(ts, Target{"burst: notifications/s, first commit → last wamid", fmt.Sprintf("≥ %g", TargetBurstPerSec),
			b.SentPerSec, "/s", b.Complete && b.SentPerSec >= TargetBurstPerSec})
	}
	for _, ph := range []struct {
		name string
		p    *PacedResult
	}{{"paced", r.Paced}, {"after burst", r.AfterBurst}} {
		p := ph.p
		if p == nil {
			continue
		}
		ok := p.ToSendTemplate.N > 0 && p.ToSendTemplate.Missing == 0
		ts = append(ts,
			Target{ph.name + ": commit → sendTemplate p50", fmt.Sprintf("≤ %g ms", TargetPacedP50Ms),
				p.ToSendTemplate.P50, "ms", ok && p.ToSendTemplate.P50 <= TargetPacedP50Ms},
			Target{ph.name + ": commit → sendTemplate p99", fmt.Sprintf("≤ %g ms", TargetPacedP99Ms),
				p.ToSendTemplate.P99, "ms", ok && p.ToSendTemplate.P99 <= TargetPacedP99Ms})
	}
	if o := r.OMSCost; o != nil {
		if s := o.Stopped; s != nil {
			ts = append(ts, Target{"OMS commit rate, outbox / copy, daemon stopped", fmt.Sprintf("≥ %g", TargetOMSStopped),
				s.Ratio, "", s.Ratio >= TargetOMSStopped})
		}
		if w := o.Working; w != nil {
			ts = append(ts, Target{"OMS commit rate, outbox / copy, daemon working", fmt.Sprintf("≥ %g", TargetOMSWorking),
				w.Ratio, "", w.Ratio >= TargetOMSWorking})
		}
	}
	if b := r.Burst; b != nil && b.Cost != nil {
		ts = append(ts, Target{"burst: WAL bytes per notification", fmt.Sprintf("≤ %g", TargetWALPerMsg),
			b.Cost.WALPerNotification, "B", b.Complete && b.Cost.WALPerNotification <= TargetWALPerMsg})
		want, limit := TargetHookInfoHooks, "≤ %g (webhooks)"
		if !r.Settings.Webhooks {
			want, limit = TargetHookInfoPoll, "≤ %g (polling)"
		}
		ts = append(ts, Target{"burst: hookInfo calls per notification", fmt.Sprintf(limit, want),
			b.Cost.HookInfoPerNotification, "", b.Complete && b.Cost.HookInfoPerNotification <= want})
	}
	if b := r.Burst; b != nil && b.Cost != nil {
		ts = append(ts, Target{"burst: Postgres commits per notification", fmt.Sprintf("≤ %g", TargetCommitsPerMsg),
			b.Cost.CommitsPerNotification, "", b.Complete && b.Cost.CommitsPerNotification <= TargetCommitsPerMsg})
	}
	if p := r.Paced; p != nil && p.Cost != nil {
		ts = append(ts, Target{"paced: Postgres commits per notification", fmt.Sprintf("≤ %g", TargetCommitsPerMsg),
			p.Cost.CommitsPerNotification, "", p.Settled && p.Cost.CommitsPerNotification <= TargetCommitsPerMsg})
	}
	return ts
}

// WriteJSON writes the report to path, indented.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

// WriteTable prints the report as the table `cancelnotify bench` shows.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	m := r.Machine
	p("MACHINE\t%d cores, %s, %s RAM; %s; %s; %s", m.Cores, m.CPU, mib(m.MemoryBytes), m.OS, m.Go, m.Postgres)
	p("\tPostgres: %s", m.PostgresSettingsLine())
	p("\tload average at start: %s", m.LoadAverage)
	s := r.Settings
	p("RUN\t%s, %.0f s, schema %s; sandbox latency %s, delivered %s and read %s after acceptance; first hookInfo poll %s",
		r.StartedAt.UTC().Format(time.RFC3339), r.Seconds, s.Schema, s.SandboxLatency, s.DeliveredAfter, s.ReadAfter, s.TrackFirstPoll)
	mode := "statuses pushed to the webhook (hookInfo polls as the safety net)"
	if !s.Webhooks {
		mode = "no webhook: statuses by hookInfo polling only"
	}
	p("\tdaemon: %s; send workers %s, pool %s%s", mode, s.SendWorkers, s.DBMaxConns, prefixed("; ", s.DaemonOverrides))
	p("")

	if c := r.Ceiling; c != nil {
		p("CEILING  single-row INSERT…COMMIT into a copy of the outbox, no daemon running")
		p("  %d connections for %.0f s\t%s rows/s", c.Connections, c.Seconds, num(c.RowsPerSec))
		p("")
	}
	if o := r.OMSCost; o != nil {
		p("OMS COST  single-row INSERT…COMMIT, alternating slices: the outbox, then a copy without its trigger")
		p("  \toutbox\tcopy\tratio")
		for _, x := range []struct {
			name string
			o    *OMSRates
		}{{"daemon stopped", o.Stopped}, {"daemon working", o.Working}} {
			if x.o != nil {
				p("  %s, %d connections, %d × %.0f s\t%s /s\t%s /s\t%s", x.name, x.o.Connections, x.o.Rounds, x.o.SliceSeconds,
					num(x.o.OutboxPerSec), num(x.o.CopyPerSec), num(x.o.Ratio))
			}
		}
		p("")
	}
	if b := r.Burst; b != nil {
		r.burstTable(p, b)
	}
	if pc := r.Paced; pc != nil {
		r.pacedTable(p, pc)
	}
	if pc := r.AfterBurst; pc != nil {
		r.pacedTable(p, pc)
	}
	r.costTable(p)
	if len(r.Targets) > 0 {
		p("TARGETS")
		for _, t := range r.Targets {
			verdict := "MISS"
			if t.Pass {
				verdict = "PASS"
			}
			p("  %s\t%s %s\t%s\t%s", t.Name, num(t.Value), t.Unit, t.Want, verdict)
		}
	}
	if len(r.Notes) > 0 {
		p("")
	}
	for _, n := range r.Notes {
		p("note: %s", n)
	}
	return tw.Flush()
}

func (r *Report) burstTable(p func(string, ...any), b *BurstResult) {
	p("BURST  %s cancellations from %d OMS connections, one row per transaction", num(float64(b.Rows)), b.Writers)
	p("  writers' commit rate, daemon running\t%s rows/s", num(b.WriterRate))
	if b.WriterRateAlone > 0 {
		p("  writers' commit rate, no daemon\t%s rows/s", num(b.WriterRateAlone))
	}
	done := ""
	if !b.Complete {
		done = fmt.Sprintf(" (INCOMPLETE: %d sent, %d final)", b.Sent, b.Settled)
	}
	p("  first commit → last wamid recorded\t%s /s  (%.1f s)%s", num(b.SentPerSec), b.ToSentSeconds, done)
	p("  first commit → last final status (read)\t%s /s  (%.1f s)", num(b.FinalPerSec), b.ToFinalSeconds)
	p("  statuses\t%s", statusLine(b.Statuses))
	p("")
}

func (r *Report) pacedTable(p func(string, ...any), pc *PacedResult) {
	if pc.BurstBefore > 0 {
		p("AFTER BURST  %s cancellations as fast as possible; once sent, %s/s for %.0f s (%s rows, %s/s achieved)",
			num(float64(pc.BurstBefore)), num(pc.Rate), pc.Seconds, num(float64(pc.Rows)), num(pc.AchievedRate))
	} else {
		p("PACED  %s cancellations/s for %.0f s (%s rows, %s/s achieved)", num(pc.Rate), pc.Seconds,
			num(float64(pc.Rows)), num(pc.AchievedRate))
	}
	p("  latency from the OMS's COMMIT, ms\tp50\tp95\tp99\tmax")
	lat := func(name string, l Latency) {
		miss := ""
		if l.Missing > 0 {
			miss = fmt.Sprintf("\t(%d never seen)", l.Missing)
		}
		p("  %s\t%s\t%s\t%s\t%s%s", name, num(l.P50), num(l.P95), num(l.P99), num(l.Max), miss)
	}
	lat("→ sendTemplate request at the sandbox", pc.ToSendTemplate)
	lat("→ wamid recorded (notification.sent_at)", pc.ToSentAt)
	lat("OMS transaction itself, BEGIN → COMMIT", pc.OMSTransaction)
	p("  statuses\t%s", statusLine(pc.Statuses))
	p("")
}

func (r *Report) costTable(p func(string, ...any)) {
	var bc, pc, ac *Cost
	if r.Burst != nil {
		bc = r.Burst.Cost
	}
	if r.Paced != nil {
		pc = r.Paced.Cost
	}
	if r.AfterBurst != nil {
		ac = r.AfterBurst.Cost
	}
	if bc == nil && pc == nil && ac == nil && r.Daemon.PeakRSSBytes == 0 {
		return
	}
	p("COST")
	p("  per notification\tburst\tpaced\tafter burst")
	row := func(name string, f func(c *Cost) string) {
		p("  %s\t%s\t%s\t%s", name, costCell(bc, f), costCell(pc, f), costCell(ac, f))
	}
	row("Postgres commits (xact_commit)", func(c *Cost) string { return num(c.CommitsPerNotification) })
	row("  of which with no background polling", func(c *Cost) string { return num(c.MarginalCommitsPerNotification) })
	row("write transactions (xids)", func(c *Cost) string { return num(c.WriteTxsPerNotification) })
	row("WAL bytes, outbox insert included", func(c *Cost) string { return num(c.WALPerNotification) })
	row("WAL bytes, daemon only", func(c *Cost) string {
		if c.DaemonWALPerNotification == 0 {
			return "–"
		}
		return num(c.DaemonWALPerNotification)
	})
	row("hookInfo calls", func(c *Cost) string { return num(c.HookInfoPerNotification) })
	row("sendTemplate requests", func(c *Cost) string { return num(c.SendRequestsPerNotification) })
	row("acks pushed to the webhook", func(c *Cost) string { return num(c.AcksPerNotification) })
	if d := r.Daemon; d.PeakRSSBytes > 0 {
		p("  daemon peak RSS (VmHWM), whole run\t%s", mib(d.PeakRSSBytes))
	}
	if i := r.Idle; i != nil {
		p("  daemon idle, per second\t%s commits, %s write tx, %s B WAL", num(i.CommitsPerSec), num(i.WriteTxsPerSec), num(i.WALBytesPerSec))
	}
	p("")
}

func costCell(c *Cost, f func(*Cost) string) string {
	if c == nil {
		return "–"
	}
	return f(c)
}

func statusLine(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	order := []string{"queued", "sending", "in_doubt", "sent", "delivered", "read", "failed", "rejected", "skipped", "expired"}
	var parts []string
	seen := map[string]bool{}
	for _, st := range order {
		if n, ok := m[st]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
			seen[st] = true
		}
	}
	for st, n := range m {
		if !seen[st] {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	return strings.Join(parts, ", ")
}

// num formats a figure for the table: thousands separated, decimals only
// where they carry information.
func num(f float64) string {
	switch {
	case f != f: // NaN
		return "–"
	case f >= 100 || f <= -100 || f == float64(int64(f)):
		return group(strconv.FormatInt(int64(f+sign(f)*0.5), 10))
	case f >= 10 || f <= -10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

// group puts a comma between thousands of an integer's digits.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func mib(b int64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
