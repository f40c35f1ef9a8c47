package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// option is one setting: an environment variable that is also a flag. Its
// raw text comes from the flag if given, else the environment, else the
// default; conversion happens after parsing so every bad value is reported
// at once (exit code 2), naming the variable, the flag and the expected form.
type option struct {
	env, flag, def, usage string
	secret                bool
	file                  *option // a secret's <VAR>_FILE companion
	isBool                bool
	raw                   string
	from                  string // "flag", "env" or "default"
}

func (o *option) String() string { return o.raw }

// IsBoolFlag lets boolean options be given as a bare --flag.
func (o *option) IsBoolFlag() bool { return o.isBool }
func (o *option) Set(s string) error {
	o.raw, o.from = s, "flag"
	return nil
}

func (o *option) name() string {
	if o.env != "" {
		return fmt.Sprintf("%s (--%s)", o.env, o.flag)
	}
	return "--" + o.flag
}

// shown is the value as it may appear in a message.
func (o *option) shown() string {
	if o.secret {
		return "(hidden)"
	}
	return strconv.Quote(o.raw)
}

// settings is the option set of one command.
type settings struct {
	fs     *flag.FlagSet
	getenv func(string) string
	opts   []*option
	errs   []string
}

func newSettings(fs *flag.FlagSet, getenv func(string) string) *settings {
	return &settings{fs: fs, getenv: getenv}
}

func (s *settings) add(env, flagName, def, usage string) *option {
	o := &option{env: env, flag: flagName, def: def, usage: usage, raw: def, from: "default"}
	if env != "" {
		usage = fmt.Sprintf("%s (env %s)", usage, env)
	}
	// Registered before the environment is read: --help shows the built-in
	// default, never a value (or a password) from the environment.
	s.fs.Var(o, flagName, usage)
	if env != "" {
		if v, ok := lookup(s.getenv, env); ok {
			o.raw, o.from = v, "env"
		}
	}
	s.opts = append(s.opts, o)
	return o
}

func (s *settings) addBool(env, flagName string, def bool, usage string) *option {
	o := s.add(env, flagName, strconv.FormatBool(def), usage)
	o.isBool = true
	return o
}

// secret adds a secret option and its <VAR>_FILE / --<flag>-file companion.
func (s *settings) secret(env, flagName, usage string) *option {
	o := s.add(env, flagName, "", usage)
	o.secret = true
	o.file = s.add(env+"_FILE", flagName+"-file", "", "file holding "+env+" (preferred: keeps the secret out of the environment)")
	return o
}

func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	return v, v != ""
}

func (s *settings) fail(format string, args ...any) {
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// err returns every problem found, one per line.
func (s *settings) err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return &configError{problems: s.errs}
}

type configError struct{ problems []string }

func (e *configError) Error() string {
	return "configuration is not usable:\n  - " + strings.Join(e.problems, "\n  - ")
}

func (s *settings) required(o *option, example string) string {
	if strings.TrimSpace(o.raw) == "" {
		s.fail("%s is not set: set it, e.g. %s", o.name(), example)
	}
	return strings.TrimSpace(o.raw)
}

func (s *settings) duration(o *option) time.Duration {
	d, err := parseDuration(strings.TrimSpace(o.raw))
	if err != nil || d < 0 {
		s.fail("%s = %s is not a duration: write it like 30s, 90m, 24h or 90d", o.name(), o.shown())
		return 0
	}
	return d
}

// parseDuration is time.ParseDuration plus whole days ("90d", "1d12h"),
// the unit retention periods are thought in.
func parseDuration(v string) (time.Duration, error) {
	days, rest, ok := strings.Cut(v, "d")
	if !ok {
		return time.ParseDuration(v)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a whole number of days before d", v)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("duration %q: %w", v, err)
	}
	return d + r, nil
}

func (s *settings) integer(o *option, lo, hi int) int {
	n, err := strconv.Atoi(strings.TrimSpace(o.raw))
	if err != nil || n < lo || n > hi {
		s.fail("%s = %s is not a whole number from %d to %d", o.name(), o.shown(), lo, hi)
		return 0
	}
	return n
}

func (s *settings) float(o *option, lo, hi float64) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(o.raw), 64)
	if err != nil || f < lo || f > hi {
		s.fail("%s = %s is not a number from %g to %g", o.name(), o.shown(), lo, hi)
		return 0
	}
	return f
}

func (s *settings) httpURL(o *option) string {
	v := strings.TrimSpace(o.raw)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.fail("%s = %s is not an http(s) URL: write it like https://api.1msg.io", o.name(), o.shown())
	}
	return v
}

func (s *settings) databaseURL(o *option) string {
	v := strings.TrimSpace(o.raw)
	if v == "" {
		s.fail("%s is not set: set it to the OMS database, e.g. postgres://cancelnotify:PASSWORD@db.internal:5432/oms", o.name())
		return ""
	}
	if strings.Contains(v, "://") {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			s.fail("%s is not a postgres:// URL: write it like postgres://user:password@host:5432/dbname", o.name())
		}
	}
	return v
}

// secretValue resolves a secret: the variable itself, else the file its
// <VAR>_FILE names, else systemd's credential (LoadCredential=NAME:…) in
// $CREDENTIALS_DIRECTORY. configured is false when none of them is set; a
// source that is set but unreadable or empty is reported through s.
func (s *settings) secretValue(o *option, credential string) (value string, configured bool) {
	if v := strings.TrimSpace(o.raw); v != "" {
		return v, true
	}
	path, from := "", ""
	if o.file != nil {
		path, from = strings.TrimSpace(o.file.raw), o.file.name()
	}
	if path == "" {
		if dir := s.getenv("CREDENTIALS_DIRECTORY"); dir != "" {
			if p := filepath.Join(dir, credential); fileExists(p) {
				path, from = p, "systemd credential "+credential
			}
		}
	}
	if path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		s.fail("%s: %s cannot be read (%v): make it readable by the daemon's user", from, path, err)
		return "", true
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		s.fail("%s: %s is empty: put the %s in it", from, path, strings.ReplaceAll(credential, "-", " "))
	}
	return v, true
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// token resolves the 1MSG token, which is required.
func (s *settings) token(tok *option) string {
	v, configured := s.secretValue(tok, "onemsg-token")
	if !configured {
		s.fail("the 1MSG token is not set: set ONEMSG_TOKEN, or ONEMSG_TOKEN_FILE to a file holding it (systemd: LoadCredential=onemsg-token:/path)")
	}
	return v
}

func (s *settings) boolean(o *option) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(o.raw))
	if err != nil {
		s.fail("%s = %s is not a boolean: write true or false", o.name(), o.shown())
	}
	return b
}
