package web_test

import (
	"html"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/portaltest"
	"github.com/kluis-nl/kluis/internal/softauthn"
	"github.com/kluis-nl/kluis/portal"
	"github.com/kluis-nl/kluis/web"
)

// site is a portal: the daemon side on a socket, kluis web on HTTP.
type site struct {
	f   *portaltest.Fixture
	srv *httptest.Server
	url string
}

func newSite(t *testing.T) *site {
	return newSiteWith(t, portaltest.New, "")
}

func newSiteWith(t *testing.T, fixture func(testing.TB, string, ...func(*config.Web)) *portaltest.Fixture, oidcLabel string) *site {
	ts := httptest.NewUnstartedServer(nil)
	// WebAuthn wants a domain, not an IP address, as relying party id.
	origin := "http://localhost:" + strings.TrimPrefix(ts.Listener.Addr().String(), "127.0.0.1:")
	f := fixture(t, origin)
	w, err := web.New(web.Options{Client: f.Client, Origin: origin, OIDCLabel: oidcLabel})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = w
	ts.Start()
	t.Cleanup(ts.Close)
	return &site{f: f, srv: ts, url: origin}
}

// browser is a cookie jar that does not follow redirects.
type browser struct {
	t    *testing.T
	s    *site
	c    *http.Client
	csrf string
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	loc    string
	body   string
	h      http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, loc: resp.Header.Get("Location"), body: string(body), h: resp.Header}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.s.url+path, nil)
	return b.do(req)
}

// post sends a form from the portal's own origin (as a browser does),
// with the page's CSRF token unless form has one.
func (b *browser) post(path string, form url.Values) page {
	return b.postFrom(b.s.url, path, form)
}

