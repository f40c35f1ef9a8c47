package daemon_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
)

// The Systemd notifier reads the process environment, as systemd sets it,
// so these tests set it and cannot run in parallel.

// listenNotify opens a unix datagram socket the way systemd opens its
// notify socket and points NOTIFY_SOCKET at it. The path is short: sun_path
// holds only 108 bytes, and a deep TMPDIR can exceed that.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	if name == "" {
		dir, err := os.MkdirTemp("/tmp", "sdnotify")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify.sock")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// receive reads one datagram, as systemd does, failing instead of hanging.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return string(buf[:n])
}

func TestSystemdSends(t *testing.T) {
	var n daemon.Systemd
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", n.Ready, "READY=1"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := listenNotify(t, "")
			if err := tt.send(); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := receive(t, conn); got != tt.want {
				t.Errorf("systemd received %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSystemdOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	var n daemon.Systemd
	for name, f := range map[string]func() error{"Ready": n.Ready, "Stopping": n.Stopping, "Watchdog": n.Watchdog} {
		if err := f(); err != nil {
			t.Errorf("%s outside systemd: %v, want nil", name, err)
		}
	}
	if d, ok := n.WatchdogInterval(); ok || d != 0 {
		t.Errorf("WatchdogInterval = %v, %v; want 0, false", d, ok)
	}
}

func TestSystemdErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone.sock")
	tests := []struct {
		name   string
		socket string
		want   []string // substrings of the message
		is     error
	}{
		{"no listener at the path", missing, []string{`send READY=1 to NOTIFY_SOCKET ` + missing, "unset NOTIFY_SOCKET"}, syscall.ENOENT},
		{"relative path", "run/notify", []string{`NOTIFY_SOCKET="run/notify" is neither an absolute path nor an abstract socket name`, "unset it"}, nil},
		{"bare @", "@", []string{`NOTIFY_SOCKET="@" is neither`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			err := (daemon.Systemd{}).Ready()
			if err == nil {
				t.Fatal("Ready = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestSystemdWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	other := strconv.Itoa(os.Getpid() + 1)
	tests := []struct {
		name      string
		usec, pid string
		want      time.Duration
		wantOK    bool
	}{
		{"unset", "", "", 0, false},
		{"30s, no pid", "30000000", "", 30 * time.Second, true},
		{"30s for this process", "30000000", self, 30 * time.Second, true},
		{"sub-second", "500", "", 500 * time.Microsecond, true},
		{"for another process", "30000000", other, 0, false},
		{"pid not a number", "30000000", "init", 0, false},
		{"zero", "0", "", 0, false},
		{"negative", "-30000000", "", 0, false},
		{"not a number", "30s", "", 0, false},
		{"overflows", "18446744073709551615", "", 0, false},
		{"pid without usec", "", self, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := (daemon.Systemd{}).WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v; want %v, %v", tt.usec, tt.pid, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// A daemon run by systemd reports READY=1 once River runs and the relay
// listens, pings the watchdog at half its timeout, and reports STOPPING=1
// when asked to stop.
func TestSystemdLifecycle(t *testing.T) {
	conn := listenNotify(t, "")
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: a ping every 100 ms
	t.Setenv("WATCHDOG_PID", "")
	e := newEnv(t, fastSandbox())
	cfg := e.config()
	cfg.Notifier = daemon.Systemd{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	var seen []string
	for !slices.Contains(seen, "READY=1") || !slices.Contains(seen, "WATCHDOG=1") {
		seen = append(seen, receive(t, conn))
	}
	cancel()
	for !slices.Contains(seen, "STOPPING=1") {
		seen = append(seen, receive(t, conn))
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, m := range seen {
		if m != "READY=1" && m != "WATCHDOG=1" && m != "STOPPING=1" {
			t.Errorf("systemd received %q", m)
		}
	}
}
