// Package support serves the support page on the admin listener: support
// and finance staff look an order up, see what was sent, when it arrived
// and what it cost, and re-drive it with the same actions as the CLI
// (internal/redrive). Pages are server-rendered with html/template and need
// no JavaScript; every value from a payload is escaped and its invisible
// characters are shown, never obeyed.
package support

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

//go:embed templates/*.html
var templateFiles embed.FS

// Templates lists the channel's templates; *onemsg.Client implements it.
type Templates interface {
	Templates(ctx context.Context) ([]onemsg.Template, error)
}

// Config is what the page needs.
type Config struct {
	Pool     *pgxpool.Pool
	Operator *redrive.Operator // runs retry and resolve; Who is replaced by the signed-in user
	// Templates gives the template text the customer saw (GET /templates of
	// 1MSG), cached for TemplateTTL; Body is used when 1MSG does not answer.
	Templates Templates
	Body      string // configured template body; default outbox.DefaultBody
	// Channels are the channels besides the default one (Templates and
	// Body above), by notification.channel name.
	Channels    map[string]ChannelTexts
	TemplateTTL time.Duration // default 5 minutes
	// RiverUI is the path of River UI on the same listener, for links to
	// jobs; default "/riverui".
	RiverUI  string
	PageSize int // rows per page; default 50
	Logger   *slog.Logger
}

// ChannelTexts is where a channel's template text comes from: its 1MSG
// client's GET /templates, else Body.
type ChannelTexts struct {
	Templates Templates
	Body      string
}

// Handler serves /notifications and /notifications/{event_id}.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	pages *template.Template
	csrf  *csrf
	texts map[string]*templateCache // by channel name
}

// New returns the page's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Pool == nil || cfg.Operator == nil {
		return nil, errors.New("support page: Pool and Operator are required")
	}
	if cfg.RiverUI == "" {
		cfg.RiverUI = "/riverui"
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.TemplateTTL <= 0 {
		cfg.TemplateTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("support page templates: %w", err)
	}
	key, err := newCSRF()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), pages: pages, csrf: key,
		texts: map[string]*templateCache{ledger.DefaultChannel: {src: cfg.Templates, ttl: cfg.TemplateTTL, fallback: cfg.Body}}}
	for name, c := range cfg.Channels {
		h.texts[name] = &templateCache{src: c.Templates, ttl: cfg.TemplateTTL, fallback: c.Body}
	}
	h.mux.HandleFunc("GET /notifications", h.list)
	h.mux.HandleFunc("GET /notifications/{event_id}", h.detail)
	h.mux.HandleFunc("POST /notifications/{event_id}/{action}", h.act)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	f, problems := parseFilter(r.URL.Query(), time.Now())
	f.Limit = h.cfg.PageSize
	page := listPage{Filter: f, Problems: problems, Statuses: ledger.Statuses}
	if len(problems) == 0 {
		rows, more, err := search(r.Context(), h.cfg.Pool, f)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		page.Rows, page.More = rows, more
	}
	page.Prev, page.Next = f.pageURL(f.Page-1), f.pageURL(f.Page+1)
	h.render(w, http.StatusOK, "list.html", page)
}

