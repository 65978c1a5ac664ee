// Package browsertest drives a real headless Chromium from Go tests
// (chromedp over the DevTools protocol) for the portal's browser tests
// (docs/practice.md, issue 20).
//
// A Browser is one chromium process per test; each Page is a tab in a
// browser context of its own — its own cookies, storage and virtual
// WebAuthn authenticator — so two users (a practice user and an approver)
// act side by side in one browser without seeing each other's session.
// The virtual authenticator is CDP's (WebAuthn.addVirtualAuthenticator:
// CTAP2, internal transport, resident keys, user verification, presence
// simulated), so passkey registration and assertions run through
// chromium's real WebAuthn stack and the server verifies real signatures.
//
// Every Page records its console (messages, uncaught exceptions and the
// browser log, where chromium reports Content-Security-Policy violations)
// so a test can assert that no inline script ran and no error was raised.
//
// The tests need Debian's chromium at /usr/bin/chromium. Without it they
// skip, saying how to install it; KLUIS_TEST_REQUIRE_CHROMIUM=1 (set by
// scripts/test.sh) makes that a failure. Nothing leaves the machine: the
// browser runs with its background networking off and is pointed at
// loopback servers only.
package browsertest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// ExecPath is Debian's chromium.
const ExecPath = "/usr/bin/chromium"

// RequireEnv makes a missing browser a test failure when set to "1".
const RequireEnv = "KLUIS_TEST_REQUIRE_CHROMIUM"

// Viewport is the size of every page (and so of the screenshots in docs/):
// modest, so the committed PNGs stay small and readable.
const (
	ViewportWidth  = 960
	ViewportHeight = 720
)

// Timeout bounds one browser action (a navigation, a click and the page
// it loads, a WebAuthn ceremony).
var Timeout = 60 * time.Second

// Require skips t (or fails it under KLUIS_TEST_REQUIRE_CHROMIUM=1) when
// chromium is not installed.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(ExecPath); err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s is missing and %s=1 (apt-get install chromium, or run scripts/test.sh)", ExecPath, RequireEnv)
	}
	t.Skipf("%s is missing: apt-get install chromium to run this test (scripts/test.sh does)", ExecPath)
}

// Browser is one headless chromium process.
type Browser struct {
	t   testing.TB
	ctx context.Context // the first tab's context: holds the browser
	dir string
}

// Start starts chromium for t (Require first) and stops it when t ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	var out syncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ExecPath),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(ViewportWidth, ViewportHeight),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "nl-NL"),
		chromedp.Env("HOME="+dir),
		chromedp.CombinedOutput(&out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser under the context it runs on,
	// so it must be ctx itself, not one with a deadline that ends it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", ExecPath, err, out.String())
	}
	return &Browser{t: t, ctx: ctx, dir: dir}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Page is one tab in a browser context of its own: one user's browser.
type Page struct {
	t    testing.TB
	Name string
	// Ctx runs chromedp actions on the tab.
	Ctx context.Context
	// BrowserContextID is the tab's browser context.
	BrowserContextID cdp.BrowserContextID
	// Authenticator is the virtual WebAuthn authenticator, once added.
	Authenticator webauthn.AuthenticatorID

	downloads string
	*consoleLog
}

type consoleLog struct {
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// Use makes t the test the page's helpers fail (a subtest) until the
// returned func gives the page back to the previous one:
// defer pg.Use(t)().
func (p *Page) Use(t testing.TB) func() {
	prev := p.t
	p.t = t
	return func() { p.t = prev }
}

// NewPage opens a tab in a fresh browser context (no cookies, no storage)
// with the fixed viewport. name labels its console lines in the test log.
func (b *Browser) NewPage(name string) *Page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	p := &Page{t: b.t, Name: name, Ctx: ctx, downloads: filepath.Join(b.dir, "downloads-"+name), consoleLog: &consoleLog{}}
	if err := os.MkdirAll(p.downloads, 0o700); err != nil {
		b.t.Fatal(err)
	}
	// The first action opens the tab under ctx (not a timeout context,
	// whose end would close it).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(ViewportWidth, ViewportHeight)); err != nil {
		b.t.Fatalf("%s: opening the tab: %v", name, err)
	}
	p.BrowserContextID = chromedp.FromContext(ctx).BrowserContextID
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: p.BrowserContextID,
		DownloadPath: p.downloads, EventsEnabled: new(true),
	}); err != nil {
		b.t.Fatalf("%s: allowing downloads: %v", name, err)
	}
	return p
}

// timeout returns the tab's context bounded by Timeout.
func (p *Page) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.Ctx, Timeout)
}

func (p *Page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v (at %s)", p.Name, what, err, p.location())
	}
}

func (p *Page) location() string {
	ctx, cancel := context.WithTimeout(p.Ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// Location is the tab's URL.
func (p *Page) Location() string { return p.location() }

// Go navigates to url, waits for its body and returns the HTTP status of
// the document.
func (p *Page) Go(url string) int {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.t.Fatalf("%s: opening %s: %v", p.Name, url, err)
	}
	p.do("waiting for the page", chromedp.WaitReady(chromedp.CSS("body")))
	return int(resp.Status)
}

// Fill sets the form fields by CSS selector (typing into them, as a user
// would, after clearing them).
func (p *Page) Fill(fields map[string]string) {
	p.t.Helper()
	for sel, v := range fields {
		p.do("filling "+sel, chromedp.WaitReady(chromedp.CSS(sel)),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel)),
			chromedp.SendKeys(chromedp.CSS(sel), v))
	}
}

