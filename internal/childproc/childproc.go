// Package childproc runs the child processes of the benchmark and the chaos
// run (the sandbox and the daemon, each its own process as in production):
// start with a log file, stop with SIGTERM then SIGKILL, kill, and wait for
// a listener.
//
// A child runs in its own process group, so a Ctrl-C at the terminal reaches
// only the parent, which then stops its children in order; on Linux the
// kernel also kills a child whose parent dies, so none outlives the run.
package childproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec says what to start.
type Spec struct {
	Name    string   // in errors: "sandbox", "daemon incarnation 3"
	Bin     string   // the executable
	Args    []string // its arguments
	Env     []string // its whole environment (see Env)
	LogPath string   // stderr, and stdout unless Stdout is set, go here
	// Stdout, when set, receives the child's stdout instead of the log.
	Stdout io.Writer
}

// Proc is a started child.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error // cmd.Wait's, once done is closed
}

// Start starts the child described by s.
func Start(s Spec) (*Proc, error) {
	log, err := os.Create(s.LogPath)
	if err != nil {
		return nil, fmt.Errorf("create the log of the %s: %w", s.Name, err)
	}
	cmd := exec.Command(s.Bin, s.Args...)
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = log, log
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start the %s (%s %s): %w", s.Name, s.Bin, strings.Join(s.Args, " "), err)
	}
	p := &Proc{name: s.Name, cmd: cmd, logPath: s.LogPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// StartAnnounced starts the child and waits until it prints a line that
// begins with prefix on stdout; it returns the rest of that line (trimmed),
// typically the address it listens on. Starting with port 0 and reading the
// address back leaves no window in which another process takes the port.
func StartAnnounced(ctx context.Context, s Spec, prefix string, timeout time.Duration) (*Proc, string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("pipe for the %s's output: %w", s.Name, err)
	}
	s.Stdout = pw
	p, err := Start(s)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				found <- strings.TrimSpace(rest)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr) // a full pipe would block the child
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line := <-found:
		return p, line, nil
	case <-p.done:
		return nil, "", p.Running()
	case <-ctx.Done():
		_ = p.Stop(time.Second)
		return nil, "", ctx.Err()
	case <-t.C:
		_ = p.Stop(time.Second)
		return nil, "", fmt.Errorf("the %s did not print %q within %s; see %s", s.Name, prefix, timeout, s.LogPath)
	}
}

// Name is the Spec's name.
func (p *Proc) Name() string { return p.name }

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath is where its output goes.
func (p *Proc) LogPath() string { return p.logPath }

// Started is when it was started.
func (p *Proc) Started() time.Time { return p.started }

// Done is closed once the child has exited and been waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running returns nil while the child runs, and an error naming how it
// ended and its log once it has exited.
func (p *Proc) Running() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("the %s exited (%v); see %s", p.name, p.err, p.logPath)
}

// ExitCode is the exit code of an exited child; -1 while it runs or when a
// signal ended it.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// KilledBySIGKILL reports whether the exited child died of SIGKILL.
func (p *Proc) KilledBySIGKILL() bool {
	if !p.Exited() {
		return false
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Stop asks the child to stop (SIGTERM), the way an operator stops the
// service, and kills it after grace. The error says when it had to be
// killed; a child that had already exited is not an error.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the %s did not stop within %s of SIGTERM and was killed", p.name, grace)
	}
}

// Kill sends SIGKILL and waits until the child is gone. It reports whether
// SIGKILL is what ended it: false when the child had exited by itself first.
func (p *Proc) Kill() (bool, error) {
	if p.Exited() {
		return false, nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return false, fmt.Errorf("SIGKILL the %s: %w", p.name, err)
	}
	<-p.done
	return p.KilledBySIGKILL(), nil
}

// WaitListening waits until something accepts TCP connections on addr,
// giving up after timeout or as soon as alive (when not nil) returns an
// error, such as Running of the process expected to listen.
func WaitListening(ctx context.Context, addr string, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listened on %s within %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreeAddr returns a loopback address nothing listens on now. Another
// process could take it before the child does; the child then fails to
// start and says so. Prefer StartAnnounced where the child can print its
// address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Env returns this process's environment without the variables drop
// reports (nil: none dropped), plus set; exec uses the last value of a
// repeated key, so set wins.
func Env(drop func(key string) bool, set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if drop != nil && drop(k) {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// Run runs a short command (migrate, webhook register) to completion with
// its output in logPath; a failure quotes the output's last lines.
func Run(ctx context.Context, name, bin string, args, env []string, logPath string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = procAttr()
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(logPath, out, 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, lastLines(string(out), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
