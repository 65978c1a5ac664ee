package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/portaltest"
	"github.com/kluis-nl/kluis/portal"
)

// loggedOIDC returns the login-oidc events whose result contains substr.
func loggedOIDC(f *portaltest.Fixture, substr string) []portal.Event {
	var out []portal.Event
	for _, e := range f.Log.Events() {
		if e.Event == "login-oidc" && strings.Contains(e.Result, substr) {
			out = append(out, e)
		}
	}
	return out
}

// TestOIDCLogin: a user bound to an identity signs in at the provider,
// which only replaces the password: the kluis account's second factor
// is still required, and the access log names the user and identity.
func TestOIDCLogin(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	u := f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
	fl := f.StartOIDC()
	if !strings.HasPrefix(fl.Begin.Redirect, f.IDP.Issuer+"/authorize?") || !strings.Contains(fl.Begin.Redirect, "code_challenge_method=S256") || !strings.Contains(fl.Begin.Redirect, "nonce=") {
		t.Fatalf("authorization URL: %s", fl.Begin.Redirect)
	}
	rep := f.FinishOIDC(fl)
	if rep.Status != 200 || rep.Ticket == "" || rep.Session != nil || strings.Join(rep.Factors, ",") != "totp" {
		t.Fatalf("oidc-finish: %s", portaltest.Status(rep))
	}
	// The provider's word is no session: a ticket is not a session token.
	if r := f.Do(portal.OpWhoami, portal.Call{Session: rep.Ticket}); r.Status != 401 {
		t.Fatalf("a ticket after the provider used as a session: %s", portaltest.Status(r))
	}
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: "000000"}); r.Status != 401 || r.Session != nil {
		t.Fatalf("wrong code after the provider: %s", portaltest.Status(r))
	}
	r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(u), Client: "test"})
	if r.Status != 200 || r.Session == nil || r.Session.User != "anna" {
		t.Fatalf("code after the provider: %s", portaltest.Status(r))
	}
	if ev := loggedOIDC(f, "ok: sub idp-anna"); len(ev) != 1 || ev[0].User != "anna" || ev[0].Client != "test" {
		t.Fatalf("the access log lacks the sign-in: %+v", f.Log.Events())
	}
	// Several audiences with kluis as the authorized party: accepted.
	f.IDP.Mutate(func(c map[string]any) {
		c["aud"] = []string{f.IDP.ClientID, "another-client"}
		c["azp"] = f.IDP.ClientID
	})
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 200 {
		t.Fatalf("several audiences, azp kluis: %s", portaltest.Status(r))
	}
	f.IDP.Mutate(nil)
	// A user bound to the provider has no password to fall back on.
	for _, pw := range []string{"", portaltest.Password} {
		if r := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: pw}); r.Status != 401 || r.Ticket != "" {
			t.Fatalf("password login of a provider user: %s", portaltest.Status(r))
		}
	}
	if len(f.Log.Refused("signs in at the identity provider")) != 2 {
		t.Fatalf("refused password logins not logged: %+v", f.Log.Events())
	}
	// Nor does the enrolment set one.
	tok, err := f.Store.Add(&portal.User{Name: "bert", Role: portal.RoleAuditor, OIDCSubject: "idp-bert"}, f.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	info := f.Do(portal.OpEnrolInfo, portal.Call{Token: tok})
	code := f.Code(&portaltest.User{Secret: info.Enrol.TOTPSecret})
	if r := f.Do(portal.OpEnrol, portal.Call{Token: tok, Password: portaltest.Password, Code: code}); r.Status != 400 {
		t.Fatalf("a password at a provider user's enrolment: %s", portaltest.Status(r))
	}
}