// SetValue sets a field's value without typing (hidden and select fields).
func (p *Page) SetValue(sel, v string) {
	p.t.Helper()
	p.do("setting "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
}

// Click clicks the element and waits for the document it loads; it
// returns that document's HTTP status.
func (p *Page) Click(sel string) int {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("%s: clicking %s: %v (at %s)", p.Name, sel, err, p.location())
	}
	p.do("waiting for the page", chromedp.WaitReady(chromedp.CSS("body")))
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// ClickNoWait clicks the element without waiting for a navigation (a
// button whose script runs a WebAuthn ceremony first).
func (p *Page) ClickNoWait(sel string) {
	p.t.Helper()
	p.do("clicking "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// WaitVisible waits until the element is visible.
func (p *Page) WaitVisible(sel string) {
	p.t.Helper()
	p.do("waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitURL waits until the tab's URL contains part (after a script
// navigated).
func (p *Page) WaitURL(part string) {
	p.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.location(), part) {
			p.do("waiting for the page", chromedp.WaitReady(chromedp.CSS("body")))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: the page did not reach a URL with %q (at %s); console:\n%s", p.Name, part, p.location(), p.ConsoleText())
}

// Text is the visible text of the first element matching sel.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("%s: reading %s: %v (at %s)", p.Name, sel, err, p.location())
	}
	return s
}

// Body is the visible text of the page.
func (p *Page) Body() string {
	p.t.Helper()
	return Evaluate[string](p, `document.body ? document.body.innerText : ""`)
}

// HTML is the serialized DOM of the page.
func (p *Page) HTML() string {
	p.t.Helper()
	return Evaluate[string](p, `document.documentElement.outerHTML`)
}

// Count is the number of elements matching the CSS selector.
func (p *Page) Count(sel string) int {
	p.t.Helper()
	return Evaluate[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// Attr is an attribute of the first element matching sel ("" when absent).
func (p *Page) Attr(sel, name string) string {
	p.t.Helper()
	return Evaluate[string](p, fmt.Sprintf(`(function(){const e=document.querySelector(%q); return e ? (e.getAttribute(%q)||"") : ""})()`, sel, name))
}

// Evaluate runs a JavaScript expression in the page (from the test, not
// the page: the page's CSP does not apply) and decodes its value.
func Evaluate[T any](p *Page, expr string) T {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.Name, expr, err)
	}
	return v
}

// Screenshot writes a PNG of the viewport to path.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.Name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// Cookies are the cookies the tab sends to url.
func (p *Page) Cookies(url string) []*network.Cookie {
	p.t.Helper()
	res, err := chromedp.Call(p.Ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		p.t.Fatalf("%s: cookies: %v", p.Name, err)
	}
	return res.Cookies
}

// SetCookie sets a cookie in the tab's browser context (an attacker
// planting a session id, say).
func (p *Page) SetCookie(c network.SetCookieParams) {
	p.t.Helper()
	if _, err := chromedp.Call(p.Ctx, network.SetCookie, c); err != nil {
		p.t.Fatalf("%s: setting cookie %s: %v", p.Name, c.Name, err)
	}
}

// Download clicks the element (a download link or button) and returns
// the downloaded file's bytes and its suggested name.
func (p *Page) Download(sel string) ([]byte, string) {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	begin := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("%s: clicking %s: %v", p.Name, sel, err)
	}
	var guid, name string
	for ev, err := range begin {
		if err != nil {
			p.t.Fatalf("%s: no download started by %s: %v (at %s)", p.Name, sel, err, p.location())
		}
		guid, name = ev.GUID, ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			p.t.Fatalf("%s: download %s did not complete: %v", p.Name, name, err)
		}
		if ev.GUID != guid {
			continue
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			path := ev.FilePath
			if path == "" {
				path = filepath.Join(p.downloads, guid)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				p.t.Fatalf("%s: reading the download: %v", p.Name, err)
			}
			os.Remove(path)
			return b, name
		case browser.DownloadProgressStateCanceled:
			p.t.Fatalf("%s: download %s canceled", p.Name, name)
		}
	}
	panic("unreachable")
}

// Fetch runs fetch() in the page (same-origin credentials) and returns
// the status and body: what the page's own scripts could read.
func (p *Page) Fetch(method, url, body string) (int, string) {
	p.t.Helper()
	type res struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	js := fmt.Sprintf(`fetch(%q, {method: %q, credentials: "same-origin", redirect: "manual", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: %s}).then(async r => ({status: r.status, body: await r.text()}))`,
		url, method, jsOrNull(method, body))
	r := Evaluate[res](p, js)
	return r.Status, r.Body
}

func jsOrNull(method, body string) string {
	if method == http.MethodGet || method == http.MethodHead {
		return "null"
	}
	return fmt.Sprintf("%q", body)
}

// Console is every console message, exception and browser log entry so
// far.
func (p *Page) Console() []chromedp.ConsoleMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), p.console...)
}

