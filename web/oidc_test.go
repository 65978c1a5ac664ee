package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/portaltest"
	"github.com/kluis-nl/kluis/portal"
)

// oidcAtProvider follows the portal's link to the provider and returns
// the provider's redirect back to the portal.
func (b *browser) oidcAtProvider() string {
	b.t.Helper()
	p := b.get("/login/oidc")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.loc, b.s.f.IDP.Issuer+"/authorize?") {
		b.t.Fatalf("/login/oidc: %d %s %s", p.status, p.loc, p.body)
	}
	req, _ := http.NewRequest(http.MethodGet, p.loc, nil)
	at := b.do(req)
	if at.status != http.StatusFound || !strings.HasPrefix(at.loc, b.s.url+"/login/oidc/callback?") {
		b.t.Fatalf("provider: %d %s %s", at.status, at.loc, at.body)
	}
	return strings.TrimPrefix(at.loc, b.s.url)
}

// TestOIDCPages: the login page links to the provider; the provider's
// answer shows the second-factor page at once, and the TOTP code ends
// the login. The binding cookie is Lax (it must survive the provider's
// cross-site redirect) and lives only during the sign-in.
func TestOIDCPages(t *testing.T) {
	s := newSiteWith(t, portaltest.NewOIDC, "Test IdP")
	u := s.f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	s.f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
	b := s.browser(t)
	if p := b.get("/login"); !strings.Contains(p.body, `id="oidc-login" href="/login/oidc"`) || !strings.Contains(p.body, "Test IdP") {
		t.Fatalf("login page without the provider's link: %s", p.body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/login/oidc", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var binding *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "kluis_oidc" {
			binding = c
		}
	}
	if binding == nil || binding.SameSite != http.SameSiteLaxMode || !binding.HttpOnly || binding.MaxAge <= 0 || binding.MaxAge > 600 {
		t.Fatalf("binding cookie: %+v", binding)
	}
	back := b.oidcAtProvider()
	p := b.get(back)
	if p.status != 200 || !strings.Contains(p.body, `id="totp-form"`) || b.cookie("kluis_login") == "" || b.cookie("kluis_oidc") != "" {
		t.Fatalf("callback: %d, ticket %q, binding %q: %s", p.status, b.cookie("kluis_login"), b.cookie("kluis_oidc"), p.body)
	}
	if b.cookie("kluis_session") != "" {
		t.Fatal("a session before the second factor")
	}
	if !strings.Contains(p.body, "next=%2flogin%2fsecond") {
		t.Fatalf("the language link leads back to the used answer: %s", p.body)
	}
	// The used answer again: refused.
	if p := b.get(back); p.status != 401 || strings.Contains(p.body, `id="totp-form"`) {
		t.Fatalf("callback replayed: %d", p.status)
	}
	p = b.post("/login/totp", url.Values{"code": {s.f.Code(u)}})
	if p.status != http.StatusSeeOther || p.loc != "/" {
		t.Fatalf("totp after the provider: %d %s %s", p.status, p.loc, p.body)
	}
	if p = b.get("/"); !strings.Contains(p.body, `id="who"`) || !strings.Contains(p.body, "anna") {
		t.Fatalf("home: %s", p.body)
	}
}

// TestOIDCCallbackElsewhere: the provider's answer opened in another
// browser (a login CSRF, or a stolen link) is refused; a provider that
// did not sign the user in gives the login page with a message.
func TestOIDCCallbackElsewhere(t *testing.T) {
	s := newSiteWith(t, portaltest.NewOIDC, "Test IdP")
	s.f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	s.f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
	back := s.browser(t).oidcAtProvider()
	other := s.browser(t)
	if p := other.get(back); p.status != 401 || strings.Contains(p.body, `id="totp-form"`) || other.cookie("kluis_login") != "" {
		t.Fatalf("the answer in another browser: %d %s", p.status, p.body)
	}
	if len(s.f.Log.Refused("not started in this browser")) != 1 {
		t.Fatalf("not logged: %+v", s.f.Log.Events())
	}
	s.f.IDP.SignIn(nil)
	b := s.browser(t)
	if p := b.get(b.oidcAtProvider()); p.status != 401 || !strings.Contains(p.body, `id="login-form"`) || !strings.Contains(p.body, "identiteitsprovider") {
		t.Fatalf("provider said no: %d %s", p.status, p.body)
	}
	// Without web.oidc there is no link and no route.
	plain := newSite(t).browser(t)
	if p := plain.get("/login"); strings.Contains(p.body, "oidc-login") {
		t.Fatal("a provider link without web.oidc")
	}
	if p := plain.get("/login/oidc"); p.status != 404 {
		t.Fatalf("/login/oidc without web.oidc: %d", p.status)
	}
}
