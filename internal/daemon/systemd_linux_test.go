package daemon_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/daemon"
)

// systemd itself listens on a path, but a container manager or a test
// harness may hand the service an abstract socket (NOTIFY_SOCKET=@name).
func TestSystemdAbstractSocket(t *testing.T) {
	conn := listenNotify(t, fmt.Sprintf("@cancelnotify-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := (daemon.Systemd{}).Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("systemd received %q, want READY=1", got)
	}
}
