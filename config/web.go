package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Web is the web: section: the practice and auditor portal (docs/
// practice.md). `kluis web` serves it; the daemon answers its requests
// on Socket and makes every authentication and authorization decision.
type Web struct {
	// Listen is the portal's address (host:port). Without TLS files it
	// must be a loopback address (behind a reverse proxy).
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile serve HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Socket is the daemon's Unix socket for the web process.
	Socket string `yaml:"socket"`
	// Origin is the portal's public origin (https://host[:port]), as the
	// browser sees it: checked against every form post and WebAuthn
	// ceremony. RPID is the WebAuthn relying party id (default: Origin's
	// host).
	Origin string `yaml:"origin"`
	RPID   string `yaml:"rp_id"`
	// SessionTTL and IdleTimeout end a session (defaults 8h and 15m).
	SessionTTL  Duration `yaml:"session_ttl"`
	IdleTimeout Duration `yaml:"idle_timeout"`
	// LockAfter failed logins lock an account for LockFor (defaults 5,
	// 15m).
	LockAfter int      `yaml:"lock_after"`
	LockFor   Duration `yaml:"lock_for"`
	// RequestTTL is how long a four-eyes request waits for approval and
	// an approved download stays valid (default 24h).
	RequestTTL Duration `yaml:"request_ttl"`
	// RestoreTargets maps a tenant id to the file holding the DSN of the
	// practice's live database that an approved restore goes into
	// (--on-conflict skip). Without one, the practice can only download.
	RestoreTargets map[string]string `yaml:"restore_targets"`
	// OIDC, when set, lets users bound to an identity at the vendor's
	// identity provider sign in there instead of with a kluis password;
	// the second factor of the kluis account is still required.
	OIDC *OIDC `yaml:"oidc"`
}

// OIDC is the web.oidc section: an OpenID Connect identity provider
// (authorization code flow with PKCE). The daemon talks to the provider
// and verifies its ID tokens; `kluis web` only relays the browser.
type OIDC struct {
	// Issuer is the provider's issuer URL (https; http only on a
	// loopback address), as its discovery document names it.
	Issuer string `yaml:"issuer"`
	// ClientID is kluis's client at the provider; ClientSecretFile the
	// file holding its secret (mode 0600, read by the daemon only).
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is registered at the provider (default: web.origin +
	// /login/oidc/callback; when given, it must be that URL).
	RedirectURL string `yaml:"redirect_url"`
	// Claim of the ID token that names the user: sub (default) or
	// email (only with email_verified true), or another claim that the
	// provider's users cannot change themselves.
	Claim string `yaml:"claim"`
	// Label is the provider's name on the login button (default
	// "single sign-on").
	Label string `yaml:"label"`
}

// OIDCCallbackPath is where the provider sends the browser back.
const OIDCCallbackPath = "/login/oidc/callback"

// OIDCWithDefaults returns w.OIDC with its defaults filled in (nil when
// OIDC is not configured).
func (w Web) OIDCWithDefaults() *OIDC {
	if w.OIDC == nil {
		return nil
	}
	o := *w.OIDC
	if o.Claim == "" {
		o.Claim = "sub"
	}
	if o.RedirectURL == "" {
		o.RedirectURL = strings.TrimSuffix(w.Origin, "/") + OIDCCallbackPath
	}
	if o.Label == "" {
		o.Label = "single sign-on"
	}
	return &o
}

// Enabled reports whether the portal is configured.
func (w Web) Enabled() bool { return w.Socket != "" }

// WithDefaults returns w with its defaults filled in.
func (w Web) WithDefaults() Web {
	if w.SessionTTL == 0 {
		w.SessionTTL = Duration(8 * time.Hour)
	}
	if w.IdleTimeout == 0 {
		w.IdleTimeout = Duration(15 * time.Minute)
	}
	if w.LockAfter == 0 {
		w.LockAfter = 5
	}
	if w.LockFor == 0 {
		w.LockFor = Duration(15 * time.Minute)
	}
	if w.RequestTTL == 0 {
		w.RequestTTL = Duration(24 * time.Hour)
	}
	if w.RPID == "" {
		if u, err := url.Parse(w.Origin); err == nil {
			w.RPID = u.Hostname()
		}
	}
	return w
}

func (c *Config) validateWeb(p *Problems) {
	w := c.Web
	if !w.Enabled() && w.Listen == "" && w.Origin == "" {
		return
	}
	c.validateWebServe(p)
	ids := make([]string, 0, len(w.RestoreTargets))
	for id := range w.RestoreTargets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := c.Tenant(id); err != nil && len(c.Discover) == 0 {
			p.addf("web.restore_targets."+id, "no such tenant")
		}
		c.checkSecretFile(p, "web.restore_targets."+id, w.RestoreTargets[id])
	}
	if w.OIDC != nil {
		if w.OIDC.ClientSecretFile == "" {
			p.addf("web.oidc.client_secret_file", "required (the file holding the client secret; never the secret itself in the config)")
		}
		c.checkSecretFile(p, "web.oidc.client_secret_file", w.OIDC.ClientSecretFile)
	}
}

// LoadWeb reads only the web: section of the config at path and checks
// what `kluis web` needs (listen, TLS, socket, origin): the web process
// runs as its own user, which cannot (and must not) read the rest.
func LoadWeb(path string) (Web, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Web{}, err
	}
	var doc struct {
		Web Web `yaml:"web"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Web{}, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Web{}, err
	}
	c := &Config{Web: doc.Web, Dir: filepath.Dir(abs)}
	var p Problems
	if !c.Web.Enabled() {
		p.addf("web.socket", "required: the config has no web: section (docs/practice.md)")
	}
	c.validateWebServe(&p)
	if err := p.Err(); err != nil {
		return Web{}, err
	}
	w := c.Web
	w.Socket, w.TLSCertFile, w.TLSKeyFile = c.Resolve(w.Socket), c.resolveOpt(w.TLSCertFile), c.resolveOpt(w.TLSKeyFile)
	return w.WithDefaults(), nil
}

func (c *Config) resolveOpt(p string) string {
	if p == "" {
		return ""
	}
	return c.Resolve(p)
}

func (c *Config) validateWebServe(p *Problems) {
	w := c.Web
	if w.Socket == "" {
		p.addf("web.socket", "required (the daemon's Unix socket for kluis web)")
	} else if !filepath.IsAbs(c.Resolve(w.Socket)) {
		p.addf("web.socket", "%q: want an absolute path", w.Socket)
	}
	host, _, err := net.SplitHostPort(w.Listen)
	switch {
	case w.Listen == "":
		p.addf("web.listen", "required (host:port)")
	case err != nil:
		p.addf("web.listen", "%q: want host:port", w.Listen)
	}
	tls := w.TLSCertFile != "" || w.TLSKeyFile != ""
	if tls && (w.TLSCertFile == "" || w.TLSKeyFile == "") {
		p.addf("web", "tls_cert_file and tls_key_file go together")
	}
	if w.Listen != "" && err == nil && !tls && !isLoopback(host) {
		p.addf("web.listen", "plain HTTP on %q: serve HTTPS (tls_cert_file, tls_key_file) or listen on a loopback address behind a TLS reverse proxy", w.Listen)
	}
	u, uerr := url.Parse(w.Origin)
	switch {
	case w.Origin == "":
		p.addf("web.origin", "required (the portal's address as browsers see it, e.g. https://kluis.example.nl)")
	case uerr != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "":
		p.addf("web.origin", "%q: want scheme://host[:port]", w.Origin)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		p.addf("web.origin", "%q: browsers only allow passkeys and secure cookies over https (http only on a loopback address)", w.Origin)
	case u.Scheme != "http" && u.Scheme != "https":
		p.addf("web.origin", "scheme %q: want https", u.Scheme)
	}
	if uerr == nil && u.Host != "" && net.ParseIP(u.Hostname()) != nil {
		p.addf("web.origin", "%q: passkeys need a host name, not an IP address (use localhost on this machine)", w.Origin)
	}
	if w.RPID != "" && uerr == nil && u.Host != "" {
		h := u.Hostname()
		if h != w.RPID && !strings.HasSuffix(h, "."+w.RPID) {
			p.addf("web.rp_id", "%q is not web.origin's host or a parent domain of it", w.RPID)
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"session_ttl", w.SessionTTL}, {"idle_timeout", w.IdleTimeout}, {"lock_for", w.LockFor}, {"request_ttl", w.RequestTTL}} {
		if d.v < 0 {
			p.addf("web."+d.name, "cannot be negative")
		}
	}
	if w.LockAfter < 0 || w.LockAfter > 100 {
		p.addf("web.lock_after", "%d: want 1..100", w.LockAfter)
	}
	if w.OIDC != nil {
		validateOIDC(p, w)
	}
}

var oidcClaimRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// validateOIDC checks web.oidc (all but the secret file, which the web
// process cannot read).
func validateOIDC(p *Problems, w Web) {
	o := w.OIDCWithDefaults()
	u, err := url.Parse(o.Issuer)
	switch {
	case o.Issuer == "":
		p.addf("web.oidc.issuer", "required (the identity provider's issuer URL)")
	case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		p.addf("web.oidc.issuer", "%q: want https://host[/path]", o.Issuer)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		p.addf("web.oidc.issuer", "%q: the identity provider must be reached over https (http only on a loopback address)", o.Issuer)
	case u.Scheme != "http" && u.Scheme != "https":
		p.addf("web.oidc.issuer", "scheme %q: want https", u.Scheme)
	}
	if strings.TrimSpace(o.ClientID) == "" {
		p.addf("web.oidc.client_id", "required")
	}
	if want := strings.TrimSuffix(w.Origin, "/") + OIDCCallbackPath; o.RedirectURL != want {
		p.addf("web.oidc.redirect_url", "%q: the portal receives the provider's answer at %s (leave redirect_url out)", o.RedirectURL, want)
	}
	if !oidcClaimRE.MatchString(o.Claim) {
		p.addf("web.oidc.claim", "%q: want a claim name such as sub or email", o.Claim)
	}
	if len(o.Label) > 64 {
		p.addf("web.oidc.label", "at most 64 characters")
	}
}
