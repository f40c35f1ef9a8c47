package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"riverqueue.com/riverui"
)

// adminHandler serves the operator endpoints on the admin listener (never
// the public webhook one): /healthz and /readyz for probes, and /metrics,
// /riverui/, the support page /notifications and, with Pprof, /debug/pprof/
// behind basic auth when a user is configured. Pages added later go on
// private; protect wraps everything.
func (d *Daemon) adminHandler(ctx context.Context) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /readyz", d.readyz)

	private := http.NewServeMux()
	private.Handle("GET /metrics", d.metrics.Handler())
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(d.river, nil),
		Logger:    riverLogger(d.logger),
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, err
	}
	if err := ui.Start(ctx); err != nil {
		return nil, err
	}
	private.Handle("/riverui/", ui)
	private.Handle("/riverui", ui)
	sp, err := d.supportPage()
	if err != nil {
		return nil, err
	}
	private.Handle("/notifications", sp)
	private.Handle("/notifications/", sp)
	if d.cfg.Pprof {
		private.HandleFunc("/debug/pprof/", pprof.Index)
		// Never the command line: secrets may be given as flags.
		private.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
		private.HandleFunc("/debug/pprof/profile", pprof.Profile)
		private.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		private.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", basicAuth(d.cfg.AdminUser, d.cfg.AdminPassword, private))
	return protect(d.adminLn.Addr(), mux), nil
}

// protect guards every admin endpoint against a web page in the operator's
// browser: a request naming a host that is not this loopback listener
// (DNS rebinding) is refused, as is a state-changing request from another
// origin (CSRF), and River UI's API accepts state changes only as JSON,
// which a foreign page cannot send without the browser asking first.
func protect(addr net.Addr, next http.Handler) http.Handler {
	loopback := false
	if tcp, ok := addr.(*net.TCPAddr); ok {
		loopback = tcp.IP.IsLoopback()
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: use the admin endpoints from their own pages or a non-browser client", http.StatusForbidden)
	}))
	next = csrf.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loopback && !loopbackHost(r.Host) {
			http.Error(w, "this admin listener is on loopback: address it as localhost, 127.0.0.1 or [::1]", http.StatusMisdirectedRequest)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/riverui/api/") && !safeMethod(r.Method) {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				http.Error(w, "River UI's API takes application/json only", http.StatusUnsupportedMediaType)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// loopbackHost reports whether a Host header names this machine's loopback.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackAddr reports whether a listen address (host:port) binds to
// loopback only; "" host (all interfaces) and other names do not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readyz answers 200 only when the daemon can do its job: the database
// answers, River is running and the relay is listening.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "river": "ok", "relay": "ok"}
	ready := true
	if err := d.pool.Ping(ctx); err != nil {
		checks["database"], ready = "unreachable: "+err.Error(), false
	}
	if !d.riverRunning.Load() {
		checks["river"], ready = "not running", false
	}
	if !d.relay.Listening() {
		checks["relay"], ready = "not listening (polling only) — database connection lost?", false
	}
	if h := d.relay.Health(); h.Stalled() {
		checks["relay"], ready = fmt.Sprintf("making no progress: %d drains in a row failed since %s; last error: %s",
			h.Failures, h.FailingSince.UTC().Format(time.RFC3339), h.LastError), false
	}
	// A held channel leaves the daemon ready: the webhook receiver must keep
	// taking statuses, and the held sends resume by themselves. The body
	// names it for whoever looks.
	var held []string
	for _, st := range d.health.Snapshot() {
		if !st.Healthy() {
			checks["channel "+st.Channel] = st.Describe()
			held = append(held, st.Channel)
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	body := map[string]any{"ready": ready, "checks": checks}
	if len(held) > 0 {
		body["held_channels"] = held
	}
	writeJSON(w, status, body)
}

// basicAuth requires user and password when user is set.
func basicAuth(user, password string, next http.Handler) http.Handler {
	if user == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="cancelnotify", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
