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
	// bind: an existing account moves to the provider (its password is
	// cleared); --clear unbinds; one identity stays one account.
	if r := e.run("users", "bind", "bert", "--oidc-subject", "idp-anna"); r.code != 2 || !strings.Contains(r.stderr, "already bound to user anna") {
		t.Fatalf("bind to a bound identity: %v", r)
	}
	if r := e.run("users", "bind", "bert"); r.code != 2 {
		t.Fatalf("bind without --oidc-subject or --clear: %v", r)
	}
	if r := e.run("users", "bind", "nobody", "--clear"); r.code != 2 || !strings.Contains(r.stderr, "no portal user") {
		t.Fatalf("bind of an unknown user: %v", r)
	}
	if _, err := portal.NewStore(e.path("state")).Update("bert", func(u *portal.User) error { u.Password = portal.HashPassword("a long enough password"); return nil }); err != nil {
		t.Fatal(err)
	}
	e.mustRun(0, "users", "bind", "bert", "--oidc-subject", "idp-bert")
	bert, err := portal.NewStore(e.path("state")).Get("bert")
	if err != nil || bert.OIDCSubject != "idp-bert" || bert.Password != "" {
		t.Fatalf("bert after bind: %+v, %v", bert, err)
	}
	if out := e.mustRun(0, "users", "bind", "anna", "--clear").stdout; !strings.Contains(out, "kluis users reset anna") {
		t.Fatalf("unbind: %s", out)
	}
	if anna, _ := portal.NewStore(e.path("state")).Get("anna"); anna.OIDCSubject != "" || anna.Enrolled() {
		t.Fatalf("anna after unbind: %+v", anna)
	}
	// Flags after the user name count (they were left over as names).
	e.mustRun(0, "users", "disable", "bert", "--operator", "ops-piet")
	b, _ := os.ReadFile(e.path("state", portal.EventsFileName))
	for _, want := range []string{`"approver":"ops-piet"`, "identity provider idp-anna", "bound to identity provider idp-bert (password cleared)", "unbound from the identity provider"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("the portal log lacks %q:\n%s", want, b)
		}
	}
}
