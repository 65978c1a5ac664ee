package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebSection: HTTPS with cert files, or plain HTTP on loopback only;
// an https origin (http only on loopback) with a host name; everything
// else refused by config check.
func TestWebSection(t *testing.T) {
	ok := []string{
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl'}",
		"web: {listen: '[::1]:8080', socket: /run/kluis/portal.sock, origin: 'http://localhost:8080'}",
		"web: {listen: ':443', tls_cert_file: /etc/kluis/web.crt, tls_key_file: /etc/kluis/web.key, socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl', rp_id: example.nl}",
		"",
		oidcWeb("{issuer: 'https://login.example.nl/realms/vendor', client_id: kluis, client_secret_file: /etc/kluis/oidc-secret, claim: email}"),
		oidcWeb("{issuer: 'http://127.0.0.1:5556', client_id: kluis, client_secret_file: /etc/kluis/oidc-secret, redirect_url: 'https://kluis.example.nl/login/oidc/callback'}"),
	}
	bad := map[string]string{
		"web: {listen: ':8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl'}":                                        "web.listen: plain HTTP",
		"web: {listen: '0.0.0.0:80', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl'}":                                   "web.listen: plain HTTP",
		"web: {listen: '10.0.0.5:443', tls_cert_file: /x.crt, socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl'}":          "go together",
		"web: {listen: '127.0.0.1:8080', origin: 'https://kluis.example.nl'}":                                                               "web.socket: required",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock}":                                                                   "web.origin: required",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'http://kluis.example.nl'}":                                "web.origin",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://127.0.0.1'}":                                      "not an IP address",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl/portal'}":                        "scheme://host",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl', rp_id: other.nl}":              "web.rp_id",
		"web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl', restore_targets: {nobody: x}}": "no such tenant",
		"web: {listen: 'nonsense', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl'}":                                     "want host:port",
		oidcWeb("{issuer: 'http://idp.example.nl', client_id: kluis, client_secret_file: /etc/kluis/oidc}"):                                 "web.oidc.issuer",
		oidcWeb("{issuer: 'ftp://idp.example.nl', client_id: kluis, client_secret_file: /etc/kluis/oidc}"):                                  "web.oidc.issuer",
		oidcWeb("{client_id: kluis, client_secret_file: /etc/kluis/oidc}"):                                                                  "web.oidc.issuer: required",
		oidcWeb("{issuer: 'https://idp.example.nl', client_secret_file: /etc/kluis/oidc}"):                                                  "web.oidc.client_id: required",
		oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis}"):                                                                     "web.oidc.client_secret_file: required",
		oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret: hunter2, client_secret_file: /etc/kluis/oidc}"):        "client_secret",
		oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret_file: /x, redirect_url: 'https://evil.example/cb'}"):    "web.oidc.redirect_url",
		oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret_file: /etc/kluis/oidc, claim: 'Email Address'}"):        "web.oidc.claim",
	}
	for _, w := range ok {
		if _, err := Parse([]byte(validYAML(t)+w+"\n"), t.TempDir()); err != nil {
			t.Errorf("%s: %v", w, err)
		}
	}
	for w, want := range bad {
		_, err := Parse([]byte(validYAML(t)+w+"\n"), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", w, err, want)
		}
	}
}

func oidcWeb(o string) string {
	return "web: {listen: '127.0.0.1:8080', socket: /run/kluis/portal.sock, origin: 'https://kluis.example.nl', oidc: " + o + "}"
}

// TestOIDCSecretFile: the client secret's file is checked like every
// secret file (mode 0600), and its contents never appear in an error.
func TestOIDCSecretFile(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "oidc-secret")
	os.WriteFile(sec, []byte("s3cr3t-client-secret\n"), 0o644)
	_, err := Parse([]byte(validYAML(t)+oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret_file: "+sec+"}")+"\n"), dir)
	if err == nil || !strings.Contains(err.Error(), "web.oidc.client_secret_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable secret file: %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("the secret is in the error: %v", err)
	}
	os.Chmod(sec, 0o600)
	c, err := Parse([]byte(validYAML(t)+oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret_file: "+sec+"}")+"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Web.OIDCWithDefaults()
	if o.Claim != "sub" || o.RedirectURL != "https://kluis.example.nl/login/oidc/callback" || o.Label == "" {
		t.Fatalf("defaults: %+v", o)
	}
	// kluis web reads web.oidc (for its button) but never the secret's
	// file, which its user cannot read.
	p := filepath.Join(dir, "kluis.yaml")
	os.WriteFile(p, []byte(oidcWeb("{issuer: 'https://idp.example.nl', client_id: kluis, client_secret_file: /nonexistent/unreadable, label: Vendor SSO}")+"\n"), 0o640)
	w, err := LoadWeb(p)
	if err != nil || w.OIDCWithDefaults().Label != "Vendor SSO" {
		t.Fatalf("LoadWeb with web.oidc: %+v, %v", w.OIDC, err)
	}
	os.WriteFile(p, []byte(oidcWeb("{issuer: 'http://idp.example.nl', client_id: kluis, client_secret_file: /x}")+"\n"), 0o640)
	if _, err := LoadWeb(p); err == nil || !strings.Contains(err.Error(), "web.oidc.issuer") {
		t.Fatalf("LoadWeb with an http issuer: %v", err)
	}
}

// TestLoadWeb reads the web: section alone, without the files the web
// process must not reach.
func TestLoadWeb(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kluis.yaml")
	os.WriteFile(p, []byte("appliance: {master_key_file: /nonexistent/unreadable}\nweb: {listen: '127.0.0.1:8080', socket: run/p.sock, origin: 'https://kluis.example.nl'}\n"), 0o640)
	w, err := LoadWeb(p)
	if err != nil {
		t.Fatal(err)
	}
	if w.Socket != filepath.Join(dir, "run/p.sock") || w.RPID != "kluis.example.nl" || w.LockAfter != 5 || w.IdleTimeout.D().Minutes() != 15 {
		t.Fatalf("%+v", w)
	}
	os.WriteFile(p, []byte("web: {listen: '0.0.0.0:80', socket: /s, origin: 'https://kluis.example.nl'}\n"), 0o640)
	if _, err := LoadWeb(p); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("plain HTTP on all addresses: %v", err)
	}
	os.WriteFile(p, []byte("appliance: {id: x}\n"), 0o640)
	if _, err := LoadWeb(p); err == nil {
		t.Fatal("no web section accepted")
	}
}
