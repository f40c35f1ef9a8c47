package childproc_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
)

// The test binary is its own child: with CHILDPROC_MODE set, TestMain plays
// the child instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("CHILDPROC_MODE") {
	case "":
		os.Exit(m.Run())
	case "exit3":
		fmt.Fprintln(os.Stderr, "something broke")
		os.Exit(3)
	case "listen":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println("noise first")
		fmt.Println("listening on " + ln.Addr().String())
		waitSIGTERM()
	case "graceful":
		waitSIGTERM()
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
}

func waitSIGTERM() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	fmt.Println("ready")
	<-ch
	os.Exit(0)
}

func spec(t *testing.T, mode string) childproc.Spec {
	return childproc.Spec{
		Name: mode, Bin: os.Args[0], Args: []string{"-test.run=^$"},
		Env:     childproc.Env(nil, map[string]string{"CHILDPROC_MODE": mode}),
		LogPath: filepath.Join(t.TempDir(), mode+".log"),
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		mode       string
		grace      time.Duration // a -race binary sleeps 1 s at exit
		wantKilled bool          // Stop had to SIGKILL it
	}{
		{"graceful", 10 * time.Second, false},
		{"stubborn", 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			// "ready" comes after the signal handling is in place.
			p, _, err := childproc.StartAnnounced(context.Background(), spec(t, tt.mode), "ready", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Running(); err != nil {
				t.Fatalf("Running = %v, want nil", err)
			}
			err = p.Stop(tt.grace)
			if killed := err != nil; killed != tt.wantKilled {
				t.Fatalf("Stop = %v, want killed %v", err, tt.wantKilled)
			}
			if !p.Exited() || p.KilledBySIGKILL() != tt.wantKilled {
				t.Fatalf("after Stop: exited %v, SIGKILLed %v", p.Exited(), p.KilledBySIGKILL())
			}
			if err := p.Stop(time.Second); err != nil {
				t.Fatalf("second Stop = %v, want nil", err)
			}
		})
	}
}

func TestKill(t *testing.T) {
	p, _, err := childproc.StartAnnounced(context.Background(), spec(t, "stubborn"), "ready", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	killed, err := p.Kill()
	if err != nil || !killed || p.ExitCode() != -1 {
		t.Fatalf("Kill = %v, %v; exit code %d; want killed, -1", killed, err, p.ExitCode())
	}
	if killed, err := p.Kill(); killed || err != nil {
		t.Fatalf("second Kill = %v, %v; want false, nil", killed, err)
	}
}

func TestExitByItself(t *testing.T) {
	p, err := childproc.Start(spec(t, "exit3"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if p.ExitCode() != 3 || p.KilledBySIGKILL() {
		t.Fatalf("exit code %d, SIGKILLed %v; want 3, false", p.ExitCode(), p.KilledBySIGKILL())
	}
	err = p.Running()
	if err == nil || !strings.Contains(err.Error(), p.LogPath()) {
		t.Fatalf("Running = %v, want an error naming the log", err)
	}
	if b, _ := os.ReadFile(p.LogPath()); !strings.Contains(string(b), "something broke") {
		t.Fatalf("log = %q, want the child's stderr", b)
	}
	_, _, err = childproc.StartAnnounced(context.Background(), spec(t, "exit3"), "listening on ", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("StartAnnounced of a failing child = %v, want its exit", err)
	}
}

func TestStartAnnouncedAndWaitListening(t *testing.T) {
	p, addr, err := childproc.StartAnnounced(context.Background(), spec(t, "listen"), "listening on ", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("announced %q, want the listener's address", addr)
	}
	if err := childproc.WaitListening(context.Background(), addr, 5*time.Second, p.Running); err != nil {
		t.Fatal(err)
	}
	free, err := childproc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if err := childproc.WaitListening(context.Background(), free, 200*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), free) {
		t.Fatalf("WaitListening(%s) = %v, want an error naming it", free, err)
	}
}

func TestRun(t *testing.T) {
	log := filepath.Join(t.TempDir(), "run.log")
	s := spec(t, "exit3")
	err := childproc.Run(context.Background(), "the failing step", s.Bin, s.Args, s.Env, log)
	if err == nil || !strings.Contains(err.Error(), "the failing step") || !strings.Contains(err.Error(), "something broke") {
		t.Fatalf("Run = %v, want the step's name and its output", err)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "something broke") {
		t.Fatalf("log = %q", b)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("CHILDPROC_DROPPED", "x")
	env := childproc.Env(func(k string) bool { return k == "CHILDPROC_DROPPED" }, map[string]string{"CHILDPROC_SET": "y"})
	joined := "\n" + strings.Join(env, "\n") + "\n"
	if strings.Contains(joined, "\nCHILDPROC_DROPPED=") || !strings.Contains(joined, "\nCHILDPROC_SET=y\n") {
		t.Fatalf("Env = %v", env)
	}
}