func (b *browser) postFrom(origin, path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return b.do(req)
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.s.url)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// login logs u in through the pages (password, then TOTP).
func (b *browser) login(u *portaltest.User) {
	b.t.Helper()
	p := b.post("/login", url.Values{"user": {u.Name}, "password": {portaltest.Password}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.loc, "/login/second") {
		b.t.Fatalf("login: %d %s %s", p.status, p.loc, p.body)
	}
	if p = b.get(p.loc); p.status != 200 || !strings.Contains(p.body, `id="totp-form"`) {
		b.t.Fatalf("second page: %d", p.status)
	}
	p = b.post("/login/totp", url.Values{"code": {b.s.f.Code(u)}})
	if p.status != http.StatusSeeOther || p.loc != "/" {
		b.t.Fatalf("totp: %d %s %s", p.status, p.loc, p.body)
	}
	if p = b.get("/"); p.status != 200 {
		b.t.Fatalf("home: %d", p.status)
	}
}

func TestLoginPagesAndFixation(t *testing.T) {
	s := newSite(t)
	u := s.f.AddUser("anna", portal.RolePractice, "a")
	b := s.browser(t)
	// An attacker planted a session cookie before the login.
	su, _ := url.Parse(s.url)
	b.c.Jar.SetCookies(su, []*http.Cookie{{Name: "kluis_session", Value: "planted-by-attacker", Path: "/"}})
	b.login(u)
	first := b.cookie("kluis_session")
	if first == "" || first == "planted-by-attacker" {
		t.Fatalf("session cookie after login: %q", first)
	}
	// Logging in again (same browser) gives a new session id and ends
	// the old one.
	b.login(u)
	second := b.cookie("kluis_session")
	if second == first {
		t.Fatal("the session id did not change at login")
	}
	if rep := s.f.Do(portal.OpWhoami, portal.Call{Session: first}); rep.Status != 401 {
		t.Fatal("the old session lives on after a new login")
	}
	p := b.get("/")
	if !strings.Contains(p.body, `id="who"`) || !strings.Contains(p.body, "anna") {
		t.Fatalf("home does not show the user: %s", p.body)
	}
	// Logout ends the session at the daemon.
	b.post("/logout", nil)
	if rep := s.f.Do(portal.OpWhoami, portal.Call{Session: second}); rep.Status != 401 {
		t.Fatal("logout did not end the session")
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newSite(t)
	u := s.f.AddUser("anna", portal.RolePractice, "a")
	b := s.browser(t)
	b.login(u)
	for _, path := range []string{"/", "/login", "/t/a", "/requests", "/account"} {
		p := b.get(path)
		if cc := p.h.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		csp := p.h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if strings.Contains(p.body, "<script>") || strings.Contains(p.body, " onclick=") || strings.Contains(p.body, "style=") {
			t.Errorf("%s: inline script or style", path)
		}
		if p.h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: framing allowed", path)
		}
	}
}

// TestSecureCookies: with an https origin the cookies are __Host-,
// Secure, HttpOnly and SameSite=Strict.
func TestSecureCookies(t *testing.T) {
	const origin = "https://kluis.example.test"
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	w, err := web.New(web.Options{Client: f.Client, Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, form url.Values, cookies ...*http.Cookie) *http.Response {
		req := httptest.NewRequest(http.MethodPost, origin+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		return rec.Result()
	}
	resp := post("/login", url.Values{"user": {"anna"}, "password": {portaltest.Password}})
	var ticket *http.Cookie
	for _, c := range resp.Cookies() {
		ticket = c
	}
	if ticket == nil || ticket.Name != "__Host-kluis_login" || !ticket.Secure || !ticket.HttpOnly || ticket.SameSite != http.SameSiteStrictMode || ticket.Path != "/" {
		t.Fatalf("login ticket cookie %+v", ticket)
	}
	resp = post("/login/totp", url.Values{"code": {f.Code(u)}}, ticket)
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-kluis_session" {
			sess = c
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Value == "" {
		t.Fatalf("session cookie %+v", resp.Cookies())
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatal("no HSTS over https")
	}
}

func TestUnauthenticatedGetsLoginPageOnly(t *testing.T) {
	s := newSite(t)
	s.f.AddUser("anna", portal.RolePractice, "a")
	b := s.browser(t)
	gets := []string{"/", "/account", "/t/a", "/requests", "/requests/x", "/evidence", "/users", "/nonexistent", "/t/a/dossier", "/retention"}
	for _, path := range gets {
		p := b.get(path)
		if p.status != http.StatusSeeOther || p.loc != "/login" {
			t.Errorf("GET %s: %d %q", path, p.status, p.loc)
		}
	}
	posts := []string{"/t/a/dossier", "/t/a/request", "/requests/x/approve/begin", "/requests/x/approve/finish", "/requests/x/reject", "/requests/x/restore", "/download", "/account/passkey/begin", "/users/anna/reset", "/retention/request"}
	for _, path := range posts {
		p := b.post(path, url.Values{"tenant": {"a"}, "dossier_id": {"1"}, "csrf": {"x"}})
		if p.status != http.StatusSeeOther || p.loc != "/login" {
			t.Errorf("POST %s: %d %q", path, p.status, p.loc)
		}
	}
	if n := len(s.f.Backend.AccessLog()); n != 0 {
		t.Fatalf("backend reached %d times", n)
	}
	if p := b.get("/login"); p.status != 200 || !strings.Contains(p.body, `id="login-form"`) {
		t.Fatalf("login page: %d", p.status)
	}
}

func TestCrossOriginPostsRefused(t *testing.T) {
	s := newSite(t)
	u := s.f.AddUser("anna", portal.RolePractice, "a")
	b := s.browser(t)
	b.login(u)
	b.get("/t/a")
	form := url.Values{"snapshot": {"latest"}, "dossier_id": {"17"}}
	for _, origin := range []string{"https://evil.example", "null", ""} {
		p := b.postFrom(origin, "/t/a/dossier", form)
		if p.status != http.StatusForbidden {
			t.Errorf("origin %q: %d", origin, p.status)
		}
	}
	// Same origin, but the token of another session (or none).
	for _, tok := range []string{"", "forged"} {
		p := b.post("/t/a/dossier", url.Values{"snapshot": {"latest"}, "dossier_id": {"17"}, "csrf": {tok}})
		if p.status != http.StatusForbidden {
			t.Errorf("csrf %q: %d", tok, p.status)
		}
	}
	// A cross-site fetch that forges Origin is still cross-site by
	// Sec-Fetch-Site.
	req, _ := http.NewRequest(http.MethodPost, s.url+"/t/a/dossier", strings.NewReader(form.Encode()+"&csrf="+b.csrf))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Errorf("Sec-Fetch-Site cross-site: %d", p.status)
	}
	if n := len(s.f.Backend.AccessLog()); n != 0 {
		t.Fatalf("a cross-origin post reached the backend %d times", n)
	}
	if p := b.post("/t/a/dossier", form); p.status != 200 || !strings.Contains(p.body, `id="dossier-tables"`) {
		t.Fatalf("same-origin post: %d", p.status)
	}
}

// TestRouteIsolation: every route, with tenant b's names and ids, as a
// practice user of tenant a and as an auditor of a.
func TestRouteIsolation(t *testing.T) {
	s := newSite(t)
	anna := s.f.AddUser("anna", portal.RolePractice, "a")
	bea := s.f.AddUser("bea", portal.RolePractice, "b")
	audrey := s.f.AddUser("audrey", portal.RoleAuditor, "a")
	bb := s.browser(t)
	bb.login(bea)
	bb.get("/t/b")
	p := bb.post("/t/b/request", url.Values{"snapshot": {"latest"}, "dossier_id": {"5"}, "reason": {"r"}, "delivery": {"sql"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("bea's request: %d %s", p.status, p.body)
	}
	bReq := strings.TrimPrefix(p.loc, "/requests/")
	bSnap := "b" + strings.Repeat("0", 62) + "2"
	before := len(s.f.Backend.AccessLog())

	type route struct {
		method, path string
		form         url.Values
	}
	routes := []route{
		{"GET", "/t/b", nil},
		{"POST", "/t/b/dossier", url.Values{"snapshot": {"latest"}, "dossier_id": {"5"}}},
		{"POST", "/t/b/request", url.Values{"snapshot": {"latest"}, "dossier_id": {"5"}, "reason": {"r"}, "delivery": {"sql"}}},
		// Tenant a's route, tenant b's snapshot in the form.
		{"POST", "/t/a/dossier", url.Values{"snapshot": {bSnap}, "dossier_id": {"5"}, "tenant": {"b"}}},
		{"POST", "/t/a/request", url.Values{"snapshot": {bSnap}, "dossier_id": {"5"}, "reason": {"r"}, "delivery": {"sql"}, "tenant": {"b"}}},
		{"GET", "/requests/" + bReq, nil},
		{"POST", "/requests/" + bReq + "/approve/begin", nil},
		{"POST", "/requests/" + bReq + "/approve/finish", url.Values{"credential": {"{}"}}},
		{"POST", "/requests/" + bReq + "/reject", nil},
		{"POST", "/requests/" + bReq + "/restore", nil},
		{"POST", "/download", url.Values{"request": {bReq}, "token": {"x"}}},
		{"GET", "/evidence?tenant=b", nil},
		{"GET", "/users", nil},
		{"POST", "/users/bea/reset", url.Values{"reason": {"r"}}},
		{"POST", "/t/b/request", url.Values{"snapshot": {"latest"}, "dossier_id": {"6"}, "reason": {"r"}, "delivery": {"sql"}, "kind": {"erasure-override"}}},
		{"GET", "/retention", nil},
		{"POST", "/retention/request", url.Values{"tenant": {"a"}, "keep_last": {"1"}, "keep_daily": {"0"}, "keep_weekly": {"0"}, "keep_monthly": {"0"}, "reason": {"r"}}},
		{"POST", "/retention/request", url.Values{"tenant": {"b"}, "to_policy": {"1"}, "reason": {"r"}}},
	}
	for _, who := range []*portaltest.User{anna, audrey} {
		b := s.browser(t)
		b.login(who)
		b.get("/account")
		for _, r := range routes {
			var p page
			if r.method == "GET" {
				p = b.get(r.path)
			} else {
				p = b.post(r.path, r.form)
			}
			if p.status < 400 || strings.Contains(p.body, `id="dossier-tables"`) || strings.Contains(p.body, `id="request"`) || strings.Contains(p.body, `"publicKey"`) {
				t.Errorf("%s %s %s: %d %.200s", who.Name, r.method, r.path, p.status, p.body)
			}
		}
		// Their own lists hold nothing of b.
		if p := b.get("/requests"); strings.Contains(p.body, bReq) {
			t.Errorf("%s sees b's request in the list", who.Name)
		}
	}
	b := s.browser(t)
	b.login(audrey)
	for _, path := range []string{"/t/a"} {
		if p := b.get(path); p.status < 400 {
			t.Errorf("auditor GET %s: %d", path, p.status)
		}
	}
	if p := b.post("/t/a/dossier", url.Values{"snapshot": {"latest"}, "dossier_id": {"5"}}); p.status < 400 {
		t.Errorf("auditor dossier: %d", p.status)
	}
	if p := b.get("/evidence?tenant=a"); p.status != 200 || !strings.Contains(p.body, `id="ev-reports"`) {
		t.Errorf("auditor's own evidence: %d", p.status)
	}
	if len(s.f.Backend.Retentions) != 0 {
		t.Error("a refused route changed the retention")
	}
	// Tenant a's route with b's snapshot reaches tenant a's repository
	// (where no such snapshot exists), never b's.
	for _, a := range s.f.Backend.AccessLog()[before:] {
		if a.Tenant != "a" || a.User != "anna" {
			t.Errorf("backend reached: %+v", a)
		}
	}
}

func TestTextsComplete(t *testing.T) {
	ents, err := os.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.L\.([a-z_0-9]+)`)
	used := map[string]bool{}
	for _, e := range ents {
		b, _ := os.ReadFile("templates/" + e.Name())
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d keys found", len(used))
	}
	// Every value the daemon sends that a page shows through tr.
	for prefix, vals := range map[string][]string{
		"state":    {portal.StatePending, portal.StateApproved, portal.StateRejected, portal.StateUsed, portal.StateExpired},
		"kind":     {portal.KindDossierRelease, portal.KindUserReset, portal.KindErasureOverride, portal.KindRetentionChange},
		"delivery": {portal.DeliverySQL, portal.DeliveryJSON, portal.DeliveryInto},
		"verdict":  {evidence.Pass, evidence.Fail, evidence.Error},
		"role":     {portal.RolePractice, portal.RoleApprover, portal.RoleAuditor, portal.RoleAdmin},
	} {
		for _, v := range vals {
			used[prefix+"_"+v] = true
		}
	}
	for _, lang := range []string{"nl", "en"} {
		for k := range used {
			if web.Text(lang, k) == "" {
				t.Errorf("%s: no text %q", lang, k)
			}
		}
	}
	// No raw value reaches a page: each is shown through tr.
	raw := regexp.MustCompile(`>\{\{\$?[A-Za-z.]*\.(State|Kind|Verdict|Role|Delivery)\}\}<`)
	for _, e := range ents {
		b, _ := os.ReadFile("templates/" + e.Name())
		if m := raw.FindString(string(b)); m != "" {
			t.Errorf("%s shows %s untranslated", e.Name(), m)
		}
	}
}

// postJSON posts a script's call (as kluis.js does) and returns the body.
func (b *browser) script(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	req, _ := http.NewRequest(http.MethodPost, b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", b.s.url)
	return b.do(req)
}

func TestReleaseThroughThePages(t *testing.T) {
	s := newSite(t)
	anna := s.f.AddUser("anna", portal.RolePractice, "a")
	bert := s.f.AddUser("bert", portal.RoleApprover)
	bert.Auth = softauthn.New(s.url)
	pb, ab := s.browser(t), s.browser(t)
	pb.login(anna)
	ab.login(bert)

	// The approver registers a passkey on the account page.
	ab.get("/account")
	p := ab.script("/account/passkey/begin", nil)
	if p.status != 200 {
		t.Fatalf("passkey begin: %d %s", p.status, p.body)
	}
	cred, err := bert.Auth.Create([]byte(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p = ab.script("/account/passkey/finish", url.Values{"credential": {string(cred)}}); p.status != 200 || !strings.Contains(p.body, `"next"`) {
		t.Fatalf("passkey finish: %d %s", p.status, p.body)
	}
	if p = ab.get("/account"); !strings.Contains(p.body, `id="passkey-count">1<`) {
		t.Fatal("passkey not counted")
	}

	// The practice looks at a dossier and asks for it.
	if p = pb.get("/t/a"); !strings.Contains(p.body, `id="dossier-form"`) {
		t.Fatalf("tenant page: %s", p.body)
	}
	if p = pb.post("/t/a/dossier", url.Values{"snapshot": {"a" + strings.Repeat("0", 62) + "1"}, "dossier_id": {"17"}}); !strings.Contains(p.body, `id="dossier-rows">3<`) {
		t.Fatalf("dossier page: %d %s", p.status, p.body)
	}
	p = pb.post("/t/a/request", url.Values{"snapshot": {"a" + strings.Repeat("0", 62) + "1"}, "dossier_id": {"17"}, "reason": {"client asked"}, "delivery": {"sql"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("request: %d %s", p.status, p.body)
	}
	reqPath := p.loc
	id := strings.TrimPrefix(reqPath, "/requests/")
	if p = pb.get(reqPath); strings.Contains(p.body, `id="approve"`) || !strings.Contains(p.body, `id="withdraw"`) {
		t.Fatal("the requester is offered to approve, or not to withdraw")
	}
	// Dutch by default: the state and kind are translated.
	if !strings.Contains(p.body, `data-state="pending">In afwachting<`) || !strings.Contains(p.body, `>Vrijgave van een dossier<`) {
		t.Fatalf("request page not in Dutch: %s", p.body)
	}

	// The approver sees what is released: the counts the daemon stored
	// with the request, the reason and the requester.
	if p = ab.get(reqPath); !strings.Contains(p.body, `id="approve"`) {
		t.Fatalf("approver's page: %s", p.body)
	}
	for _, want := range []string{`id="req-tables"`, `<td>notes</td><td class="num">2</td>`, `id="req-rows">3<`, `id="req-reason">client asked<`, `id="req-requester">anna<`, `id="req-dossier">17<`, `id="req-taken">`} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("approver's page lacks %s: %s", want, p.body)
		}
	}
	if p = ab.get("/requests"); !strings.Contains(p.body, `data-state="pending">In afwachting<`) || strings.Contains(p.body, "<th>kind</th>") {
		t.Fatalf("request list not in Dutch: %s", p.body)
	}
	p = ab.script(reqPath+"/approve/begin", nil)
	assertion, err := bert.Auth.Get([]byte(p.body))
	if err != nil {
		t.Fatalf("%v: %s", err, p.body)
	}
	if p = ab.script(reqPath+"/approve/finish", url.Values{"credential": {string(assertion)}}); p.status != 200 {
		t.Fatalf("approve: %d %s", p.status, p.body)
	}

	// The practice downloads it, once.
	p = pb.get(reqPath)
	if !strings.Contains(p.body, `id="download-form"`) {
		t.Fatalf("no download after approval: %s", p.body)
	}
	tok := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(p.body)[1]
	p = pb.post("/download", url.Values{"request": {id}, "token": {tok}})
	acc := s.f.Backend.AccessLog()
	if want := portaltest.Dossier(acc[len(acc)-1], "sql"); p.status != 200 || p.body != want {
		t.Fatalf("download: %d %q, want %q", p.status, p.body, want)
	}
	if cd := p.h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || p.h.Get("Cache-Control") != "no-store" {
		t.Fatalf("download headers %v", p.h)
	}
	if p = pb.post("/download", url.Values{"request": {id}, "token": {tok}}); p.status != http.StatusConflict {
		t.Fatalf("second download: %d", p.status)
	}
}

// TestEnrolPages: the one-time link shows the TOTP secret, refuses a
// mismatch and a short password, enrols once, and is dead afterwards.
func TestEnrolPages(t *testing.T) {
	s := newSite(t)
	tok, err := s.f.Store.Add(&portal.User{Name: "anna", Role: portal.RolePractice, Tenants: []string{"a"}}, s.f.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := s.browser(t)
	p := b.get("/enrol/" + tok)
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(p.body)
	if p.status != 200 || m == nil || !strings.Contains(p.body, `id="enrol-form"`) {
		t.Fatalf("enrol page: %d %s", p.status, p.body)
	}
	u := &portaltest.User{Name: "anna", Secret: m[1]}
	qr := b.get("/enrol/" + tok + "/qr.png")
	if !strings.Contains(p.body, `<img id="totp-qr" src="/enrol/`+tok+`/qr.png"`) || qr.status != 200 || qr.h.Get("Content-Type") != "image/png" ||
		qr.h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(qr.body, "\x89PNG\r\n") {
		t.Fatalf("QR code: %d %v", qr.status, qr.h)
	}
	// The QR code is the otpauth URI of this enrolment's secret: the
	// same pixels as encoding that URI.
	uri := html.UnescapeString(regexp.MustCompile(`id="totp-uri">([^<]+)<`).FindStringSubmatch(p.body)[1])
	if !strings.Contains(uri, "secret="+u.Secret) {
		t.Fatalf("URI %q", uri)
	}
	if !sameImage(t, qr.body, uri) {
		t.Fatal("the QR code is not the enrolment's otpauth URI")
	}
	if p := s.browser(t).get("/enrol/" + tok[:len(tok)-1] + "x/qr.png"); p.status == 200 || strings.HasPrefix(p.body, "\x89PNG") {
		t.Fatalf("QR code for a wrong link: %d", p.status)
	}
	if p = b.post("/enrol/"+tok, url.Values{"password": {portaltest.Password}, "password2": {"other"}, "code": {s.f.Code(u)}}); p.status != 400 {
		t.Fatalf("mismatch: %d", p.status)
	}
	if p = b.post("/enrol/"+tok, url.Values{"password": {"short"}, "password2": {"short"}, "code": {s.f.Code(u)}}); p.status != 400 || !strings.Contains(p.body, `id="error"`) {
		t.Fatalf("short password: %d", p.status)
	}
	if p = b.post("/enrol/"+tok, url.Values{"password": {portaltest.Password}, "password2": {portaltest.Password}, "code": {s.f.Code(u)}}); p.status != 200 || !strings.Contains(p.body, `id="enrolled"`) {
		t.Fatalf("enrol: %d %s", p.status, p.body)
	}
	if p = b.get("/enrol/" + tok); p.status != 404 || strings.Contains(p.body, u.Secret) {
		t.Fatalf("used link: %d", p.status)
	}
	if p = b.get("/enrol/" + tok + "/qr.png"); p.status != 404 || strings.HasPrefix(p.body, "\x89PNG") {
		t.Fatalf("QR code of a used link: %d", p.status)
	}
	b.login(u)
	// English on request, Dutch by default.
	if p = b.get("/account"); !strings.Contains(p.body, `lang="nl"`) || !strings.Contains(p.body, "Uitloggen") {
		t.Fatal("not Dutch by default")
	}
	if p = b.get("/lang?l=en&next=/account"); p.status != http.StatusSeeOther || p.loc != "/account" {
		t.Fatalf("lang: %d %q", p.status, p.loc)
	}
	if p = b.get("/account"); !strings.Contains(p.body, `lang="en"`) || !strings.Contains(p.body, "Log out") {
		t.Fatal("not English after switching")
	}
	if p = b.get("/lang?l=en&next=//evil.example"); p.loc != "/" {
		t.Fatalf("open redirect: %q", p.loc)
	}
}

// sameImage reports whether the PNG got shows the QR code of uri.
func sameImage(t *testing.T, got, uri string) bool {
	t.Helper()
	k, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	want, err := k.Image(240, 240)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(strings.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != want.Bounds() {
		return false
	}
	for y := want.Bounds().Min.Y; y < want.Bounds().Max.Y; y++ {
		for x := want.Bounds().Min.X; x < want.Bounds().Max.X; x++ {
			r1, g1, b1, _ := img.At(x, y).RGBA()
			r2, g2, b2, _ := want.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				return false
			}
		}
	}
	return true
}

// TestEvidenceDates: the period fields are text in YYYY-MM-DD (not the
// browser's locale), labelled so in both languages, and anything else
// is refused with a message in the page's language.
func TestEvidenceDates(t *testing.T) {
	s := newSite(t)
	aud := s.f.AddUser("vera", portal.RoleAuditor, "a")
	b := s.browser(t)
	b.login(aud)
	p := b.get("/evidence?tenant=a&from=2026-01-01&to=2026-12-31")
	if p.status != 200 || strings.Contains(p.body, `type="date"`) || !strings.Contains(p.body, `placeholder="JJJJ-MM-DD"`) || !strings.Contains(p.body, `value="2026-01-01"`) {
		t.Fatalf("evidence page: %d %s", p.status, p.body)
	}
	for _, bad := range []string{"12/02/2026", "02-12-2026", "2026-13-01", "gisteren"} {
		p = b.get("/evidence?tenant=a&from=" + url.QueryEscape(bad))
		if p.status != 400 || !strings.Contains(p.body, "JJJJ-MM-DD, bijvoorbeeld") || strings.Contains(p.body, `id="ev-reports"`) {
			t.Errorf("from=%s: %d", bad, p.status)
		}
	}
	b.get("/lang?l=en&next=/evidence")
	if p = b.get("/evidence?tenant=a&to=1/2/2026"); p.status != 400 || !strings.Contains(p.body, "YYYY-MM-DD, for example") || !strings.Contains(p.body, `placeholder="YYYY-MM-DD"`) {
		t.Fatalf("English: %d %s", p.status, p.body)
	}
}

// approveInPages approves the request at reqPath in b's session with u's
// passkey, through the pages' script endpoints.
func approveInPages(t *testing.T, b *browser, u *portaltest.User, reqPath string) page {
	t.Helper()
	b.get(reqPath)
	p := b.script(reqPath+"/approve/begin", nil)
	assertion, err := u.Auth.Get([]byte(p.body))
	if err != nil {
		t.Fatalf("%v: %s", err, p.body)
	}
	return b.script(reqPath+"/approve/finish", url.Values{"credential": {string(assertion)}})
}

// TestOverrideAndRetentionPages: an erased dossier's page shows nothing
// of it but the override form; the override request and a retention
// change are approved through the pages, each showing the approver what
// the daemon put into the signed request.
func TestOverrideAndRetentionPages(t *testing.T) {
	s := newSite(t)
	anna := s.f.AddUser("anna", portal.RolePractice, "a")
	bert := s.f.AddUser("bert", portal.RoleApprover)
	ada := s.f.AddUser("ada", portal.RoleAdmin)
	s.f.AddPasskey(s.f.Login(bert), bert)
	s.f.Backend.Erase("a", "42", time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	pb, ab, admin := s.browser(t), s.browser(t), s.browser(t)
	pb.login(anna)
	ab.login(bert)
	admin.login(ada)

	pb.get("/t/a")
	p := pb.post("/t/a/dossier", url.Values{"snapshot": {"latest"}, "dossier_id": {"42"}})
	if p.status != 200 || !strings.Contains(p.body, `id="override-form"`) || !strings.Contains(p.body, `data-erased="2026-06-01"`) || strings.Contains(p.body, `id="dossier-tables"`) || strings.Contains(p.body, `id="request-form"`) {
		t.Fatalf("erased dossier page: %d %s", p.status, p.body)
	}
	if strings.Contains(p.body, `value="restore-into"`) {
		t.Error("the override form offers a restore into the live database")
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(p.body[strings.Index(p.body, `id="override-form"`):], -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	form.Set("reason", "court order 2026/123")
	form.Set("delivery", "sql")
	if p = pb.post("/t/a/request", form); p.status != http.StatusSeeOther {
		t.Fatalf("override request: %d %s", p.status, p.body)
	}
	reqPath := p.loc
	if p = ab.get(reqPath); !strings.Contains(p.body, `data-kind="erasure-override"`) || !strings.Contains(p.body, `id="req-erased">2026-06-01<`) || !strings.Contains(p.body, `id="approve"`) {
		t.Fatalf("approver's page of the override: %s", p.body)
	}
	if p = approveInPages(t, ab, bert, reqPath); p.status != 200 {
		t.Fatalf("approve the override: %d %s", p.status, p.body)
	}
	p = pb.get(reqPath)
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no download after the override's approval: %s", p.body)
	}
	p = pb.post("/download", url.Values{"request": {strings.TrimPrefix(reqPath, "/requests/")}, "token": {m[1]}})
	acc := s.f.Backend.AccessLog()
	if last := acc[len(acc)-1]; p.status != 200 || p.body != portaltest.Dossier(last, "sql") || !strings.Contains(last.Override, "court order 2026/123") {
		t.Fatalf("override download: %d %q %+v", p.status, p.body, last)
	}

	// Retention: the admin's page lists the tenants and asks; the
	// approver sees old and new and that it is shorter.
	if p = pb.get("/retention"); p.status != http.StatusForbidden {
		t.Errorf("a practice user's retention page: %d", p.status)
	}
	if p = ab.get("/retention"); p.status != 200 || !strings.Contains(p.body, `id="retention-a"`) || strings.Contains(p.body, `id="retention-form"`) {
		t.Errorf("the approver's retention page: %d %s", p.status, p.body)
	}
	if p = admin.get("/retention"); !strings.Contains(p.body, `id="retention-form"`) {
		t.Fatalf("the admin's retention page: %s", p.body)
	}
	if p = admin.post("/retention/request", url.Values{"tenant": {"a"}, "keep_last": {"x"}, "keep_daily": {"0"}, "keep_weekly": {"0"}, "keep_monthly": {"0"}, "reason": {"r"}}); p.status != http.StatusBadRequest {
		t.Errorf("a retention form with a bad number: %d", p.status)
	}
	p = admin.post("/retention/request", url.Values{"tenant": {"a"}, "keep_last": {"1"}, "keep_daily": {"0"}, "keep_weekly": {"0"}, "keep_monthly": {"0"}, "reason": {"contract"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("retention request: %d %s", p.status, p.body)
	}
	reqPath = p.loc
	if p = admin.get(reqPath); strings.Contains(p.body, `id="approve"`) {
		t.Error("the admin is offered to approve her own retention change")
	}
	if p = ab.get(reqPath); !strings.Contains(p.body, `id="req-shortens"`) || !strings.Contains(p.body, `id="req-forgets">1<`) || !strings.Contains(p.body, `id="approve"`) || !strings.Contains(p.body, `>Wijziging van de bewaartermijn<`) {
		t.Fatalf("approver's page of the retention change: %s", p.body)
	}
	if p = approveInPages(t, ab, bert, reqPath); p.status != 200 {
		t.Fatalf("approve the retention change: %d %s", p.status, p.body)
	}
	if n := len(s.f.Backend.Retentions); n != 1 || s.f.Backend.Retentions[0].Approver != "bert" {
		t.Fatalf("retention changes %+v", s.f.Backend.Retentions)
	}
	if p = admin.get("/retention"); !strings.Contains(p.body, `href="`+reqPath+`"`) {
		t.Errorf("the retention page does not name the request in force: %s", p.body)
	}
}