// TestOIDCRefused: every broken or hostile answer is refused, leaves no
// ticket and is logged with its reason.
func TestOIDCRefused(t *testing.T) {
	cases := []struct {
		name string
		// setup may change the provider; run returns the reply.
		run  func(f *portaltest.Fixture) portal.Reply
		want string
	}{
		{"wrong audience", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { c["aud"] = "another-client" })
			return f.FinishOIDC(f.StartOIDC())
		}, "audience"},
		{"several audiences, another authorized party", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) {
				c["aud"] = []string{"another-client", f.IDP.ClientID}
				c["azp"] = "another-client"
			})
			return f.FinishOIDC(f.StartOIDC())
		}, "authorized party"},
		{"several audiences, no authorized party", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { c["aud"] = []string{f.IDP.ClientID, "another-client"} })
			return f.FinishOIDC(f.StartOIDC())
		}, "authorized party"},
		{"wrong issuer", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { c["iss"] = "https://idp.attacker.example" })
			return f.FinishOIDC(f.StartOIDC())
		}, "issued by a different provider"},
		{"expired token", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { c["exp"] = f.Clock.Now().Add(-time.Minute).Unix() })
			return f.FinishOIDC(f.StartOIDC())
		}, "expired"},
		{"signed by a key the provider does not publish", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.SignWithForeignKey(true)
			return f.FinishOIDC(f.StartOIDC())
		}, "signature"},
		{"nonce of another sign-in", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { c["nonce"] = "a-nonce-from-another-sign-in" })
			return f.FinishOIDC(f.StartOIDC())
		}, "nonce"},
		{"no nonce", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.Mutate(func(c map[string]any) { delete(c, "nonce") })
			return f.FinishOIDC(f.StartOIDC())
		}, "nonce"},
		{"state replayed", func(f *portaltest.Fixture) portal.Reply {
			fl := f.StartOIDC()
			if r := f.FinishOIDC(fl); r.Status != 200 {
				t.Errorf("first use: %s", portaltest.Status(r))
			}
			return f.FinishOIDC(fl)
		}, "unknown, used or expired state"},
		{"state made up", func(f *portaltest.Fixture) portal.Reply {
			fl := f.StartOIDC()
			fl.State = "made-up"
			return f.FinishOIDC(fl)
		}, "unknown, used or expired state"},
		{"state started in another browser", func(f *portaltest.Fixture) portal.Reply {
			fl := f.StartOIDC()
			fl.Binding = f.StartOIDC().Binding
			return f.FinishOIDC(fl)
		}, "not started in this browser"},
		{"code of another sign-in (PKCE)", func(f *portaltest.Fixture) portal.Reply {
			victim, attacker := f.StartOIDC(), f.StartOIDC()
			attacker.Code = victim.Code
			return f.FinishOIDC(attacker)
		}, "provider refused the code (invalid_grant)"},
		{"expired sign-in", func(f *portaltest.Fixture) portal.Reply {
			fl := f.StartOIDC()
			f.Clock.Advance(11 * time.Minute)
			return f.FinishOIDC(fl)
		}, "unknown, used or expired state"},
		{"unknown subject", func(f *portaltest.Fixture) portal.Reply {
			f.IDP.SignIn(map[string]any{"sub": "idp-stranger"})
			return f.FinishOIDC(f.StartOIDC())
		}, "no kluis user is bound to sub idp-stranger"},
		{"no code", func(f *portaltest.Fixture) portal.Reply {
			fl := f.StartOIDC()
			fl.Code = ""
			return f.FinishOIDC(fl)
		}, "no code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := portaltest.NewOIDC(t, origin)
			f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
			f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
			rep := tc.run(f)
			if rep.Status != 401 || rep.Ticket != "" || rep.Session != nil {
				t.Fatalf("%s", portaltest.Status(rep))
			}
			if len(f.Log.Refused(tc.want)) == 0 {
				t.Fatalf("not logged as %q: %+v", tc.want, f.Log.Events())
			}
		})
	}
}

