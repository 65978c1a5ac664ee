package portal_test

import (
	"net"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/portaltest"
	"github.com/kluis-nl/kluis/portal"
)

// TestOIDCInteropMockoidc: the sign-in against a provider that kluis did
// not write (oauth2-proxy/mockoidc, with PKCE S256), so the daemon's
// client and internal/idptest cannot share a misreading of the protocol.
func TestOIDCInteropMockoidc(t *testing.T) {
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Tokens valid for two minutes (the fixture's clock runs ahead by its
	// TOTP steps): the last sign-in outlives its token but not its state
	// (ten minutes).
	m.AccessTTL = 2 * time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	c := m.Config()
	f := portaltest.NewOIDCAt(t, origin, config.OIDC{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecretFile: "(given directly)", Claim: "email"}, c.ClientSecret)
	// mockoidc stamps its tokens with the real time.
	f.Clock.Advance(time.Since(f.Clock.Now()))
	u := f.AddOIDCUser("anna", portal.RolePractice, "anna@praktijk.example", "a")
	m.QueueUser(&mockoidc.MockUser{Subject: "mock-anna", Email: "anna@praktijk.example", EmailVerified: true})
	rep := f.FinishOIDC(f.StartOIDC())
	if rep.Status != 200 || rep.Ticket == "" || rep.Session != nil {
		t.Fatalf("oidc-finish at mockoidc: %s", portaltest.Status(rep))
	}
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(u)}); r.Status != 200 || r.Session.User != "anna" {
		t.Fatalf("second factor: %s", portaltest.Status(r))
	}
	// An address mockoidc does not vouch for: refused.
	m.QueueUser(&mockoidc.MockUser{Subject: "mock-anna", Email: "anna@praktijk.example", EmailVerified: false})
	if r := f.FinishOIDC(f.StartOIDC()); r.Status != 401 || r.Ticket != "" {
		t.Fatalf("unverified address at mockoidc: %s", portaltest.Status(r))
	}
	// Tokens that expired at the provider's clock: refused.
	m.QueueUser(&mockoidc.MockUser{Subject: "mock-anna", Email: "anna@praktijk.example", EmailVerified: true})
	fl := f.StartOIDC()
	f.Clock.Advance(5 * time.Minute)
	if r := f.FinishOIDC(fl); r.Status != 401 || r.Ticket != "" {
		t.Fatalf("expired token at mockoidc: %s", portaltest.Status(r))
	}
	if len(f.Log.Refused("token is expired")) != 1 || len(f.Log.Refused("not verified")) != 1 {
		t.Fatalf("refusals: %+v", f.Log.Events())
	}
}
