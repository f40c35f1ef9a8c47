package daemon

import (
	"fmt"
	"os"
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Systemd is the Notifier of a daemon that systemd runs as a Type=notify
// service (README.md, "Install as a service"): it speaks systemd's notify
// protocol through go-systemd, reading $NOTIFY_SOCKET, $WATCHDOG_USEC and
// $WATCHDOG_PID. Outside systemd NOTIFY_SOCKET is unset, every
// notification is a no-op and there is no watchdog, so the daemon notifies
// unconditionally.
type Systemd struct{}

// Ready tells systemd that start-up is complete: a Type=notify unit counts
// as started only from here on.
func (Systemd) Ready() error { return sdNotify(sddaemon.SdNotifyReady) }

// Stopping tells systemd the daemon has begun to shut down, so the drain is
// not mistaken for a hang.
func (Systemd) Stopping() error { return sdNotify(sddaemon.SdNotifyStopping) }

// Watchdog tells systemd the main loop is alive; with WatchdogSec= set,
// systemd aborts and restarts a daemon that stops sending it.
func (Systemd) Watchdog() error { return sdNotify(sddaemon.SdNotifyWatchdog) }

// WatchdogInterval returns the watchdog timeout systemd expects WATCHDOG=1
// within, and whether the watchdog is on for this process. A missing or
// malformed WATCHDOG_USEC, or a WATCHDOG_PID naming another process (the
// variables were inherited from a parent systemd watches), means none.
func (Systemd) WatchdogInterval() (time.Duration, bool) {
	d, err := sddaemon.SdWatchdogEnabled(false)
	return d, err == nil && d > 0
}

func sdNotify(state string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	if !strings.HasPrefix(socket, "/") && !(strings.HasPrefix(socket, "@") && len(socket) > 1) {
		return fmt.Errorf("NOTIFY_SOCKET=%q is neither an absolute path nor an abstract socket name (@name): "+
			"leave NOTIFY_SOCKET to systemd, and unset it when running outside systemd", socket)
	}
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("send %s to NOTIFY_SOCKET %s: %w "+
			"(systemd sets NOTIFY_SOCKET for a Type=notify service and listens on it; when not run by systemd, unset NOTIFY_SOCKET)",
			state, socket, err)
	}
	return nil
}