// TestOIDCUserBinding: the identity decides the account. One bound to
// anna gives anna's half login, which bert's code cannot finish; a
// disabled, locked or unenrolled account is refused; one identity
// cannot be bound to two accounts.
func TestOIDCUserBinding(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	bert := f.AddOIDCUser("bert", portal.RoleApprover, "idp-bert")
	f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
	fl := f.StartOIDC()
	rep := f.Do(portal.OpOIDCFinish, portal.Call{Code: fl.Code, State: fl.State, Binding: fl.Binding, User: "bert"})
	if rep.Status != 200 {
		t.Fatalf("%s", portaltest.Status(rep))
	}
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(bert), User: "bert"}); r.Status != 401 || r.Session != nil {
		t.Fatalf("anna's sign-in finished with bert's code: %s", portaltest.Status(r))
	}
	if _, err := f.Store.Add(&portal.User{Name: "carl", Role: portal.RoleAuditor, OIDCSubject: "IDP-anna"}, f.Clock.Now(), time.Hour); err == nil || !strings.Contains(err.Error(), "already bound to user anna") {
		t.Fatalf("an identity bound twice: %v", err)
	}
	// Disabled.
	f.Store.Update("anna", func(u *portal.User) error { u.Disabled = true; return nil })
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 401 || r.Ticket != "" {
		t.Fatalf("disabled: %s", portaltest.Status(r))
	}
	f.Store.Update("anna", func(u *portal.User) error {
		u.Disabled = false
		u.LockedUntil = f.Clock.Now().Add(time.Hour)
		return nil
	})
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != http.StatusTooManyRequests || r.Ticket != "" {
		t.Fatalf("locked: %s", portaltest.Status(r))
	}
	// Bound but not enrolled: no second factor, no half login.
	if _, err := f.Store.Add(&portal.User{Name: "dora", Role: portal.RoleAuditor, OIDCSubject: "idp-dora"}, f.Clock.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	f.IDP.SignIn(map[string]any{"sub": "idp-dora"})
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 401 || r.Ticket != "" {
		t.Fatalf("not enrolled: %s", portaltest.Status(r))
	}
	if len(loggedOIDC(f, "not enrolled")) != 1 || len(loggedOIDC(f, "disabled")) != 1 || len(loggedOIDC(f, "locked out")) != 1 {
		t.Fatalf("refusals not logged: %+v", f.Log.Events())
	}
}

// TestOIDCSecondFactorLockout: wrong codes after the provider count
// toward the account's lockout like after a password.
func TestOIDCSecondFactorLockout(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	u := f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	f.IDP.SignIn(map[string]any{"sub": "idp-anna"})
	for i := 0; i < 5; i++ {
		rep := f.FinishOIDC(f.StartOIDC())
		if rep.Status != 200 {
			t.Fatalf("sign-in %d: %s", i, portaltest.Status(rep))
		}
		f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: "123456"})
	}
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after 5 wrong codes: %s", portaltest.Status(r))
	}
	f.Clock.Advance(16 * time.Minute)
	rep := f.FinishOIDC(f.StartOIDC())
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(u)}); r.Status != 200 {
		t.Fatalf("after the lockout: %s", portaltest.Status(r))
	}
}

// TestOIDCClientRateLimit: an address that keeps failing is stopped
// before the provider is asked.
func TestOIDCClientRateLimit(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	for i := 0; i < 30; i++ {
		f.Do(portal.OpOIDCFinish, portal.Call{State: "guess", Binding: "x", Code: "y", Client: "203.0.113.9"})
	}
	if r := f.Do(portal.OpOIDCFinish, portal.Call{State: "guess", Code: "y", Client: "203.0.113.9"}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after 30 failures: %s", portaltest.Status(r))
	}
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "203.0.113.9"}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("begin after 30 failures: %s", portaltest.Status(r))
	}
	// Sign-ins begun and never finished: one address gets 16 at a time.
	for i := 0; i < 16; i++ {
		if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "203.0.113.10"}); r.Status != 200 {
			t.Fatalf("begin %d: %s", i, portaltest.Status(r))
		}
	}
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "203.0.113.10"}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("the 17th open sign-in: %s", portaltest.Status(r))
	}
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "203.0.113.11"}); r.Status != 200 {
		t.Fatalf("another address: %s", portaltest.Status(r))
	}
	f.Clock.Advance(11 * time.Minute)
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "203.0.113.10"}); r.Status != 200 {
		t.Fatalf("after the open sign-ins expired: %s", portaltest.Status(r))
	}
}

// TestOIDCFlowExhaustion: sign-ins begun and never finished from many
// addresses do not lock everyone out: when the store is full the oldest
// gives way. The addresses of one IPv6 /64 count as one client.
func TestOIDCFlowExhaustion(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	for i := 0; i < 300; i++ {
		for j := 0; j < 16; j++ {
			if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: fmt.Sprintf("10.%d.%d.1", i/256, i%256)}); r.Status != 200 {
				t.Fatalf("%d/%d: %s", i, j, portaltest.Status(r))
			}
		}
	}
	f.IDP.SignIn(map[string]any{"sub": "jos-at-idp"})
	f.AddOIDCUser("jos", portal.RoleApprover, "jos-at-idp")
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 200 {
		t.Fatalf("a sign-in after the flood: %s", portaltest.Status(r))
	}
	for i := 0; i < 16; i++ {
		if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: fmt.Sprintf("2001:db8:0:7::%x", i+1)}); r.Status != 200 {
			t.Fatalf("begin %d: %s", i, portaltest.Status(r))
		}
	}
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "2001:db8:0:7:ffff::1"}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("the 17th open sign-in of one /64: %s", portaltest.Status(r))
	}
	if r := f.Do(portal.OpOIDCBegin, portal.Call{Client: "2001:db8:0:8::1"}); r.Status != 200 {
		t.Fatalf("another /64: %s", portaltest.Status(r))
	}
}