// ConsoleText is the console, one message a line.
func (p *Page) ConsoleText() string {
	var b strings.Builder
	for _, m := range p.Console() {
		fmt.Fprintf(&b, "  %s %s: %s\n", m.Type, m.URL, m.Text)
	}
	return b.String()
}

// CSPViolations are the browser's reports of blocked inline scripts,
// styles, event handlers or other resources.
func (p *Page) CSPViolations() []string {
	var out []string
	for _, m := range p.Console() {
		if strings.Contains(m.Text, "Content Security Policy") {
			out = append(out, m.Text)
		}
	}
	return out
}

// Errors are the uncaught exceptions and console errors so far (CSP
// violations included: the browser logs them as errors).
func (p *Page) Errors() []string {
	var out []string
	for _, m := range p.Console() {
		if m.IsException() || m.Type == "error" {
			out = append(out, fmt.Sprintf("%s %s", m.URL, m.Text))
		}
	}
	return out
}

// AuthenticatorOptions are those of a platform passkey: CTAP 2.1 over
// the internal transport, resident keys, user verification that
// succeeds, and user presence simulated so no prompt waits.
func AuthenticatorOptions() *webauthn.VirtualAuthenticatorOptions {
	return &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportInternal,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
	}
}

// AddAuthenticator gives the tab a virtual WebAuthn authenticator (the
// user's passkey device) and returns its id.
func (p *Page) AddAuthenticator() webauthn.AuthenticatorID {
	p.t.Helper()
	if _, err := chromedp.Call(p.Ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)}); err != nil {
		p.t.Fatalf("%s: WebAuthn.enable: %v", p.Name, err)
	}
	res, err := chromedp.Call(p.Ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: AuthenticatorOptions()})
	if err != nil {
		p.t.Fatalf("%s: WebAuthn.addVirtualAuthenticator: %v", p.Name, err)
	}
	p.Authenticator = res.AuthenticatorID
	return res.AuthenticatorID
}

// RemoveAuthenticator unplugs the virtual authenticator (its credentials
// go with it).
func (p *Page) RemoveAuthenticator() {
	p.t.Helper()
	if _, err := chromedp.Call(p.Ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: p.Authenticator}); err != nil {
		p.t.Fatalf("%s: WebAuthn.removeVirtualAuthenticator: %v", p.Name, err)
	}
	p.Authenticator = ""
}

// Credentials are the credentials the virtual authenticator holds (with
// private keys and sign counts).
func (p *Page) Credentials() []*webauthn.Credential {
	p.t.Helper()
	res, err := chromedp.Call(p.Ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: p.Authenticator})
	if err != nil {
		p.t.Fatalf("%s: WebAuthn.getCredentials: %v", p.Name, err)
	}
	return res.Credentials
}

// AddCredential copies a credential (say, another user's, taken from
// their authenticator) into this tab's authenticator.
func (p *Page) AddCredential(c *webauthn.Credential) {
	p.t.Helper()
	if _, err := chromedp.Call(p.Ctx, webauthn.AddCredential, webauthn.AddCredentialParams{AuthenticatorID: p.Authenticator, Credential: c}); err != nil {
		p.t.Fatalf("%s: WebAuthn.addCredential: %v", p.Name, err)
	}
}

// SetUserVerified makes the authenticator's user verification succeed or
// fail (a wrong fingerprint).
func (p *Page) SetUserVerified(ok bool) {
	p.t.Helper()
	if _, err := chromedp.Call(p.Ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: p.Authenticator, IsUserVerified: ok}); err != nil {
		p.t.Fatalf("%s: WebAuthn.setUserVerified: %v", p.Name, err)
	}
}

// CredentialID is a credential id as base64url (WebAuthn's rawId in JSON).
func CredentialID(c *webauthn.Credential) string {
	return base64.RawURLEncoding.EncodeToString(c.CredentialID)
}

// Reload reloads the page.
func (p *Page) Reload() {
	p.t.Helper()
	p.do("reloading", chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("body")))
}

// Back goes back one page in the history.
func (p *Page) Back() {
	p.t.Helper()
	p.do("going back", chromedp.NavigateBack(), chromedp.WaitReady(chromedp.CSS("body")))
}

// WaitLoad runs trigger and waits for the next load event of the tab.
func (p *Page) WaitLoad(what string, trigger chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := p.timeout()
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, trigger)); err != nil {
		p.t.Fatalf("%s: %s: %v (at %s)", p.Name, what, err, p.location())
	}
}

// WaitFor waits until the JavaScript condition is true in the page,
// across navigations (a script that reloads the page when a WebAuthn
// ceremony ends): errors while a document is replaced only mean "not
// yet". It fails the test after Timeout, showing the page and console.
func (p *Page) WaitFor(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.Ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: timed out waiting for %s (at %s):\n%s\nconsole:\n%s", p.Name, what, p.location(), p.Body(), p.ConsoleText())
}