func (h *Handler) detail(w http.ResponseWriter, r *http.Request) {
	v, err := h.view(r.Context(), r.PathValue("event_id"))
	if errors.Is(err, ledger.ErrNotFound) {
		h.render(w, http.StatusNotFound, "notfound.html", r.PathValue("event_id"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Flash = r.URL.Query().Get("done")
	v.FlashErr = r.URL.Query().Get("error")
	v.CSRF = h.csrf.token(user(r), v.N.EventID)
	h.render(w, http.StatusOK, "detail.html", v)
}

// act runs an action after its confirmation: the first POST (from the
// detail page) answers with a page that asks to confirm; the second, with
// confirm=yes, acts. Both need the CSRF token of this user and event.
func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	eventID, name := r.PathValue("event_id"), r.PathValue("action")
	a, ok := actions[name]
	if !ok {
		http.Error(w, fmt.Sprintf("unknown action %q: use retry, resolve-sent, resolve-resend or resolve-abandon", name), http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable form: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !h.csrf.valid(r.PostForm.Get("csrf"), user(r), eventID) {
		http.Error(w, "the form's security token is missing or expired: open the notification's page again and repeat the action", http.StatusForbidden)
		return
	}
	wamid := strings.TrimSpace(r.PostForm.Get("wamid"))
	if name == "resolve-sent" && wamid == "" {
		http.Error(w, "resolve as sent needs the wamid 1MSG gave the message (from the 1MSG dashboard or GET /messages)", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		v, err := h.view(r.Context(), eventID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.render(w, http.StatusOK, "confirm.html", confirmPage{View: v, Action: a, Name: name, Wamid: wamid,
			CSRF: h.csrf.token(user(r), eventID)})
		return
	}
	op := *h.cfg.Operator
	op.Who = "support page: " + user(r)
	var out redrive.Outcome
	switch name {
	case "retry":
		out = op.Retry(r.Context(), []string{eventID})[0]
	case "resolve-sent":
		out = op.Resolve(r.Context(), eventID, redrive.Resolution{SentAs: wamid})
	case "resolve-resend":
		out = op.Resolve(r.Context(), eventID, redrive.Resolution{Resend: true})
	case "resolve-abandon":
		out = op.Resolve(r.Context(), eventID, redrive.Resolution{Abandon: true})
	}
	q := url.Values{}
	if out.Err != nil {
		h.cfg.Logger.Warn("support page action not done", "action", name, "event_id", eventID, "error", out.Err)
		q.Set("error", fmt.Sprintf("%s: not changed: %v", a.Label, out.Err))
	} else {
		h.cfg.Logger.Info("support page action", "action", name, "event_id", eventID, "from", out.From, "to", out.To, "by", op.Who)
		q.Set("done", fmt.Sprintf("%s: %s → %s", a.Label, out.From, out.To))
	}
	http.Redirect(w, r, detailURL(eventID)+"?"+q.Encode(), http.StatusSeeOther)
}

// action describes one of the buttons.
type action struct {
	Label   string
	Explain string        // what it does, on the confirmation page
	When    ledger.Status // shown for rows in this status …
	Or      ledger.Status // … or this one
}

var actions = map[string]action{
	"retry": {Label: "Retry", When: ledger.StatusFailed, Or: ledger.StatusExpired,
		Explain: "Send the message again: the notification goes back to queued with a new send job. Its history is kept."},
	"resolve-sent": {Label: "It was sent", When: ledger.StatusInDoubt,
		Explain: "1MSG did send it (you found it in the 1MSG dashboard): record its wamid and follow its statuses. Nothing is resent."},
	"resolve-resend": {Label: "It was not sent: send it", When: ledger.StatusInDoubt,
		Explain: "You are sure 1MSG did not send it: send it now. If it did go out, the customer gets it twice."},
	"resolve-abandon": {Label: "Give up", When: ledger.StatusInDoubt,
		Explain: "Mark it failed without sending. Whether the customer got it stays unknown."},
}

// Applies reports whether the action is offered for status st.
func (a action) Applies(st ledger.Status) bool { return st == a.When || (a.Or != "" && st == a.Or) }

func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		h.cfg.Logger.Error("support page: render", "page", name, "error", err)
		http.Error(w, "the page could not be rendered; the log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.cfg.Logger.Error("support page: database", "path", r.URL.Path, "error", err)
	http.Error(w, "the database did not answer; try again in a moment (the log has the details)", http.StatusServiceUnavailable)
}

// user is who is signed in with basic auth ("admin" without auth).
func user(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		return u
	}
	return "admin"
}

func detailURL(eventID string) string { return "/notifications/" + url.PathEscape(eventID) }