// TestOIDCEmailClaim: with claim email, the address counts only when the
// provider verified it, and its case does not matter.
func TestOIDCEmailClaim(t *testing.T) {
	f := portaltest.NewOIDC(t, origin, func(w *config.Web) { w.OIDC.Claim = "email" })
	f.AddOIDCUser("anna", portal.RolePractice, "anna@praktijk.example", "a")
	f.IDP.SignIn(map[string]any{"sub": "x1", "email": "Anna@Praktijk.example", "email_verified": true})
	fl := f.StartOIDC()
	if !strings.Contains(fl.Begin.Redirect, "scope=openid+email") {
		t.Fatalf("scope: %s", fl.Begin.Redirect)
	}
	if r := f.FinishOIDC(fl); r.Status != 200 {
		t.Fatalf("verified address: %s", portaltest.Status(r))
	}
	for _, claims := range []map[string]any{
		{"sub": "x1", "email": "anna@praktijk.example", "email_verified": false},
		{"sub": "x1", "email": "anna@praktijk.example"},
		{"sub": "x1", "email": "anna@praktijk.example", "email_verified": "true"},
	} {
		f.IDP.SignIn(claims)
		if r := f.FinishOIDC(f.StartOIDC()); r.Status != 401 || r.Ticket != "" {
			t.Fatalf("%v: %s", claims, portaltest.Status(r))
		}
	}
	if len(f.Log.Refused("not verified")) != 3 {
		t.Fatalf("unverified addresses not logged: %+v", f.Log.Events())
	}
	// Only ASCII case is folded: a verified address that equals a bound
	// one under Unicode folding (long s U+017F for s, Kelvin sign U+212A
	// for k) is another address, not the bound user's.
	f.AddOIDCUser("jos", portal.RoleApprover, "jos@praktijk.example")
	f.AddOIDCUser("kim", portal.RoleApprover, "kim@praktijk.example")
	for _, email := range []string{"jo\u017f@praktijk.example", "\u212aim@praktijk.example", "JO\u017f@PRAKTIJK.EXAMPLE"} {
		f.IDP.SignIn(map[string]any{"sub": "attacker", "email": email, "email_verified": true})
		if r := f.FinishOIDC(f.StartOIDC()); r.Status == 200 || r.Ticket != "" {
			t.Fatalf("%q signed in as a bound user: %s", email, portaltest.Status(r))
		}
	}
	f.IDP.SignIn(map[string]any{"sub": "x2", "email": "KIM@praktijk.EXAMPLE", "email_verified": true})
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 200 {
		t.Fatalf("ASCII case: %s", portaltest.Status(r))
	}
}

// TestOIDCNoTokenFromTheWebProcess: the socket API takes no ID token: a
// compromised web process that injects one straight into the socket is
// refused before anything is read, and without web.oidc both
// operations are off.
func TestOIDCNoTokenFromTheWebProcess(t *testing.T) {
	f := portaltest.NewOIDC(t, origin)
	f.AddOIDCUser("anna", portal.RolePractice, "idp-anna", "a")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.Socket)
	}}}
	for _, field := range []string{"id_token", "subject", "user_claims"} {
		b, _ := json.Marshal(map[string]string{field: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJpZHAtYW5uYSJ9.", "state": "x"})
		resp, err := hc.Post("http://kluis/v1/"+portal.OpOIDCFinish, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var rep portal.Reply
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if rep.Status != 400 || rep.Ticket != "" {
			t.Fatalf("%s injected: %s", field, portaltest.Status(rep))
		}
	}
	g := portaltest.New(t, origin)
	for _, op := range []string{portal.OpOIDCBegin, portal.OpOIDCFinish} {
		if r := g.Do(op, portal.Call{State: "x"}); r.Status != 404 {
			t.Fatalf("%s without web.oidc: %s", op, portaltest.Status(r))
		}
	}
}
