package main

import (
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/portal"
)

// TestPortalOIDCUsers: web.oidc in config check (the client secret's
// file checked like every secret file, never printed), and ops binding
// users to identities with `kluis users add --oidc-subject`: only with
// web.oidc, one identity per user, shown by users list.
func TestPortalOIDCUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := `web: {listen: '127.0.0.1:8080', socket: /run/kluis-test/p.sock, origin: 'https://kluis.example.test'`
	writeFile(t, e.path("a.dsn"), "unused")
	writeFile(t, e.path("b.dsn"), "unused")
	writeFile(t, e.cfg, twoTenantConfig("postgres")+web+"}\n")
	e.keysInit()
	if r := e.run("users", "add", "--name", "anna", "--role", "auditor", "--oidc-subject", "idp-anna"); r.code != 2 || !strings.Contains(r.stderr, "web.oidc") {
		t.Fatalf("--oidc-subject without web.oidc: %v", r)
	}

	const secret = "client-secret-never-printed"
	if err := os.WriteFile(e.path("oidc.secret"), []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfg, twoTenantConfig("postgres")+web+`, oidc: {issuer: 'https://login.example.test/realms/vendor', client_id: kluis, client_secret_file: ./oidc.secret, label: Vendor SSO}}`+"\n")
	r := e.run("config", "check")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "web.oidc.client_secret_file") {
		t.Fatalf("config check with a group-readable client secret: %v", r)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatalf("config check printed the client secret: %v", r)
	}
	os.Chmod(e.path("oidc.secret"), 0o600)
	e.mustRun(0, "config", "check")

	var added struct {
		Subject string `json:"oidc_subject"`
	}
	e.mustJSON(0, &added, "users", "add", "--name", "anna", "--role", "auditor", "--oidc-subject", "idp-anna")
	if added.Subject != "idp-anna" {
		t.Fatalf("users add: %+v", added)
	}
	if r := e.run("users", "add", "--name", "bert", "--role", "approver", "--oidc-subject", "IDP-anna"); r.code != 2 || !strings.Contains(r.stderr, "already bound to user anna") {
		t.Fatalf("one identity bound twice: %v", r)
	}
	e.mustRun(0, "users", "add", "--name", "bert", "--role", "approver")
	var users []portal.UserView
	e.mustJSON(0, &users, "users", "list", "--json")
	if len(users) != 2 || users[0].OIDCSubject != "idp-anna" || users[1].OIDCSubject != "" {
		t.Fatalf("users list: %+v", users)
	}
	out := e.mustRun(0, "users", "list").stdout
	if !strings.Contains(out, "idp:idp-anna") || !strings.Contains(out, "password") {
		t.Fatalf("users list:\n%s", out)
	}
	b, _ := os.ReadFile(e.path("state", portal.EventsFileName))
	if !strings.Contains(string(b), "identity provider idp-anna") {
		t.Fatalf("the portal log lacks the binding:\n%s", b)
	}
}
