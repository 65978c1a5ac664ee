package web

import (
	"net/http"

	"github.com/kluis-nl/kluis/portal"
)

// Sign-in at the identity provider (config web.oidc). The web process
// holds no client secret and verifies nothing: the daemon makes the
// authorization URL (state, nonce, PKCE) and, when the browser comes
// back, redeems the code and verifies the ID token itself. The web
// process keeps the browser's side of the state in a cookie, so a
// sign-in finishes only in the browser that began it.

// loginData is what the login page shows besides the password form.
type loginData struct {
	// OIDC is the identity provider's name on its button ("": none).
	OIDC string
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	s.render(w, r, status, "login", nil, loginData{OIDC: s.opts.OIDCLabel}, errMsg)
}

// oidcBegin sends the browser to the identity provider. It is a GET (a
// link on the login page): the CSP's form-action would stop a form from
// following the redirect to the provider.
func (s *Server) oidcBegin(w http.ResponseWriter, r *http.Request) {
	if s.opts.OIDCLabel == "" {
		http.NotFound(w, r)
		return
	}
	q := s.anon(w, r)
	rep := q.call(portal.OpOIDCBegin, portal.Call{})
	if rep.Status != http.StatusOK {
		s.renderLogin(w, r, rep.Status, rep.Error)
		return
	}
	// Lax, not Strict: the browser comes back from the provider's site,
	// a cross-site navigation that carries no Strict cookie.
	http.SetCookie(w, &http.Cookie{Name: s.oidcCookie, Value: rep.Binding, Path: "/", MaxAge: 600, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, rep.Redirect, http.StatusSeeOther)
}

// oidcCallback hands the provider's answer to the daemon and, when it
// accepts the identity, shows the second-factor page at once: a
// redirect would be part of the provider's cross-site navigation, and
// the half login's Strict cookie would not come with it.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.opts.OIDCLabel == "" {
		http.NotFound(w, r)
		return
	}
	binding := ""
	if c, err := r.Cookie(s.oidcCookie); err == nil {
		binding = c.Value
	}
	s.clearCookie(w, s.oidcCookie)
	if r.URL.Query().Get("error") != "" {
		s.renderLogin(w, r, http.StatusUnauthorized, texts[lang(r)]["oidc_refused"])
		return
	}
	q := s.anon(w, r)
	rep := q.call(portal.OpOIDCFinish, portal.Call{Code: r.URL.Query().Get("code"), State: r.URL.Query().Get("state"), Binding: binding})
	if rep.Status != http.StatusOK {
		s.renderLogin(w, r, rep.Status, rep.Error)
		return
	}
	s.setCookie(w, s.ticket, rep.Ticket, 300)
	d := secondData{}
	for _, f := range rep.Factors {
		d.TOTP = d.TOTP || f == "totp"
		d.Passkey = d.Passkey || f == "passkey"
	}
	// The page's links (the language switch) lead to the second step,
	// not back to the used answer.
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/login/second"
	s.render(w, r2, http.StatusOK, "second", nil, d, "")
}
