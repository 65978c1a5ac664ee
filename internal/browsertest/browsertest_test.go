package browsertest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// selfTestJS registers a passkey and asserts with it; it is served as a
// file because the page's CSP forbids inline script.
const selfTestJS = `
let rawId;
const out = document.getElementById("out");
document.getElementById("register").addEventListener("click", async () => {
  try {
    const c = await navigator.credentials.create({publicKey: {
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      rp: {name: "self-test", id: location.hostname},
      user: {id: new Uint8Array([1, 2, 3, 4]), name: "ada", displayName: "Ada"},
      pubKeyCredParams: [{type: "public-key", alg: -7}, {type: "public-key", alg: -257}],
      authenticatorSelection: {userVerification: "required", residentKey: "required"}}});
    rawId = c.rawId;
    out.textContent = "registered " + c.id;
  } catch (e) { out.textContent = "error " + e; }
});
document.getElementById("assert").addEventListener("click", async () => {
  try {
    const a = await navigator.credentials.get({publicKey: {
      challenge: crypto.getRandomValues(new Uint8Array(32)), rpId: location.hostname,
      allowCredentials: [{type: "public-key", id: rawId}], userVerification: "required"}});
    const flags = new Uint8Array(a.response.authenticatorData)[32];
    out.textContent = "asserted " + a.id + " uv=" + ((flags & 4) ? 1 : 0);
  } catch (e) { out.textContent = "error " + e; }
});
`

// selfTestServer serves a page under a strict CSP with an inline script
// (which must not run), a script file, a cookie and a download.
func selfTestServer(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Query().Get("login") != "" {
			http.SetCookie(w, &http.Cookie{Name: "who", Value: r.URL.Query().Get("login"), Path: "/"})
		}
		who := "nobody"
		if c, err := r.Cookie("who"); err == nil {
			who = c.Value
		}
		fmt.Fprintf(w, `<!doctype html><html><head><title>self-test</title><script src="/app.js" defer></script></head>
<body><p id="who">%s</p><p id="out">-</p><p id="inline">not run</p>
<script>document.getElementById("inline").textContent = "ran";</script>
<button id="register">register</button><button id="assert">assert</button>
<a id="dl" href="/file">download</a></body></html>`, who)
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, selfTestJS)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/sql")
		w.Header().Set("Content-Disposition", `attachment; filename="dossier.sql"`)
		fmt.Fprint(w, "INSERT INTO t VALUES (1);\n")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// localhost, not 127.0.0.1: an IP address cannot be a WebAuthn RP id.
	return "http://localhost:" + port
}

// TestHarness drives the harness against a small page: browser contexts
// keep their cookies and authenticators apart, the virtual authenticator
// registers a passkey
// and asserts with it (user verified), the page's CSP blocks its inline
// script and the harness sees the violation, and a download arrives.
func TestHarness(t *testing.T) {
	b := Start(t)
	base := selfTestServer(t)

	ada := b.NewPage("ada")
	bob := b.NewPage("bob")
	ada.Go(base + "/?login=ada")
	ada.Go(base + "/")
	bob.Go(base + "/")
	if got := ada.Text("#who"); got != "ada" {
		t.Errorf("ada's page says %q", got)
	}
	if got := bob.Text("#who"); got != "nobody" {
		t.Errorf("bob's browser context sent ada's cookie: the page says %q", got)
	}
	if n := len(bob.Cookies(base)); n != 0 {
		t.Errorf("bob has %d cookies", n)
	}

	if got := ada.Text("#inline"); got != "not run" {
		t.Errorf("an inline script ran under script-src 'self': %q", got)
	}
	if len(ada.CSPViolations()) == 0 {
		t.Errorf("no CSP violation reported for the inline script; console:\n%s", ada.ConsoleText())
	}

	ada.AddAuthenticator()
	ada.ClickNoWait("#register")
	waitText(t, ada, "#out", "registered ")
	creds := ada.Credentials()
	if len(creds) != 1 || !creds[0].IsResidentCredential {
		t.Fatalf("the authenticator holds %d credentials (want 1 resident)", len(creds))
	}
	id := CredentialID(creds[0])
	if got := ada.Text("#out"); got != "registered "+id {
		t.Errorf("page says %q, authenticator holds %s", got, id)
	}
	ada.ClickNoWait("#assert")
	waitText(t, ada, "#out", "asserted ")
	if got := ada.Text("#out"); got != "asserted "+id+" uv=1" {
		t.Errorf("assertion: %q", got)
	}
	if c := ada.Credentials(); c[0].SignCount < 1 {
		t.Errorf("sign count %v after an assertion", c[0].SignCount)
	}

	// Authenticators belong to one tab: bob's holds nothing of ada's.
	bob.AddAuthenticator()
	if n := len(bob.Credentials()); n != 0 {
		t.Errorf("bob's new authenticator holds %d credentials", n)
	}

	body, name := ada.Download("#dl")
	if name != "dossier.sql" || string(body) != "INSERT INTO t VALUES (1);\n" {
		t.Errorf("download %q: %q", name, body)
	}
}

func waitText(t *testing.T, p *Page, sel, prefix string) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		if strings.HasPrefix(p.Text(sel), prefix) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s never started with %q: %q; console:\n%s", p.Name, sel, prefix, p.Text(sel), p.ConsoleText())
}

// TestTOTPCodesAreFreshAndValid: the app gives a code the server accepts
// now (±1 step) and never the same step twice.
func TestTOTPCodesAreFreshAndValid(t *testing.T) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "kluis", AccountName: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	app := NewTOTP(key.Secret())
	c1, c2 := app.Code(t), app.Code(t)
	if c1 == c2 {
		t.Errorf("two codes in a row are equal (%s): a server refuses the second", c1)
	}
	now := time.Now()
	for _, c := range []string{c1, c2} {
		ok := false
		for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
			if CodeAt(t, key.Secret(), now.Add(d)) == c {
				ok = true
			}
		}
		if !ok {
			t.Errorf("code %s is not within one step of now", c)
		}
	}
}
