package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
)

// startSandbox starts `cancelnotify sandbox` on a free port and returns it
// with its base URL, read from the line it prints once it listens.
func startSandbox(ctx context.Context, bin string, args, env []string, logPath string) (*childproc.Proc, string, error) {
	return childproc.StartAnnounced(ctx, childproc.Spec{
		Name: "sandbox", Bin: bin, Args: append([]string{"sandbox", "--addr", "127.0.0.1:0"}, args...),
		Env: env, LogPath: logPath,
	}, "1MSG sandbox listening on ", 15*time.Second)
}

// peakRSS returns the process's peak resident set (VmHWM).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read the daemon's peak RSS: %w", err)
	}
	return procKB(string(b), "VmHWM") * 1024, nil
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

// childEnv returns the parent's environment with overrides applied: any
// other CANCELNOTIFY_* variable the caller exported reaches the daemon too.
func childEnv(overrides map[string]string) []string {
	return childproc.Env(nil, overrides)
}
