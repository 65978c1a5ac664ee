package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/portal"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Server.
type Options struct {
	// Client reaches the daemon.
	Client *portal.Client
	// Origin is the portal's public origin (config web.origin): every
	// POST must come from it, and an https origin makes the cookies
	// Secure with the __Host- prefix.
	Origin string
	Log    *slog.Logger
	// TrustProxy takes the client address from the rightmost
	// X-Forwarded-For entry (behind a reverse proxy on loopback that
	// appends it); for logs and rate limits only.
	TrustProxy bool
	// OIDCLabel is the identity provider's name on the login page when
	// web.oidc is configured ("": no sign-in at a provider).
	OIDCLabel string
}

// Server is the portal's HTTP handler.
type Server struct {
	opts   Options
	secure bool
	cookie string // session cookie name
	ticket string // half-login cookie name
	// oidcCookie binds a sign-in at the identity provider to the browser
	// that began it.
	oidcCookie string
	tmpl       *template.Template
	mux        *http.ServeMux
}

// New returns a Server.
func New(opts Options) (*Server, error) {
	u, err := url.Parse(opts.Origin)
	if err != nil || u.Host == "" {
		return nil, errors.New("web: the origin must be scheme://host[:port]")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, secure: u.Scheme == "https", cookie: "kluis_session", ticket: "kluis_login", oidcCookie: "kluis_oidc"}
	if s.secure {
		s.cookie, s.ticket, s.oidcCookie = "__Host-kluis_session", "__Host-kluis_login", "__Host-kluis_oidc"
	}
	s.tmpl, err = template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.tmpl")
	if err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"day":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"tr":   tr,
	// reqs gives the request table its texts and rows.
	"reqs": func(l map[string]string, rs []portal.RequestView) any {
		return struct {
			L    map[string]string
			Reqs []portal.RequestView
		}{l, rs}
	},
	"has": func(xs []string, x string) bool {
		for _, y := range xs {
			if y == x {
				return true
			}
		}
		return false
	},
}

// ServeHTTP sets the security headers of every response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with every form POST (Fetch: serializing a request
	// origin), so sameOrigin refused every form of the portal in a real
	// browser (found by TestPortalInBrowser).
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if s.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		// Pages show personal data (client ids, dossiers, names).
		h.Set("Cache-Control", "no-store")
	}
	if r.Method == http.MethodPost && !s.sameOrigin(r) {
		s.opts.Log.Warn("web: refused a cross-origin post", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// sameOrigin checks a POST's Origin (or, without one, its Referer) and
// Sec-Fetch-Site against the configured origin.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == s.opts.Origin
	}
	ref := r.Header.Get("Referer")
	return ref != "" && (ref == s.opts.Origin || strings.HasPrefix(ref, s.opts.Origin+"/"))
}

func (s *Server) client(r *http.Request) string {
	if s.opts.TrustProxy {
		// The rightmost entry is the one the trusted proxy appended; the
		// ones before it are whatever the client sent.
		if fs := r.Header.Values("X-Forwarded-For"); len(fs) > 0 {
			last := fs[len(fs)-1]
			if c := strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:]); c != "" {
				return c
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(http.FileServerFS(static))))
	m.HandleFunc("GET /lang", s.lang)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.loginPost)
	m.HandleFunc("GET /login/second", s.secondPage)
	m.HandleFunc("POST /login/totp", s.loginTOTP)
	m.HandleFunc("POST /login/passkey/begin", s.loginPasskeyBegin)
	m.HandleFunc("POST /login/passkey/finish", s.loginPasskeyFinish)
	m.HandleFunc("GET /login/oidc", s.oidcBegin)
	m.HandleFunc("GET "+config.OIDCCallbackPath, s.oidcCallback)
	m.HandleFunc("GET /enrol/{token}", s.enrolPage)
	m.HandleFunc("POST /enrol/{token}", s.enrolPost)
	m.HandleFunc("GET /enrol/{token}/qr.png", s.enrolQR)
	m.HandleFunc("POST /logout", s.logout)

	m.HandleFunc("GET /{$}", s.page(s.home))
	m.HandleFunc("GET /account", s.page(s.account))
	m.HandleFunc("POST /account/passkey/begin", s.page(s.passkeyAddBegin))
	m.HandleFunc("POST /account/passkey/finish", s.page(s.passkeyAddFinish))
	m.HandleFunc("GET /t/{tenant}", s.page(s.tenant))
	m.HandleFunc("POST /t/{tenant}/dossier", s.page(s.dossierShow))
	m.HandleFunc("POST /t/{tenant}/request", s.page(s.requestCreate))
	m.HandleFunc("GET /requests", s.page(s.requests))
	m.HandleFunc("GET /requests/{id}", s.page(s.request))
	m.HandleFunc("POST /requests/{id}/approve/begin", s.page(s.approveBegin))
	m.HandleFunc("POST /requests/{id}/approve/finish", s.page(s.approveFinish))
	m.HandleFunc("POST /requests/{id}/reject", s.page(s.reject))
	m.HandleFunc("POST /requests/{id}/restore", s.page(s.restoreInto))
	m.HandleFunc("POST /download", s.page(s.download))
	m.HandleFunc("GET /evidence", s.page(s.evidence))
	m.HandleFunc("GET /evidence/export", s.page(s.evidenceExport))
	m.HandleFunc("GET /users", s.page(s.users))
	m.HandleFunc("POST /users/{name}/reset", s.page(s.userReset))
	m.HandleFunc("GET /retention", s.page(s.retention))
	m.HandleFunc("POST /retention/request", s.page(s.retentionRequest))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.session(r); !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		http.NotFound(w, r)
	})
	s.mux = m
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// req is one request's context for handlers and templates.
type req struct {
	w    http.ResponseWriter
	r    *http.Request
	s    *Server
	sess *portal.Session
	tok  string
	lang string
}

