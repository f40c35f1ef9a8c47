package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process of the run (the sandbox or one daemon incarnation)
// writing its stdout and stderr to a log file.
type child struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{} // closed when the process has been waited for
}

func startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from ProcessState
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// killedBySIGKILL reports whether the finished process died of SIGKILL.
func (c *child) killedBySIGKILL() bool {
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// stop asks the process to stop (SIGTERM) and kills it after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// runOnce runs a short command (migrate, webhook register) to completion,
// its output in logPath; a failure quotes the output's last lines.
func runOnce(ctx context.Context, name, bin string, args, env []string, logPath string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(logPath, out, 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, lastLines(string(out), 5))
	}
	return nil
}

// childEnv is this process's environment without any cancelnotify setting
// the developer may have exported (a callback URL, another schema), plus
// the run's own.
func childEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || strings.HasPrefix(k, "CANCELNOTIFY_") || strings.HasPrefix(k, "ONEMSG_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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
	cur         *child
	killing     *child // the incarnation being killed on purpose
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
	if s.stopping || (s.cur != nil && !s.cur.exited()) {
		return nil
	}
	s.incarnation++
	n := s.incarnation
	path := filepath.Join(s.logDir, fmt.Sprintf("daemon-%02d.log", n))
	c, err := startChild(fmt.Sprintf("daemon incarnation %d", n), s.bin, []string{"run"}, s.env, path)
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
func (s *supervisor) watch(ctx context.Context, c *child, n int) {
	<-c.done
	s.mu.Lock()
	if s.stopping || (s.killing == c && c.killedBySIGKILL()) {
		s.mu.Unlock()
		return
	}
	e := DaemonExit{Incarnation: n, ExitCode: c.cmd.ProcessState.ExitCode(), Log: c.log,
		After: time.Since(c.started).Round(100 * time.Millisecond).String()}
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
	if c == nil || c.exited() {
		s.mu.Unlock()
		return false, nil
	}
	s.killing = c
	s.mu.Unlock()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return false, fmt.Errorf("SIGKILL the daemon: %w", err)
	}
	<-c.done
	if !c.killedBySIGKILL() {
		return false, nil // it had exited by itself just before: watch counts it
	}
	s.mu.Lock()
	s.kills++
	s.mu.Unlock()
	return true, nil
}

// waitReady waits until the daemon's webhook listener accepts connections,
// which it opens only after the schema check, whichever incarnation that is.
func (s *supervisor) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon did not open its webhook listener %s within %s", s.addr, timeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// stop ends the last incarnation with SIGTERM, the way an operator stops
// the service, and returns its exit code (-1 if none was running).
func (s *supervisor) stop() int {
	s.mu.Lock()
	s.stopping = true
	c := s.cur
	s.mu.Unlock()
	code := -1
	if c != nil && !c.exited() {
		c.stop(s.grace)
		code = c.cmd.ProcessState.ExitCode()
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
					out = append(out, filepath.Base(p)+": "+clip(sc.Text(), 300))
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
