package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Machine is what the figures came from: they mean little without it.
type Machine struct {
	Cores       int    `json:"cores"`
	CPU         string `json:"cpu"`
	MemoryBytes int64  `json:"memory_bytes"`
	OS          string `json:"os"`
	Go          string `json:"go"`
	Postgres    string `json:"postgres"`
	// LoadAverage is the 1, 5 and 15 minute load when the run started:
	// anything else busy on the machine moves every figure.
	LoadAverage string `json:"load_average"`
	// PostgresSettings are the settings that move commit rates and WAL.
	PostgresSettings map[string]string `json:"postgres_settings"`
}

// postgresSettings are shown because each changes what a commit costs:
// fsync and synchronous_commit decide whether a commit waits for the disk,
// full_page_writes and wal_compression the WAL after a checkpoint.
var postgresSettings = []string{"synchronous_commit", "fsync", "full_page_writes", "wal_compression",
	"shared_buffers", "max_connections", "autovacuum"}

// PostgresSettingsLine is the settings as one line, in a fixed order.
func (m Machine) PostgresSettingsLine() string {
	var parts []string
	for _, k := range append(postgresSettings, "ssl") {
		if v, ok := m.PostgresSettings[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}

// describeMachine reads the host from /proc (Linux) and the server from
// conn; what cannot be read is left empty rather than failing the run.
func describeMachine(ctx context.Context, conn *pgx.Conn) (Machine, error) {
	m := Machine{
		Cores:            runtime.NumCPU(),
		CPU:              cpuModel(),
		MemoryBytes:      memTotal(),
		OS:               runtime.GOOS + "/" + runtime.GOARCH + kernel(),
		Go:               runtime.Version(),
		LoadAverage:      loadAverage(),
		PostgresSettings: map[string]string{},
	}
	if err := conn.QueryRow(ctx, "SELECT 'PostgreSQL ' || current_setting('server_version')").Scan(&m.Postgres); err != nil {
		return m, fmt.Errorf("read the Postgres version: %w", err)
	}
	for _, k := range postgresSettings {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", k).Scan(&v); err != nil {
			return m, fmt.Errorf("read Postgres setting %s: %w", k, err)
		}
		m.PostgresSettings[k] = v
	}
	// TLS to a local server costs CPU on both ends of every statement.
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)").Scan(&ssl); err == nil {
		m.PostgresSettings["ssl"] = strconv.FormatBool(ssl) + " (bench connection)"
	}
	return m, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	kb := procKB(string(b), "MemTotal")
	return kb * 1024
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return ", kernel " + strings.TrimSpace(string(b))
}

// procKB returns the value in kB of key in a /proc file of "Key: N kB"
// lines (meminfo, status), 0 when absent.
func procKB(text, key string) int64 {
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// cpuSample is the CPU time of the machine and of every process at one
// instant, in clock ticks, to tell how much of a phase's CPU went to
// processes that are neither the bench's nor Postgres's: on a shared
// machine, another test run moves every figure.
type cpuSample struct {
	total int64            // all CPUs, all states
	busy  map[int]procTick // per process: user + system
}

type procTick struct {
	comm  string
	ticks int64
}

// sampleCPU reads /proc; on other systems it returns an empty sample.
func sampleCPU() cpuSample {
	s := cpuSample{busy: map[int]procTick{}}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for _, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		s.total += n
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, ok := procTicks(pid); ok {
			s.busy[pid] = t
		}
	}
	return s
}

// procTicks reads a process's name and CPU ticks from /proc/PID/stat.
func procTicks(pid int) (procTick, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procTick{}, false
	}
	// The name is in parentheses and may hold spaces; fields follow it.
	open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if open < 0 || end < open {
		return procTick{}, false
	}
	f := strings.Fields(string(b)[end+1:])
	if len(f) < 13 {
		return procTick{}, false
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procTick{comm: string(b)[open+1 : end], ticks: utime + stime}, true
}

// otherShare returns the share of the machine's CPU (0…1) between a and b
// used by processes other than ours and Postgres's. Processes that exited
// in between are not seen, so it is a lower bound.
func otherShare(a, b cpuSample, ours map[int]bool) float64 {
	if b.total <= a.total {
		return 0
	}
	var other int64
	for pid, t := range b.busy {
		if ours[pid] || t.comm == "postgres" {
			continue
		}
		other += t.ticks - a.busy[pid].ticks // a process started in between counts whole
	}
	return round(float64(max(other, 0))/float64(b.total-a.total), 3)
}