// call calls the daemon with the request's session, CSRF token (from
// the form) and client address.
func (q *req) call(op string, c portal.Call) portal.Reply {
	c.Session, c.Client = q.tok, q.s.client(q.r)
	if c.CSRF == "" {
		c.CSRF = q.r.PostFormValue("csrf")
	}
	ctx, cancel := context.WithTimeout(q.r.Context(), 10*time.Minute)
	defer cancel()
	return q.s.opts.Client.Do(ctx, op, c)
}

func (s *Server) session(r *http.Request) (string, bool) {
	c, err := r.Cookie(s.cookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// page wraps a handler that needs a session: without one (or when the
// daemon says it ended) the browser goes to the login page and learns
// nothing else.
func (s *Server) page(fn func(q *req)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.session(r)
		q := &req{w: w, r: r, s: s, tok: tok, lang: lang(r)}
		if ok {
			rep := q.call(portal.OpWhoami, portal.Call{})
			if rep.Status == http.StatusOK {
				q.sess = rep.Session
				fn(q)
				return
			}
			if rep.Status == http.StatusBadGateway {
				q.fail(rep)
				return
			}
			s.clearCookie(w, s.cookie)
		}
		if r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) { s.setCookie(w, name, "", -1) }

func lang(r *http.Request) string {
	if c, err := r.Cookie("kluis_lang"); err == nil && c.Value == "en" {
		return "en"
	}
	return "nl"
}

func (s *Server) lang(w http.ResponseWriter, r *http.Request) {
	l := r.URL.Query().Get("l")
	if l != "en" {
		l = "nl"
	}
	http.SetCookie(w, &http.Cookie{Name: "kluis_lang", Value: l, Path: "/", MaxAge: 365 * 86400, Secure: s.secure, SameSite: http.SameSiteLaxMode, HttpOnly: true})
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// view is what every template gets.
type view struct {
	L       map[string]string
	Lang    string
	Path    string
	Session *portal.Session
	Error   string
	Message string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, sess *portal.Session, data any, errMsg string) {
	l := lang(r)
	v := view{L: texts[l], Lang: l, Path: r.URL.Path, Session: sess, Error: errMsg, Data: data}
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name+".tmpl", v); err != nil {
		s.opts.Log.Error("web: rendering", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}

func (q *req) render(status int, name string, data any, errMsg string) {
	q.s.render(q.w, q.r, status, name, q.sess, data, errMsg)
}

// fail renders a refused or failed call.
func (q *req) fail(rep portal.Reply) {
	status := rep.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	q.render(status, "error", nil, rep.Error)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// jsonReply answers a script's call: the WebAuthn options, or an error.
func jsonReply(w http.ResponseWriter, rep portal.Reply, next string) {
	if rep.Status != http.StatusOK {
		writeJSON(w, rep.Status, map[string]string{"error": rep.Error})
		return
	}
	if rep.Options != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Write(rep.Options)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"next": next})
}
