// Package sdnotify speaks systemd's notify protocol (sd_notify(3)), so that
// cancelnotify can run as a Type=notify service: it tells systemd when it is
// ready (READY=1), when it begins to stop (STOPPING=1), that its main loop is
// still alive (WATCHDOG=1), and what it is doing (STATUS=…).
//
// The protocol is one unix datagram of newline-separated VAR=value
// assignments, sent to the socket systemd names in $NOTIFY_SOCKET. Outside
// systemd that variable is unset and every call is a no-op, so the daemon can
// call these functions unconditionally. Only the standard library is used.
//
// The package-level functions read the process environment; a Notifier takes
// it explicitly, which is what tests use.
package sdnotify

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The variables systemd sets for a service.
const (
	envSocket       = "NOTIFY_SOCKET"
	envWatchdogUSec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
)

// writeTimeout bounds one send. systemd reads its notify socket promptly, but
// a wedged manager must not stall the daemon's main loop, which is exactly
// what the watchdog is meant to detect.
const writeTimeout = 5 * time.Second

// Notifier sends notifications to one systemd notify socket. The zero value
// is a Notifier outside systemd: every notification is a no-op and there is
// no watchdog. A Notifier holds no connection; it is safe for concurrent use.
type Notifier struct {
	// Socket is $NOTIFY_SOCKET: an absolute path, or a Linux abstract socket
	// name written with a leading '@'. Empty: not run by systemd as a
	// Type=notify service.
	Socket string
	// WatchdogUSec is $WATCHDOG_USEC, the watchdog timeout in microseconds
	// (WatchdogSec= of the unit); empty when the watchdog is off.
	WatchdogUSec string
	// WatchdogPID is $WATCHDOG_PID, the process the watchdog is meant for;
	// empty means this one.
	WatchdogPID string
}

// FromEnv returns the Notifier that getenv describes; FromEnv(os.Getenv) is
// the one systemd set up for this process.
func FromEnv(getenv func(string) string) Notifier {
	return Notifier{
		Socket:       getenv(envSocket),
		WatchdogUSec: getenv(envWatchdogUSec),
		WatchdogPID:  getenv(envWatchdogPID),
	}
}

// Notify sends state, one or more newline-separated assignments such as
// "READY=1" or "STATUS=draining", to the notify socket. It reports whether
// the message was sent: false with a nil error means the process does not
// run under systemd (no socket), which callers should treat as success.
func (n Notifier) Notify(state string) (bool, error) {
	if n.Socket == "" {
		return false, nil
	}
	if state == "" {
		return false, errors.New("sdnotify: empty state: send an assignment such as READY=1")
	}
	addr, err := socketAddr(n.Socket)
	if err != nil {
		return false, err
	}
	// An unbound datagram socket per message, as libsystemd does: nothing
	// to keep open or reconnect, and systemd identifies the sender by the
	// kernel-supplied credentials, not by a return address.
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return false, sendError(n.Socket, state, err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return false, sendError(n.Socket, state, err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, sendError(n.Socket, state, err)
	}
	return true, nil
}

// Ready tells systemd that start-up is complete: a Type=notify unit counts
// as started, and units ordered after it may start, only from here on.
func (n Notifier) Ready() error { return n.send("READY=1") }

// Stopping tells systemd that the daemon has begun to shut down, so the stop
// is reported as such rather than as a crash while the daemon drains.
func (n Notifier) Stopping() error { return n.send("STOPPING=1") }

// Watchdog tells systemd that the daemon is alive; with WatchdogSec= set,
// systemd kills and restarts a daemon that stops sending it.
func (n Notifier) Watchdog() error { return n.send("WATCHDOG=1") }

// Status sets the one-line text `systemctl status` shows. Line breaks are
// turned into spaces: a newline would end the assignment and let the rest of
// the text be read as another one (READY=1, say).
func (n Notifier) Status(text string) error {
	return n.send("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(text))
}

func (n Notifier) send(state string) error {
	_, err := n.Notify(state)
	return err
}

// WatchdogInterval returns the watchdog timeout systemd expects WATCHDOG=1
// within, and whether the watchdog is on for this process. Ping at half of it,
// as sd_watchdog_enabled(3) advises, so one slow tick does not cost a restart.
// A value that is missing, zero, or not a whole number of microseconds means
// no watchdog, and so does a WATCHDOG_PID naming another process (the
// variables were inherited from a parent that systemd watches).
func (n Notifier) WatchdogInterval() (time.Duration, bool) {
	if n.WatchdogUSec == "" {
		return 0, false
	}
	usec, err := strconv.ParseUint(n.WatchdogUSec, 10, 64)
	if err != nil || usec == 0 || usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false
	}
	if n.WatchdogPID != "" {
		pid, err := strconv.Atoi(n.WatchdogPID)
		if err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}

// socketAddr checks $NOTIFY_SOCKET's form. Go's net package itself turns a
// leading '@' into the NUL byte that starts a Linux abstract socket address.
func socketAddr(socket string) (*net.UnixAddr, error) {
	switch {
	case strings.HasPrefix(socket, "/"):
	case strings.HasPrefix(socket, "@") && len(socket) > 1:
	default:
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither an absolute path nor an abstract socket name (@name): "+
			"leave NOTIFY_SOCKET to systemd, and unset it when running outside systemd", socket)
	}
	return &net.UnixAddr{Name: socket, Net: "unixgram"}, nil
}

func sendError(socket, state string, err error) error {
	return fmt.Errorf("sdnotify: send %s to NOTIFY_SOCKET %s: %w "+
		"(systemd sets NOTIFY_SOCKET for a Type=notify service and listens on it; when not run by systemd, unset NOTIFY_SOCKET)",
		firstAssignment(state), socket, err)
}

// firstAssignment names a message in errors without quoting all of a long
// status text.
func firstAssignment(state string) string {
	line, _, _ := strings.Cut(state, "\n")
	if r := []rune(line); len(r) > 60 {
		line = string(r[:60]) + "…"
	}
	return strconv.Quote(line)
}

// Notify sends state to $NOTIFY_SOCKET; see Notifier.Notify.
func Notify(state string) (bool, error) { return FromEnv(os.Getenv).Notify(state) }

// Ready sends READY=1 to $NOTIFY_SOCKET; see Notifier.Ready.
func Ready() error { return FromEnv(os.Getenv).Ready() }

// Stopping sends STOPPING=1 to $NOTIFY_SOCKET; see Notifier.Stopping.
func Stopping() error { return FromEnv(os.Getenv).Stopping() }

// Watchdog sends WATCHDOG=1 to $NOTIFY_SOCKET; see Notifier.Watchdog.
func Watchdog() error { return FromEnv(os.Getenv).Watchdog() }

// Status sends STATUS=text to $NOTIFY_SOCKET; see Notifier.Status.
func Status(text string) error { return FromEnv(os.Getenv).Status(text) }

// WatchdogInterval reads $WATCHDOG_USEC and $WATCHDOG_PID; see
// Notifier.WatchdogInterval.
func WatchdogInterval() (time.Duration, bool) { return FromEnv(os.Getenv).WatchdogInterval() }
