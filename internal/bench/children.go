package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is the sandbox or the daemon, each its own process so that the
// daemon's CPU, memory and connections are its own, as in production.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // after exited is closed
}

// startChild starts bin with args and env; its stderr (and stdout, unless
// stdout is given) go to the log file logPath.
func startChild(name, bin string, args, env []string, logPath string, stdout *os.File) (*child, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start the %s (%s %s): %w", name, bin, strings.Join(args, " "), err)
	}
	c := &child{name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// running reports an error if the process has exited.
func (c *child) running() error {
	select {
	case <-c.exited:
		return fmt.Errorf("the %s exited (%v); see %s", c.name, c.err, c.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to grace for a clean exit, then kills.
func (c *child) stop(grace time.Duration) error {
	defer c.log.Close()
	if c.running() != nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("the %s did not stop within %s of SIGTERM and was killed", c.name, grace)
	}
}

// peakRSS returns the process's peak resident set (VmHWM).
func (c *child) peakRSS() (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(c.pid()), "status"))
	if err != nil {
		return 0, fmt.Errorf("read the %s's peak RSS: %w", c.name, err)
	}
	return procKB(string(b), "VmHWM") * 1024, nil
}

// startSandbox starts `cancelnotify sandbox` on a free port and returns it
// with its base URL, read from the line it prints once it listens.
func startSandbox(ctx context.Context, bin string, args, env []string, logPath string) (*child, string, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("pipe for the sandbox's output: %w", err)
	}
	c, err := startChild("sandbox", bin, append([]string{"sandbox", "--addr", "127.0.0.1:0"}, args...), env, logPath, pw)
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
			if rest, ok := strings.CutPrefix(sc.Text(), "1MSG sandbox listening on "); ok {
				found <- strings.TrimSpace(rest)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case base := <-found:
		return c, base, nil
	case <-c.exited:
		return nil, "", c.running()
	case <-ctx.Done():
		_ = c.stop(time.Second)
		return nil, "", ctx.Err()
	case <-time.After(15 * time.Second):
		_ = c.stop(time.Second)
		return nil, "", errors.New("the sandbox did not report its address within 15 s; see " + logPath)
	}
}

// freeAddr returns a loopback address nothing listens on now. Another
// process could take it before the daemon does; the daemon then fails to
// start and says so.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHTTP waits until something answers HTTP at addr: the daemon serves
// its webhook only once River and the relay have started.
func waitHTTP(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		if err := c.running(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s did not answer on %s within %s; see %s", c.name, addr, timeout, c.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logLevels counts the warnings and errors in a JSON-lines slog log.
func logLevels(path string) (warnings, errs int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	for line := range bytes.Lines(b) {
		var l struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		switch l.Level {
		case "WARN":
			warnings++
		case "ERROR":
			errs++
		}
	}
	return warnings, errs
}

// childEnv returns the parent's environment with overrides applied; exec
// uses the last value of a repeated key.
func childEnv(overrides map[string]string) []string {
	env := os.Environ()
	for k, v := range overrides {
		env = append(env, k+"="+v)
	}
	return env
}
