package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listen opens a unix datagram socket the way systemd opens its notify
// socket, at a short path in a temporary directory (sun_path holds only 108
// bytes, and a deep TMPDIR can exceed that).
func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 {
		var err error
		if dir, err = os.MkdirTemp("/tmp", "sdnotify"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	path := filepath.Join(dir, "notify.sock")
	return listenAt(t, path), path
}

func listenAt(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive reads one datagram, as systemd does, failing instead of hanging
// when none arrives.
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

func TestNotifySends(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send func(Notifier) error
		want string
	}{
		{"ready", Notifier.Ready, "READY=1"},
		{"stopping", Notifier.Stopping, "STOPPING=1"},
		{"watchdog", Notifier.Watchdog, "WATCHDOG=1"},
		{"status", func(n Notifier) error { return n.Status("relaying, 3 sends in flight") }, "STATUS=relaying, 3 sends in flight"},
		{"status newlines cannot inject an assignment", func(n Notifier) error { return n.Status("draining\nREADY=1\r\nnow") }, "STATUS=draining READY=1 now"},
		{"several assignments", func(n Notifier) error {
			sent, err := n.Notify("READY=1\nSTATUS=ready")
			if err == nil && !sent {
				t.Error("Notify reported not sent with a socket set")
			}
			return err
		}, "READY=1\nSTATUS=ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, path := listen(t)
			if err := tt.send(Notifier{Socket: path}); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := receive(t, conn); got != tt.want {
				t.Errorf("systemd received %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Parallel()
	var n Notifier // NOTIFY_SOCKET unset
	sent, err := n.Notify("READY=1")
	if sent || err != nil {
		t.Errorf("Notify = %v, %v; want false, nil outside systemd", sent, err)
	}
	for name, f := range map[string]func() error{
		"Ready": n.Ready, "Stopping": n.Stopping, "Watchdog": n.Watchdog,
		"Status": func() error { return n.Status("x") },
	} {
		if err := f(); err != nil {
			t.Errorf("%s outside systemd: %v, want nil", name, err)
		}
	}
	if d, ok := n.WatchdogInterval(); ok || d != 0 {
		t.Errorf("WatchdogInterval = %v, %v; want 0, false", d, ok)
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "gone.sock")
	tests := []struct {
		name   string
		socket string
		state  string
		want   []string // substrings of the message
		is     error
	}{
		{
			name: "no listener at the path", socket: missing, state: "READY=1",
			want: []string{"sdnotify: send \"READY=1\" to NOTIFY_SOCKET " + missing, "unset NOTIFY_SOCKET"},
			is:   syscall.ENOENT,
		},
		{
			name: "relative path", socket: "run/notify", state: "READY=1",
			want: []string{`NOTIFY_SOCKET="run/notify" is neither an absolute path nor an abstract socket name`, "unset it"},
		},
		{
			name: "bare @", socket: "@", state: "READY=1",
			want: []string{`NOTIFY_SOCKET="@" is neither`},
		},
		{
			name: "empty state", socket: missing, state: "",
			want: []string{"empty state", "READY=1"},
		},
		{
			name: "long status is shortened in the message", socket: missing, state: "STATUS=" + strings.Repeat("é", 100),
			want: []string{`"STATUS=` + strings.Repeat("é", 53) + `…"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sent, err := Notifier{Socket: tt.socket}.Notify(tt.state)
			if err == nil || sent {
				t.Fatalf("Notify = %v, %v; want false and an error", sent, err)
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

func TestWatchdogInterval(t *testing.T) {
	t.Parallel()
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
		{"overflows a Duration", "18446744073709551615", "", 0, false},
		{"pid without usec", "", self, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Notifier{WatchdogUSec: tt.usec, WatchdogPID: tt.pid}.WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v; want %v, %v", tt.usec, tt.pid, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "7", "HOME": "/root"}
	got := FromEnv(func(k string) string { return env[k] })
	want := Notifier{Socket: "@sd", WatchdogUSec: "1000", WatchdogPID: "7"}
	if got != want {
		t.Errorf("FromEnv = %+v, want %+v", got, want)
	}
}

// TestProcessEnvironment covers the package-level functions, the ones the
// daemon calls; it sets the process environment, so it cannot be parallel.
func TestProcessEnvironment(t *testing.T) {
	conn, path := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	for _, step := range []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{Watchdog, "WATCHDOG=1"},
		{func() error { return Status("stopping") }, "STATUS=stopping"},
		{Stopping, "STOPPING=1"},
		{func() error { _, err := Notify("RELOADING=1"); return err }, "RELOADING=1"},
	} {
		if err := step.send(); err != nil {
			t.Fatalf("send %s: %v", step.want, err)
		}
		if got := receive(t, conn); got != step.want {
			t.Errorf("systemd received %q, want %q", got, step.want)
		}
	}
	if d, ok := WatchdogInterval(); d != 20*time.Second || !ok {
		t.Errorf("WatchdogInterval = %v, %v; want 20s, true", d, ok)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("Notify with NOTIFY_SOCKET unset = %v, %v; want false, nil", sent, err)
	}
}
