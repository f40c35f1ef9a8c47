package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
	"github.com/cancelnotify/cancelnotify/internal/textcut"
)

// childEnv is this process's environment without any cancelnotify setting
// the developer may have exported (a callback URL, another schema), plus
// the run's own.
func childEnv(set map[string]string) []string {
	return childproc.Env(func(k string) bool {
		return k == "DATABASE_URL" || strings.HasPrefix(k, "CANCELNOTIFY_") || strings.HasPrefix(k, "ONEMSG_")
	}, set)
}

// supervisor runs the daemon as a separate process, one incarnation at a
// time: it kills it when asked and restarts it after a pause, and restarts
// it (counting the exit) when it ends by itself.
type supervisor struct {
	bin      string
	env      []string
	logDir   string
	addr     string // the webhook listener: open means the daemon is up
	grace    time.Duration
	progress func(format string, args ...any)

	mu          sync.Mutex
	cur         *childproc.Proc
	killing     *childproc.Proc // the incarnation being killed on purpose
	incarnation int
	kills       int
	exits       []DaemonExit
	logs        []string
	stopping    bool
	watchers    sync.WaitGroup
}

// start starts a new incarnation unless one is running.
func (s *supervisor) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

func (s *supervisor) startLocked(ctx context.Context) error {
	if s.stopping || (s.cur != nil && !s.cur.Exited()) {
		return nil
	}
	s.incarnation++
	n := s.incarnation
	path := filepath.Join(s.logDir, fmt.Sprintf("daemon-%02d.log", n))
	c, err := childproc.Start(childproc.Spec{Name: fmt.Sprintf("daemon incarnation %d", n), Bin: s.bin,
		Args: []string{"run"}, Env: s.env, LogPath: path})
	if err != nil {
		return err
	}
	s.cur = c
	s.logs = append(s.logs, path)
	s.watchers.Go(func() { s.watch(ctx, c, n) })
	return nil
}

// watch restarts an incarnation that ended without being killed or
// stopped. The pause keeps a crash loop from spinning; every exit is
// reported in the table.
func (s *supervisor) watch(ctx context.Context, c *childproc.Proc, n int) {
	<-c.Done()
	s.mu.Lock()
	if s.stopping || (s.killing == c && c.KilledBySIGKILL()) {
		s.mu.Unlock()
		return
	}
	e := DaemonExit{Incarnation: n, ExitCode: c.ExitCode(), Log: c.LogPath(),
		After: time.Since(c.Started()).Round(100 * time.Millisecond).String()}
	s.exits = append(s.exits, e)
	s.mu.Unlock()
	s.progress("daemon incarnation %d exited by itself (code %d after %s); restarting it; log %s",
		n, e.ExitCode, e.After, e.Log)
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Second):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == c {
		if err := s.startLocked(ctx); err != nil {
			s.progress("restarting the daemon failed: %v", err)
		}
	}
}

// kill SIGKILLs the running incarnation and waits for it to be gone. It
// reports false when no incarnation was running.
func (s *supervisor) kill() (bool, error) {
	s.mu.Lock()
	c := s.cur
	if c == nil || c.Exited() {
		s.mu.Unlock()
		return false, nil
	}
	s.killing = c
	s.mu.Unlock()
	killed, err := c.Kill()
	if err != nil || !killed {
		return false, err // !killed: it had exited by itself just before, and watch counts it
	}
	s.mu.Lock()
	s.kills++
	s.mu.Unlock()
	return true, nil
}

// waitReady waits until the daemon's webhook listener accepts connections,
// which it opens only after the schema check, whichever incarnation that is.
func (s *supervisor) waitReady(ctx context.Context, timeout time.Duration) error {
	if err := childproc.WaitListening(ctx, s.addr, timeout, nil); err != nil {
		return fmt.Errorf("the daemon's webhook listener: %w", err)
	}
	return nil
}

// stop ends the last incarnation with SIGTERM, the way an operator stops
// the service, and returns its exit code (-1 if none was running).
func (s *supervisor) stop() int {
	s.mu.Lock()
	s.stopping = true
	c := s.cur
	s.mu.Unlock()
	code := -1
	if c != nil && !c.Exited() {
		_ = c.Stop(s.grace) // a kill after grace shows as code -1
		code = c.ExitCode()
	}
	s.watchers.Wait()
	return code
}

func (s *supervisor) counts() (kills int, exits []DaemonExit, logs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kills, append([]DaemonExit(nil), s.exits...), append([]string(nil), s.logs...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// grepLogs returns up to max lines per needle from the log files, each
// prefixed with its file's name.
func grepLogs(paths, needles []string, max int) []string {
	var out []string
	for _, needle := range needles {
		found := 0
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() && found < max {
				if strings.Contains(sc.Text(), needle) {
					out = append(out, filepath.Base(p)+": "+textcut.Truncate(sc.Text(), 300))
					found++
				}
			}
			f.Close()
		}
	}
	return out
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
