package sdnotify

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// systemd itself listens on a path, but a container manager or a test
// harness may hand the service an abstract socket (NOTIFY_SOCKET=@name).
func TestNotifyAbstractSocket(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("@cancelnotify-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn := listenAt(t, name)
	if err := (Notifier{Socket: name}).Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("systemd received %q, want %q", got, "READY=1")
	}
}
