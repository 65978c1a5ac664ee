package main

// The practice and auditor portal (issue 20, docs/practice.md) in a real
// browser: the kluis binary runs as the daemon (which answers the web
// process on its Unix socket and decides everything) and as `kluis web`,
// on free loopback ports in the test's directory, with two PostgreSQL
// practices; headless chromium (internal/browsertest) plays the users,
// each in a browser context of its own with a virtual WebAuthn
// authenticator where they have a passkey. KLUIS_UPDATE_SCREENSHOTS=1
// writes the screenshots of docs/practice.md and docs/auditor.md.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/browsertest"
	"github.com/kluis-nl/kluis/internal/idptest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/synth"
)

// portalEnv is an appliance with two PostgreSQL practices, the daemon and
// the portal running.
type portalEnv struct {
	*env
	pg         *pgtest.Server
	dsnA       string // praktijk-a's database, also its live restore target
	dsnB       string
	base       string // the portal's origin, http://localhost:PORT
	daemonLogs *lockedBuffer
	webLogs    *lockedBuffer
	// idp is the vendor's identity provider (web.oidc), on 127.0.0.1: a
	// site other than the portal's localhost.
	idp *idptest.Provider
}

// startPortalEnv sets the appliance up, backs both practices up and starts
// `kluis daemon` and `kluis web`.
func startPortalEnv(t *testing.T) *portalEnv {
	t.Helper()
	srv := pgtest.Start(t)
	ctx := context.Background()
	p := &portalEnv{pg: srv, dsnA: srv.CreateDB(t, "prak_a"), dsnB: srv.CreateDB(t, "prak_b")}
	for i, dsn := range []string{p.dsnA, p.dsnB} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := synth.Generate(ctx, db, synth.Postgres, synth.Tiny, uint64(5+i)); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	// A socket path must stay under 108 bytes: a short directory of its own.
	p.env = newEnv(t)
	p.secrets["PostgreSQL password"] = srv.Password
	writeFile(t, p.path("a.dsn"), p.dsnA)
	writeFile(t, p.path("b.dsn"), p.dsnB)
	writeFile(t, p.path("a-live.dsn"), p.dsnA)
	sockDir, err := os.MkdirTemp("", "kluis-web-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// localhost, not 127.0.0.1: an IP address cannot be a WebAuthn RP id.
	p.base = "http://localhost:" + strconv.Itoa(port)
	p.idp = idptest.New(t, p.base+config.OIDCCallbackPath, time.Now)
	writeFile(t, p.path("oidc.secret"), p.idp.ClientSecret)
	p.secrets["OIDC client secret"] = p.idp.ClientSecret
	cfg := twoTenantConfig("postgres") + fmt.Sprintf(`web:
  listen: 127.0.0.1:%d
  origin: %s
  socket: %s
  lock_after: 3
  restore_targets: {praktijk-a: ./a-live.dsn}
  oidc: {issuer: '%s', client_id: %s, client_secret_file: ./oidc.secret, label: Test IdP}
`, port, p.base, filepath.Join(sockDir, "web.sock"), p.idp.Issuer, p.idp.ClientID)
	writeFile(t, p.cfg, cfg)
	p.keysInit()
	for _, tn := range []string{"praktijk-a", "praktijk-b"} {
		p.mustRun(0, "init", "--tenant", tn)
		p.mustRun(0, "backup", "--tenant", tn)
	}
	p.mustRun(0, "config", "check")

	p.daemonLogs = p.startProcess(t, "daemon", "--log-level", "info")
	waitFor(t, "the daemon's portal socket", func() bool {
		_, err := os.Stat(filepath.Join(sockDir, "web.sock"))
		return err == nil
	})
	p.webLogs = p.startProcess(t, "web")
	waitFor(t, "the portal", func() bool {
		resp, err := http.Get(p.base + "/login")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// startProcess starts a long-running kluis command, stopped with SIGTERM
// when the test ends.
func (p *portalEnv) startProcess(t *testing.T, args ...string) *lockedBuffer {
	t.Helper()
	c, _, _ := p.command(args...)
	logs := &lockedBuffer{}
	c.Stdout, c.Stderr = logs, logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	t.Cleanup(func() {
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			c.Process.Kill()
			<-done
		}
		p.mu.Lock()
		p.outputs = append(p.outputs, "kluis "+strings.Join(args, " ")+"\n"+logs.String())
		p.mu.Unlock()
		if t.Failed() {
			t.Logf("kluis %s:\n%s", strings.Join(args, " "), tailOf(logs.String(), 4000))
		}
	})
	return logs
}

// addUser runs `kluis users add` and returns the enrolment link.
func (p *portalEnv) addUser(name, role string, tenants ...string) string {
	p.t.Helper()
	args := []string{"users", "add", "--name", name, "--role", role, "--operator", "ops-test", "--json"}
	for _, tn := range tenants {
		args = append(args, "--tenant", tn)
	}
	var out struct {
		Link string `json:"enrol_link"`
	}
	p.mustJSON(0, &out, args...)
	if !strings.HasPrefix(out.Link, p.base+"/enrol/") {
		p.t.Fatalf("users add: enrolment link %q is not at the portal's origin %s", out.Link, p.base)
	}
	return out.Link
}

// portalUser is one person at one browser.
type portalUser struct {
	name, password string
	page           *browsertest.Page
	app            *browsertest.TOTP
}

// updateScreenshots says whether to write the docs' screenshots.
var updateScreenshots = os.Getenv("KLUIS_UPDATE_SCREENSHOTS") == "1"

// docShot writes docs/NAME.png when KLUIS_UPDATE_SCREENSHOTS=1.
func docShot(t *testing.T, pg *browsertest.Page, name string) {
	t.Helper()
	if !updateScreenshots {
		return
	}
	pg.Screenshot(filepath.Join("..", "..", "docs", name+".png"))
}

// enrolInBrowser opens the enrolment link, reads the TOTP secret into the user's
// app, sets the password and confirms with a code.
func enrolInBrowser(t *testing.T, u *portalUser, link, shotName string) {
	t.Helper()
	if st := u.page.Go(link); st != http.StatusOK {
		t.Fatalf("%s: enrolment page: HTTP %d\n%s", u.name, st, u.page.Body())
	}
	secret := strings.TrimSpace(u.page.Text("#totp-secret"))
	if secret == "" {
		t.Fatalf("%s: the enrolment page shows no TOTP secret", u.name)
	}
	u.app = browsertest.NewTOTP(secret)
	// The QR code (a PNG from kluis web; the CSP allows no data: image)
	// is loaded and shown.
	if w := browsertest.Evaluate[int](u.page, `(document.querySelector("#totp-qr") || {}).naturalWidth || 0`); w < 100 {
		t.Errorf("%s: the enrolment page shows no QR code (width %d)", u.name, w)
	}
	u.page.Fill(map[string]string{"#password": u.password, "#password2": u.password, "#code": u.app.Code(t)})
	if shotName != "" {
		docShot(t, u.page, shotName)
	}
	u.page.Click("#enrol-submit")
	if n := u.page.Count("#enrolled"); n != 1 {
		t.Fatalf("%s: enrolment did not complete (at %s):\n%s", u.name, u.page.Location(), u.page.Body())
	}
}

// loginPasswordInBrowser fills the login form; the browser is then at the second
// step.
func loginPasswordInBrowser(t *testing.T, p *portalEnv, u *portalUser, shotName string) {
	t.Helper()
	u.page.Go(p.base + "/login")
	u.page.Fill(map[string]string{"#user": u.name, "#password": u.password})
	if shotName != "" {
		docShot(t, u.page, shotName)
	}
	u.page.Click("#login-submit")
	if !strings.Contains(u.page.Location(), "/login/second") {
		t.Fatalf("%s: after the password the browser is at %s:\n%s", u.name, u.page.Location(), u.page.Body())
	}
}

// loginTOTPInBrowser logs u in with password and TOTP.
func loginTOTPInBrowser(t *testing.T, p *portalEnv, u *portalUser, shotPassword, shotCode string) {
	t.Helper()
	loginPasswordInBrowser(t, p, u, shotPassword)
	u.page.Fill(map[string]string{"#code": u.app.Code(t)})
	if shotCode != "" {
		docShot(t, u.page, shotCode)
	}
	u.page.Click("#totp-submit")
	assertLoggedInBrowser(t, u)
}

func assertLoggedInBrowser(t *testing.T, u *portalUser) {
	t.Helper()
	if got := u.page.Text("#who"); !strings.HasPrefix(got, u.name+" ") {
		t.Fatalf("%s: not logged in (at %s, header %q):\n%s", u.name, u.page.Location(), got, u.page.Body())
	}
}

// logoutInBrowser presses the logout button.
func logoutInBrowser(t *testing.T, u *portalUser) {
	t.Helper()
	u.page.Click("#logout")
	if !strings.Contains(u.page.Location(), "/login") {
		t.Fatalf("%s: after logout the browser is at %s", u.name, u.page.Location())
	}
}

// cliDossierSQL is `kluis dossier restore --format sql` of the snapshot.
func (p *portalEnv) cliDossierSQL(tenant, snapshot, id string) []byte {
	p.t.Helper()
	out := p.path(fmt.Sprintf("cli-%s-%s-%d.sql", tenant, id, time.Now().UnixNano()))
	p.mustRun(0, "dossier", "restore", "--tenant", tenant, "--snapshot", snapshot, "--id", id, "--reason", "browser test: the CLI's copy", "--format", "sql", "--out", out)
	b, err := os.ReadFile(out)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// cliDossierShow is `kluis dossier show --json`'s table counts.
func (p *portalEnv) cliDossierShow(tenant, snapshot, id string) map[string]int64 {
	p.t.Helper()
	var show struct {
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
	}
	p.mustJSON(0, &show, "dossier", "show", "--tenant", tenant, "--snapshot", snapshot, "--id", id, "--operator", "browser-test")
	out := map[string]int64{}
	for _, tb := range show.Tables {
		out[tb.Table] = tb.Rows
	}
	return out
}

// requestIDOf is the request id of a /requests/ID page.
var requestPathRE = regexp.MustCompile(`/requests/([^/?#]+)`)

func requestIDOf(t *testing.T, pg *browsertest.Page) string {
	t.Helper()
	m := requestPathRE.FindStringSubmatch(pg.Location())
	if m == nil {
		t.Fatalf("%s: not on a request page: %s\n%s", pg.Name, pg.Location(), pg.Body())
	}
	return m[1]
}

// requestDossierInBrowser has the practice user show the dossier and request it
// with delivery; it returns the request id, on the request page.
func requestDossierInBrowser(t *testing.T, p *portalEnv, u *portalUser, tenant, id, reason, delivery string, shotShow, shotRequest string) (string, string) {
	t.Helper()
	if st := u.page.Go(p.base + "/t/" + tenant); st != http.StatusOK {
		t.Fatalf("%s: tenant page: HTTP %d", u.name, st)
	}
	snapshot := u.page.Attr("#snapshot option", "value")
	u.page.Fill(map[string]string{"#dossier-id": id})
	u.page.Click("#dossier-show")
	if u.page.Count("#dossier-tables") != 1 {
		t.Fatalf("%s: no dossier table (at %s):\n%s", u.name, u.page.Location(), u.page.Body())
	}
	if shotShow != "" {
		docShot(t, u.page, shotShow)
	}
	u.page.Fill(map[string]string{"#reason": reason})
	u.page.SetValue("#delivery", delivery)
	u.page.Click("#request-submit")
	rid := requestIDOf(t, u.page)
	if st := u.page.Attr("#req-state", "data-state"); st != "pending" {
		t.Fatalf("%s: the new request is %q", u.name, st)
	}
	if shotRequest != "" {
		docShot(t, u.page, shotRequest)
	}
	return rid, snapshot
}

// approveInBrowser has the approver open the request and approve it with their
// passkey; it waits for the approved request page.
func approveInBrowser(t *testing.T, p *portalEnv, a *portalUser, rid string) {
	t.Helper()
	a.page.Go(p.base + "/requests/" + rid)
	if a.page.Count("#approve") != 1 {
		t.Fatalf("%s: no approve button on request %s:\n%s", a.name, rid, a.page.Body())
	}
	a.page.ClickNoWait("#approve")
	waitRequestState(t, a.page, "approved", "done")
	if got := a.page.Text("#req-approver"); got != a.name {
		t.Errorf("request %s: approver %q, want %s", rid, got, a.name)
	}
}

// waitRequestState waits until the request page shows one of states
// (after the approve script's navigation) and returns it; a failed
// passkey ceremony fails at once.
func waitRequestState(t *testing.T, pg *browsertest.Page, states ...string) string {
	t.Helper()
	js, _ := json.Marshal(states)
	pg.WaitFor(fmt.Sprintf("request state %v", states), fmt.Sprintf(`document.readyState == "complete" && (%s.includes((document.querySelector("#req-state") || {dataset: {}}).dataset.state) || !((document.querySelector("#webauthn-error") || {hidden: true}).hidden))`, js))
	if pg.Count("#webauthn-error:not([hidden])") == 1 {
		t.Fatalf("%s: the passkey ceremony failed: %s\nconsole:\n%s", pg.Name, pg.Text("#webauthn-error"), pg.ConsoleText())
	}
	return pg.Attr("#req-state", "data-state")
}

// TestPortalInBrowser walks the portal as its users do, in chromium: ops
// adds users with the CLI; each enrols by the one-time link; the practice
// user logs in with password and TOTP, the approver with password and a
// passkey; the practice user requests a dossier, the approver approves it
// with their passkey in another browser context, and the practice user
// downloads it — byte for byte what `kluis dossier restore --format sql`
// writes — and has another restored into the practice's live database,
// with the same rows the CLI's restore writes; an erased dossier shows
// nothing but the override form, and its approved erasure override
// downloads what `dossier restore --override-erasure` writes, recorded
// with both identities. Attacks from the browser
// (a form posted from another origin, a hostile client id and reason, a
// practice user's URLs into another practice, approving one's own
// request, a reused enrolment link or download, a planted session id,
// password guessing) are refused.
func TestPortalInBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Require(t)
	p := startPortalEnv(t)
	b := browsertest.Start(t)

	// Unauthenticated: nothing but the login page, whatever the URL.
	t.Run("unauthenticated", func(t *testing.T) {
		defer p.in(t)()
		anon := b.NewPage("anonymous")
		defer anon.Use(t)()
		for _, path := range []string{"/", "/t/praktijk-a", "/requests", "/requests/1", "/evidence", "/account", "/users", "/nonexistent"} {
			anon.Go(p.base + path)
			if loc := anon.Location(); !strings.HasSuffix(loc, "/login") {
				t.Errorf("GET %s: unauthenticated browser at %s, want the login page", path, loc)
			}
			if body := anon.Body(); strings.Contains(body, "praktijk-") {
				t.Errorf("GET %s: the login page names a practice:\n%s", path, body)
			}
		}
		docShot(t, anon, "practice-login")
	})

	ada := &portalUser{name: "ada", password: "zomer-appel-7-fiets", page: b.NewPage("ada")}
	vera := &portalUser{name: "vera", password: "winter-peer-9-boot", page: b.NewPage("vera")}
	ada.page.AddAuthenticator()
	vera.page.AddAuthenticator()
	adaLink := p.addUser(ada.name, "practice", "praktijk-a")
	veraLink := p.addUser(vera.name, "approver")

	if !t.Run("enrolment", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		enrolInBrowser(t, ada, adaLink, "practice-enrol")
		enrolInBrowser(t, vera, veraLink, "")
		// The link works once.
		other := b.NewPage("link-reuse")
		defer other.Use(t)()
		other.Go(adaLink)
		if other.Count("#totp-secret") != 0 || other.Count("#enrol-form") != 0 {
			t.Errorf("the enrolment link still shows the enrolment form after use:\n%s", other.Body())
		}
	}) {
		t.FailNow()
	}

	if !t.Run("login with password and TOTP", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		loginTOTPInBrowser(t, p, ada, "", "practice-code")
		if ada.page.Count("#tenant-praktijk-a") != 1 || ada.page.Count("#tenant-praktijk-b") != 0 {
			t.Errorf("ada's home page lists other practices:\n%s", ada.page.Body())
		}
		// A wrong code is refused; the browser stays logged out.
		other := &portalUser{name: "ada", password: ada.password, page: b.NewPage("ada-wrong-code"), app: ada.app}
		defer other.page.Use(t)()
		loginPasswordInBrowser(t, p, other, "")
		other.page.Fill(map[string]string{"#code": "000000"})
		other.page.Click("#totp-submit")
		if other.page.Count("#who") != 0 {
			t.Errorf("a wrong TOTP code logged in:\n%s", other.page.Body())
		}
	}) {
		t.FailNow()
	}

	t.Run("sign-in at the identity provider", func(t *testing.T) {
		defer p.in(t)()
		olga := &portalUser{name: "olga", page: b.NewPage("olga")}
		defer olga.page.Use(t)()
		var out struct {
			Link string `json:"enrol_link"`
		}
		p.mustJSON(0, &out, "users", "add", "--name", olga.name, "--role", "auditor", "--oidc-subject", "idp-olga", "--operator", "ops-test", "--json")
		// The enrolment sets the second factor only: no password.
		olga.page.Go(out.Link)
		if olga.page.Count("#enrol-oidc") != 1 || olga.page.Count("#password") != 0 {
			t.Fatalf("olga's enrolment page asks for a password:\n%s", olga.page.Body())
		}
		olga.app = browsertest.NewTOTP(strings.TrimSpace(olga.page.Text("#totp-secret")))
		olga.page.Fill(map[string]string{"#code": olga.app.Code(t)})
		olga.page.Click("#enrol-submit")
		if olga.page.Count("#enrolled") != 1 {
			t.Fatalf("olga's enrolment did not complete:\n%s", olga.page.Body())
		}
		// Login page → the provider (another site) → back at the portal's
		// second step, whose Strict cookie must come with the TOTP form.
		p.idp.SignIn(map[string]any{"sub": "idp-olga"})
		p.idp.LoginPage(true)
		olga.page.Go(p.base + "/login")
		olga.page.Click("#oidc-login")
		if !strings.HasPrefix(olga.page.Location(), p.idp.Issuer+"/authorize") {
			t.Fatalf("the login page's link went to %s, not the provider", olga.page.Location())
		}
		if st := olga.page.Click("#idp-sign-in"); st != http.StatusOK || !strings.Contains(olga.page.Location(), config.OIDCCallbackPath) || olga.page.Count("#totp-form") != 1 {
			t.Fatalf("back from the provider: HTTP %d at %s:\n%s", st, olga.page.Location(), olga.page.Body())
		}
		if olga.page.Count("#who") != 0 {
			t.Fatal("logged in before the second factor")
		}
		olga.page.Fill(map[string]string{"#code": olga.app.Code(t)})
		olga.page.Click("#totp-submit")
		assertLoggedInBrowser(t, olga)
		for _, c := range olga.page.Cookies(p.base + "/") {
			if c.Name == "kluis_oidc" || c.Name == "kluis_login" {
				t.Errorf("cookie %s outlives the login", c.Name)
			}
		}
		logoutInBrowser(t, olga)
		// A provider's answer to a sign-in the portal never began: refused.
		eve := b.NewPage("eve")
		defer eve.Use(t)()
		p.idp.LoginPage(false)
		at := p.idp.Issuer + "/authorize?" + url.Values{"client_id": {p.idp.ClientID}, "redirect_uri": {p.base + config.OIDCCallbackPath},
			"response_type": {"code"}, "state": {"made-up"}, "code_challenge": {"x"}, "code_challenge_method": {"S256"}}.Encode()
		eve.Go(at)
		if eve.Count("#totp-form") != 0 || eve.Count("#login-form") != 1 {
			t.Errorf("an answer to a sign-in nobody began:\n%s", eve.Body())
		}
		// No password for an account bound to the provider.
		olga.page.Go(p.base + "/login")
		olga.page.Fill(map[string]string{"#user": olga.name, "#password": "any-password-at-all"})
		olga.page.Click("#login-submit")
		if olga.page.Count("#error") != 1 || strings.Contains(olga.page.Location(), "/login/second") {
			t.Errorf("password login of olga: at %s", olga.page.Location())
		}
	})

	t.Run("session fixation and cookie flags", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		fix := &portalUser{name: ada.name, password: ada.password, page: b.NewPage("ada-fixation"), app: ada.app}
		defer fix.page.Use(t)()
		// An attacker who could plant a session id in ada's browser.
		const planted = "attacker-chosen-session-id"
		fix.page.SetCookie(network.SetCookieParams{Name: "kluis_session", Value: planted, URL: p.base + "/", Path: "/"})
		loginTOTPInBrowser(t, p, fix, "", "")
		found := false
		for _, c := range fix.page.Cookies(p.base + "/") {
			if c.Name != "kluis_session" {
				continue
			}
			found = true
			if c.Value == planted {
				t.Error("the planted session id survived the login")
			}
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("session cookie: HttpOnly %v, SameSite %q; want HttpOnly, Strict", c.HTTPOnly, c.SameSite)
			}
		}
		if !found {
			t.Error("no session cookie after the login")
		}
		if js := browsertest.Evaluate[string](fix.page, "document.cookie"); strings.Contains(js, "kluis_session") {
			t.Errorf("page scripts can read the session cookie: %q", js)
		}
		// The planted id is no session: it sees nothing.
		other := b.NewPage("attacker")
		defer other.Use(t)()
		other.SetCookie(network.SetCookieParams{Name: "kluis_session", Value: planted, URL: p.base + "/", Path: "/"})
		other.Go(p.base + "/t/praktijk-a")
		if !strings.HasSuffix(other.Location(), "/login") {
			t.Errorf("the planted session id reached %s", other.Location())
		}
		logoutInBrowser(t, fix)
	})

	t.Run("password guessing locks out", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		piet := &portalUser{name: "piet", password: "herfst-blad-3-fiets", page: b.NewPage("piet")}
		defer piet.page.Use(t)()
		enrolInBrowser(t, piet, p.addUser(piet.name, "practice", "praktijk-a"), "")
		for i := 0; i < 3; i++ { // web.lock_after: 3
			piet.page.Go(p.base + "/login")
			piet.page.Fill(map[string]string{"#user": piet.name, "#password": fmt.Sprintf("guess-number-%d", i)})
			piet.page.Click("#login-submit")
			if piet.page.Count("#error") != 1 {
				t.Fatalf("wrong password %d: no error shown (at %s)", i+1, piet.page.Location())
			}
		}
		piet.page.Go(p.base + "/login")
		piet.page.Fill(map[string]string{"#user": piet.name, "#password": piet.password})
		piet.page.Click("#login-submit")
		if strings.Contains(piet.page.Location(), "/login/second") || piet.page.Count("#error") != 1 {
			t.Errorf("the right password after 3 wrong ones was not refused (at %s):\n%s", piet.page.Location(), piet.page.Body())
		}
		var users []struct {
			Name   string `json:"name"`
			Locked bool   `json:"locked"`
		}
		p.mustJSON(0, &users, "users", "list", "--json")
		for _, u := range users {
			if u.Name == piet.name && !u.Locked {
				t.Errorf("users list: piet is not locked")
			}
		}
	})

	if !t.Run("login with a passkey", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		loginTOTPInBrowser(t, p, vera, "", "")
		vera.page.Go(p.base + "/account")
		vera.page.ClickNoWait("#passkey-add")
		vera.page.WaitFor("the registered passkey", `document.readyState == "complete" && (document.querySelector("#passkey-count") || {}).textContent == "1"`)
		if n := len(vera.page.Credentials()); n != 1 {
			t.Fatalf("vera's authenticator holds %d credentials", n)
		}
		logoutInBrowser(t, vera)
		loginPasswordInBrowser(t, p, vera, "")
		before := vera.page.Credentials()[0].SignCount
		vera.page.ClickNoWait("#passkey-login")
		vera.page.WaitFor("the passkey login", `document.readyState == "complete" && document.querySelector("#who") != null`)
		assertLoggedInBrowser(t, vera)
		if after := vera.page.Credentials()[0].SignCount; after <= before {
			t.Errorf("the passkey login made no assertion (sign count %v → %v)", before, after)
		}
	}) {
		t.FailNow()
	}

	var rid, snapshot string
	if !t.Run("practice requests a dossier", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		rid, snapshot = requestDossierInBrowser(t, p, ada, "praktijk-a", "3", "Cliënt 3 belde: dossier beschadigd na import (ticket 4711)", "sql", "practice-dossier", "practice-request")
		// The table counts are what `dossier show` says.
		want := p.cliDossierShow("praktijk-a", snapshot, "3")
		ada.page.Go(p.base + "/requests/" + rid)
		if ada.page.Count("#approve") != 0 {
			t.Errorf("the requester is offered the approve button of their own request")
		}
		if len(want) == 0 {
			t.Fatal("dossier show lists no tables")
		}
		ada.page.Go(p.base + "/t/praktijk-a")
		ada.page.Fill(map[string]string{"#dossier-id": "3"})
		ada.page.Click("#dossier-show")
		got := map[string]int64{}
		rows := browsertest.Evaluate[[][]string](ada.page, `[...document.querySelectorAll("#dossier-tables tbody tr")].map(r => [...r.cells].map(c => c.innerText.trim()))`)
		for _, r := range rows {
			n, _ := strconv.ParseInt(r[1], 10, 64)
			got[r[0]] = n
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the portal's table counts differ from dossier show:\nportal %v\nCLI    %v", got, want)
		}
	}) {
		t.FailNow()
	}

	if !t.Run("the requester cannot approve", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		// Straight at the endpoint, with the page's own CSRF token.
		ada.page.Go(p.base + "/requests/" + rid)
		csrf := ada.page.Attr("#logout-form input[name=csrf]", "value")
		st, body := ada.page.Fetch("POST", p.base+"/requests/"+rid+"/approve/begin", "csrf="+url.QueryEscape(csrf))
		if st == http.StatusOK {
			t.Errorf("the requester got approval options for their own request: %s", body)
		}
	}) {
		t.FailNow()
	}

	if !t.Run("approver approves with their passkey", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		vera.page.Go(p.base + "/requests")
		if vera.page.Count("#open-"+rid) != 1 {
			t.Fatalf("request %s is not on the approver's list:\n%s", rid, vera.page.Body())
		}
		vera.page.Click("#open-" + rid)
		if got := vera.page.Text("#req-reason"); !strings.Contains(got, "ticket 4711") {
			t.Errorf("the approver does not see the reason: %q", got)
		}
		// The approver sees what is released: the daemon's counts, the
		// same as `dossier show`, in Dutch.
		want := p.cliDossierShow("praktijk-a", snapshot, "3")
		got := map[string]int64{}
		for _, r := range browsertest.Evaluate[[][]string](vera.page, `[...document.querySelectorAll("#req-tables tbody tr")].map(r => [...r.cells].map(c => c.innerText.trim()))`) {
			n, _ := strconv.ParseInt(r[1], 10, 64)
			got[r[0]] = n
		}
		if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the approver's table counts differ from dossier show:\nportal %v\nCLI    %v", got, want)
		}
		if st := vera.page.Text("#req-state"); st != "In afwachting" {
			t.Errorf("the state is shown as %q, not in Dutch", st)
		}
		docShot(t, vera.page, "approver-request")
		approveInBrowser(t, p, vera, rid)
	}) {
		t.FailNow()
	}

	if !t.Run("practice downloads the dossier", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		ada.page.Go(p.base + "/requests/" + rid)
		if st := ada.page.Attr("#req-state", "data-state"); st != "approved" {
			t.Fatalf("ada sees request %s as %q", rid, st)
		}
		docShot(t, ada.page, "practice-approved")
		form := formFields(ada.page, "#download-form")
		got, name := ada.page.Download("#download")
		want := p.cliDossierSQL("praktijk-a", snapshot, "3")
		if string(got) != string(want) {
			t.Errorf("the portal's download (%s, %d bytes) differs from dossier restore --format sql (%d bytes):\n--- portal\n%.600s\n--- CLI\n%.600s", name, len(got), len(want), got, want)
		}
		if !strings.HasSuffix(name, ".sql") {
			t.Errorf("download name %q", name)
		}
		// The download works once: the same form posted again (a
		// replay, from the same browser) gets no dossier.
		ada.page.Go(p.base + "/requests/" + rid)
		if ada.page.Count("#download") != 0 {
			t.Errorf("request %s still offers the download after it was used", rid)
		}
		if st, body := ada.page.Fetch("POST", p.base+"/download", form); st == http.StatusOK || strings.Contains(body, "INSERT INTO") {
			t.Errorf("the replayed download form of request %s: HTTP %d, %d bytes", rid, st, len(body))
		}
	}) {
		t.FailNow()
	}

	t.Run("erasure override", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		// Client 5 asked to be forgotten (AVG art. 17): the vendor records
		// the erasure; the practice later needs the file for a court case.
		p.mustRun(0, "erasure", "add", "--tenant", "praktijk-a", "--id", "5", "--reason", "browser test: client asked")
		if st := ada.page.Go(p.base + "/t/praktijk-a"); st != http.StatusOK {
			t.Fatalf("tenant page: HTTP %d", st)
		}
		snap := ada.page.Attr("#snapshot option", "value")
		ada.page.Fill(map[string]string{"#dossier-id": "5"})
		ada.page.Click("#dossier-show")
		if ada.page.Count("#dossier-erased") != 1 || ada.page.Count("#dossier-tables, #request-form") != 0 {
			t.Fatalf("the erased dossier's page (at %s):\n%s", ada.page.Location(), ada.page.Body())
		}
		// One day of the erasure, the register's (the appliance's time
		// zone), in the message and on the page alike.
		var list []struct {
			Time time.Time `json:"erased_at"`
		}
		p.mustJSON(0, &list, "erasure", "list", "--tenant", "praktijk-a", "--json")
		ams, err := time.LoadLocation("Europe/Amsterdam") // appliance.time_zone's default
		if err != nil {
			t.Fatal(err)
		}
		day := list[len(list)-1].Time.In(ams).Format("2006-01-02")
		if got := ada.page.Attr("#dossier-erased", "data-erased"); got != day || !strings.Contains(ada.page.Text("#error"), "erased on "+day) {
			t.Errorf("the erased dossier's page says %q, its message %q; the register's day is %s", got, ada.page.Text("#error"), day)
		}
		if ada.page.Count(`#override-form option[value="restore-into"]`) != 0 {
			t.Error("the override form offers a restore into the live database")
		}
		ada.page.Fill(map[string]string{"#reason": "Vordering rechtbank, zaak 2026/123"})
		docShot(t, ada.page, "practice-erased")
		ada.page.SetValue("#delivery", "sql")
		ada.page.Click("#override-submit")
		rid := requestIDOf(t, ada.page)
		if st := ada.page.Attr("#req-state", "data-state"); st != "pending" || ada.page.Count("#req-erased") != 1 || ada.page.Count("#approve") != 0 {
			t.Fatalf("the override request as its requester sees it (state %q):\n%s", st, ada.page.Body())
		}
		vera.page.Go(p.base + "/requests/" + rid)
		if k := vera.page.Attr("#req-kind", "data-kind"); k != "erasure-override" {
			t.Errorf("the approver sees kind %q", k)
		}
		approveInBrowser(t, p, vera, rid)
		ada.page.Go(p.base + "/requests/" + rid)
		got, _ := ada.page.Download("#download")
		out := p.path("cli-override.sql")
		p.mustRun(0, "dossier", "restore", "--tenant", "praktijk-a", "--snapshot", snap, "--id", "5", "--reason", "browser test: the CLI's copy", "--override-erasure", "browser test", "--format", "sql", "--out", out)
		want, _ := os.ReadFile(out)
		if len(want) == 0 || string(got) != string(want) {
			t.Errorf("the override's download (%d bytes) differs from dossier restore --override-erasure --format sql (%d bytes)", len(got), len(want))
		}
		b, _ := os.ReadFile(p.path("state", "dossier-access.jsonl"))
		if !strings.Contains(string(b), `"override_erasure":"four-eyes request `+rid+`, approved by vera: Vordering rechtbank, zaak 2026/123"`) {
			t.Errorf("the access log lacks the override with both identities")
		}
		p.mustRun(0, "access-log", "verify")
	})

	t.Run("restore into the live database", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		// The practice lost its clients (and every row that hangs off
		// them); a copy of the database as it is now receives the CLI's
		// restore for comparison.
		pgtest.ExecDSN(t, p.dsnA, `TRUNCATE clients CASCADE`)
		rid2, snap := requestDossierInBrowser(t, p, ada, "praktijk-a", "3", "Dossier van cliënt 3 per ongeluk verwijderd", "restore-into", "", "")
		approveInBrowser(t, p, vera, rid2)
		copyDSN := cloneDatabase(t, p.pg, p.dsnA)
		ada.page.Go(p.base + "/requests/" + rid2)
		ada.page.Click("#restore-into")
		writeFile(t, p.path("copy.dsn"), copyDSN)
		p.mustRun(0, "dossier", "restore", "--tenant", "praktijk-a", "--snapshot", snap, "--id", "3", "--reason", "browser test: the CLI's copy", "--into-dsn-file", p.path("copy.dsn"), "--on-conflict", "skip")
		live, cli := dumpTables(t, p.dsnA), dumpTables(t, copyDSN)
		if live["clients"] == "" || !strings.Contains(live["clients"], `"id":3`) {
			t.Errorf("client 3 is not back in the live database")
		}
		for tb, rows := range cli {
			if live[tb] != rows {
				t.Errorf("table %s differs between the portal's restore and the CLI's", tb)
			}
		}
	})

	t.Run("CSRF from another origin", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		before := requestsListed(t, p, ada)
		refusals := strings.Count(p.webLogs.String(), "refused a cross-origin post")
		// The attacker's page: same site (localhost), another port, a
		// form that posts itself to the portal with ada's cookies.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/t/praktijk-a/request">
<input name="snapshot" value="latest"><input name="dossier_id" value="4"><input name="reason" value="csrf"><input name="delivery" value="sql"></form>
<script>document.getElementById("f").submit()</script>`, p.base)
		}))
		defer evil.Close()
		_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
		ada.page.Go("http://localhost:" + port + "/")
		time.Sleep(time.Second)
		ada.page.WaitURL(p.base)
		if body := ada.page.Body(); strings.Contains(body, "csrf") && ada.page.Count("#req-state") == 1 {
			t.Errorf("the cross-origin form created a request:\n%s", body)
		}
		if after := requestsListed(t, p, ada); after != before {
			t.Errorf("requests: %d before the cross-origin post, %d after", before, after)
		}
		if strings.Count(p.webLogs.String(), "refused a cross-origin post") != refusals+1 {
			t.Errorf("the refused cross-origin post is not logged:\n%s", tailOf(p.webLogs.String(), 2000))
		}
	})

	t.Run("hostile input is shown as text", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		const hostile = `<img src=x id=pwned onerror="document.title='pwned'"><script>document.title='pwned'</script>`
		ada.page.Go(p.base + "/t/praktijk-a")
		ada.page.Fill(map[string]string{"#dossier-id": hostile})
		ada.page.Click("#dossier-show")
		checkInert(t, ada.page, hostile)
		// A hostile reason, read by the approver.
		rid3, _ := requestDossierInBrowser(t, p, ada, "praktijk-a", "4", hostile, "sql", "", "")
		vera.page.Go(p.base + "/requests/" + rid3)
		checkInert(t, vera.page, hostile)
		if got := vera.page.Text("#req-reason"); got != hostile {
			t.Errorf("the approver sees the reason as %q, want the text %q", got, hostile)
		}
	})

	t.Run("practice isolation", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		for _, path := range []string{"/t/praktijk-b", "/evidence", "/users", "/evidence?tenant=praktijk-b"} {
			ada.page.Go(p.base + path)
			if body := ada.page.Body(); strings.Contains(body, "praktijk-b") && ada.page.Count("#snapshots, #ev-reports, #users") > 0 {
				t.Errorf("GET %s shows ada another practice's data:\n%s", path, body)
			}
		}
		csrf := ada.page.Attr("#logout-form input[name=csrf]", "value")
		for _, path := range []string{"/t/praktijk-b/dossier", "/t/praktijk-b/request"} {
			st, body := ada.page.Fetch("POST", p.base+path, "csrf="+url.QueryEscape(csrf)+"&snapshot=latest&dossier_id=3&reason=x&delivery=sql")
			if st == http.StatusOK || strings.Contains(body, "dossier-tables") {
				t.Errorf("POST %s by a practice-a user: HTTP %d", path, st)
			}
		}
	})

	t.Run("auditor", func(t *testing.T) {
		defer use(t, p, ada, vera)()
		p.appendEvidence(6, time.Now().UTC().AddDate(0, 0, -7))
		aud := &portalUser{name: "audrey", password: "lente-kers-4-trein", page: b.NewPage("audrey")}
		defer aud.page.Use(t)()
		enrolInBrowser(t, aud, p.addUser(aud.name, "auditor"), "")
		loginTOTPInBrowser(t, p, aud, "", "")
		aud.page.Go(p.base + "/evidence")
		if aud.page.Count("#ev-reports tbody tr") == 0 {
			t.Errorf("the auditor sees no reports:\n%s", aud.page.Body())
		}
		if st := aud.page.Text("#ev-status"); st == "" {
			t.Errorf("no verification status")
		}
		docShot(t, aud.page, "auditor-portal")
		for _, path := range []string{"/t/praktijk-a", "/requests", "/requests/" + rid} {
			aud.page.Go(p.base + path)
			if aud.page.Count("#dossier-form, #snapshots, #request, #requests") != 0 {
				t.Errorf("GET %s: the auditor reaches dossiers or requests:\n%s", path, aud.page.Body())
			}
		}
	})

	// No page ran into its CSP or raised a script error (refused
	// requests are logged by the browser as failed loads: those are the
	// test's own attempts).
	for _, u := range []*portalUser{ada, vera} {
		for _, e := range u.page.Errors() {
			if !strings.Contains(e, "Failed to load resource") {
				t.Errorf("%s's browser: %s", u.name, e)
			}
		}
	}
}

// use makes t (a subtest) the test that the env's and the users' helpers
// fail, until the returned func gives them back.
func use(t *testing.T, p *portalEnv, us ...*portalUser) func() {
	restores := []func(){p.in(t)}
	for _, u := range us {
		restores = append(restores, u.page.Use(t))
	}
	return func() {
		for i := len(restores) - 1; i >= 0; i-- {
			restores[i]()
		}
	}
}

// checkInert asserts that the page shows hostile as text: no element,
// no script run, no CSP violation (nothing even tried to run).
func checkInert(t *testing.T, pg *browsertest.Page, hostile string) {
	t.Helper()
	if pg.Count("#pwned") != 0 || browsertest.Evaluate[string](pg, "document.title") == "pwned" {
		t.Errorf("%s: hostile input became markup at %s", pg.Name, pg.Location())
	}
	if n := pg.Count("main script"); n != 0 {
		t.Errorf("%s: %d script elements in the page's main part", pg.Name, n)
	}
	if v := pg.CSPViolations(); len(v) != 0 {
		t.Errorf("%s: CSP violations: %v", pg.Name, v)
	}
}

// formFields is the form's fields, URL-encoded.
func formFields(pg *browsertest.Page, sel string) string {
	return browsertest.Evaluate[string](pg, fmt.Sprintf(`new URLSearchParams(new FormData(document.querySelector(%q))).toString()`, sel))
}

// requestsListed is the number of requests on the user's list.
func requestsListed(t *testing.T, p *portalEnv, u *portalUser) int {
	t.Helper()
	u.page.Go(p.base + "/requests")
	return u.page.Count("#requests tbody tr")
}

// cloneDatabase creates a copy of the database at dsn (as a template: nobody
// may be connected to it meanwhile) and returns the copy's DSN.
func cloneDatabase(t *testing.T, srv *pgtest.Server, dsn string) string {
	t.Helper()
	src := databaseName(t, dsn)
	name := srv.UniqueName(src + "_copy")
	srv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{src}.Sanitize())
	t.Cleanup(func() { srv.DropDB(t, name) })
	return srv.DSN(name)
}

// dumpTables is every table of the database as sorted JSON rows.
func dumpTables(t *testing.T, dsn string) map[string]string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string]string{}
	for _, tb := range tables {
		var s sql.NullString
		if err := db.QueryRow(`SELECT string_agg(j, E'\n' ORDER BY j) FROM (SELECT row_to_json(x)::text AS j FROM ` + tb + ` x) s`).Scan(&s); err != nil {
			t.Fatalf("%s: %v", tb, err)
		}
		out[strings.Trim(tb, `"`)] = s.String
	}
	return out
}
