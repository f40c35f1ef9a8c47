package sdnotify_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/sdnotify"
)

// A daemon's life under systemd: READY=1 once it serves, WATCHDOG=1 from the
// main loop at half the watchdog timeout, STOPPING=1 when it begins to stop.
// Outside systemd every call does nothing and returns nil.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	// ... connect, check migrations, start the relay and River ...
	if err := sdnotify.Ready(); err != nil {
		log.Printf("tell systemd we are ready: %v", err)
	}

	var tick <-chan time.Time
	if timeout, ok := sdnotify.WatchdogInterval(); ok {
		t := time.NewTicker(timeout / 2)
		defer t.Stop()
		tick = t.C
	}
	// A nil tick (no watchdog) never fires: the loop just waits for SIGTERM.
loop:
	for {
		select {
		case <-tick:
			if err := sdnotify.Watchdog(); err != nil {
				log.Printf("watchdog ping: %v", err)
			}
		case <-ctx.Done():
			break loop
		}
	}

	if err := sdnotify.Stopping(); err != nil {
		log.Printf("tell systemd we are stopping: %v", err)
	}
	// ... drain in-flight sends within CANCELNOTIFY_SHUTDOWN_TIMEOUT ...
}

// A Notifier takes its environment explicitly, here the one systemd gives a
// unit with WatchdogSec=30s but no notify socket.
func ExampleNotifier_WatchdogInterval() {
	env := map[string]string{"WATCHDOG_USEC": "30000000"}
	n := sdnotify.FromEnv(func(key string) string { return env[key] })

	timeout, ok := n.WatchdogInterval()
	fmt.Println("watchdog:", ok, "ping every", timeout/2)

	sent, err := n.Notify("READY=1")
	fmt.Println("sent:", sent, "error:", err)
	// Output:
	// watchdog: true ping every 15s
	// sent: false error: <nil>
}
