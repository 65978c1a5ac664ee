package portal_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/portaltest"
	"github.com/kluis-nl/kluis/internal/softauthn"
	"github.com/kluis-nl/kluis/portal"
)

const origin = "https://kluis.example.test"

func TestLoginTOTP(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	s := f.Login(u)
	rep := f.Do(portal.OpWhoami, portal.Call{Session: s.Token})
	if rep.Status != 200 || rep.Session.User != "anna" || rep.Session.Role != portal.RolePractice || rep.Session.Token != "" {
		t.Fatalf("whoami: %s", portaltest.Status(rep))
	}
	// Wrong password, wrong code, a code used before: refused.
	if rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: "wrong password!"}); rep.Status != 401 || rep.Ticket != "" {
		t.Fatalf("wrong password: %s", portaltest.Status(rep))
	}
	rep = f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password})
	code := f.Code(u)
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: "000000"}); r.Status != 401 || r.Session != nil {
		t.Fatalf("wrong code: %s", portaltest.Status(r))
	}
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: code}); r.Status != 200 {
		t.Fatalf("right code: %s", portaltest.Status(r))
	}
	rep = f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password})
	if r := f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: code}); r.Status != 401 {
		t.Fatalf("a TOTP code accepted twice: %s", portaltest.Status(r))
	}
	// A password alone is no session; a ticket is not a session token.
	if r := f.Do(portal.OpWhoami, portal.Call{Session: rep.Ticket}); r.Status != 401 {
		t.Fatalf("ticket used as session: %s", portaltest.Status(r))
	}
	if len(f.Log.Refused("wrong or reused code")) != 2 {
		t.Fatalf("refused codes not logged: %+v", f.Log.Events())
	}
}

func TestLockout(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	for i := 0; i < 5; i++ {
		if rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: "guess" + string(rune('a'+i)) + "xxxxxxxxxx", Client: "198.51.100.7"}); rep.Status != 401 {
			t.Fatalf("guess %d: %s", i, portaltest.Status(rep))
		}
	}
	rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password})
	if rep.Status != http.StatusTooManyRequests || rep.Ticket != "" {
		t.Fatalf("the right password after 5 guesses: %s", portaltest.Status(rep))
	}
	var locked bool
	for _, e := range f.Log.Events() {
		locked = locked || e.Event == "lockout" && e.User == "anna"
	}
	if !locked {
		t.Fatal("lockout not logged")
	}
	f.Clock.Advance(16 * time.Minute)
	f.Login(u)
	// Wrong TOTP codes count too.
	for i := 0; i < 5; i++ {
		rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password})
		if rep.Status != 200 {
			t.Fatalf("login %d: %s", i, portaltest.Status(rep))
		}
		f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: "123456"})
	}
	if rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password}); rep.Status != http.StatusTooManyRequests {
		t.Fatalf("after 5 wrong codes: %s", portaltest.Status(rep))
	}
}

func TestClientRateLimit(t *testing.T) {
	f := portaltest.New(t, origin)
	for i := 0; i < 30; i++ {
		f.Do(portal.OpLogin, portal.Call{User: "nobody" + string(rune('a'+i%26)), Password: "x", Client: "203.0.113.9"})
	}
	if rep := f.Do(portal.OpLogin, portal.Call{User: "nobody", Password: "x", Client: "203.0.113.9"}); rep.Status != http.StatusTooManyRequests {
		t.Fatalf("31st attempt from one address: %s", portaltest.Status(rep))
	}
}

func TestSessionEnds(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	s := f.Login(u)
	f.Clock.Advance(14 * time.Minute)
	if rep := f.Do(portal.OpWhoami, portal.Call{Session: s.Token}); rep.Status != 200 {
		t.Fatalf("within idle timeout: %s", portaltest.Status(rep))
	}
	f.Clock.Advance(16 * time.Minute)
	if rep := f.Do(portal.OpWhoami, portal.Call{Session: s.Token}); rep.Status != 401 {
		t.Fatalf("after idle timeout: %s", portaltest.Status(rep))
	}
	// Expiry: active all the time, still ends after session_ttl.
	s = f.Login(u)
	for i := 0; i < 8*6; i++ {
		f.Clock.Advance(10 * time.Minute)
		f.Do(portal.OpWhoami, portal.Call{Session: s.Token})
	}
	if rep := f.Do(portal.OpWhoami, portal.Call{Session: s.Token}); rep.Status != 401 {
		t.Fatalf("after session_ttl: %s", portaltest.Status(rep))
	}
	// Disabling a user ends their sessions.
	s = f.Login(u)
	f.Store.Update("anna", func(u *portal.User) error { u.Disabled = true; return nil })
	if rep := f.Do(portal.OpWhoami, portal.Call{Session: s.Token}); rep.Status != 401 {
		t.Fatalf("disabled user: %s", portaltest.Status(rep))
	}
}

// TestSessionFixation: the session token is the daemon's, new at every
// login; one the browser had before is ended.
func TestSessionFixation(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	old := f.Login(u)
	rep := f.Do(portal.OpLogin, portal.Call{User: "anna", Password: portaltest.Password})
	rep = f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(u), Session: old.Token})
	if rep.Status != 200 || rep.Session.Token == old.Token || rep.Session.CSRF == old.CSRF {
		t.Fatalf("second login: %s", portaltest.Status(rep))
	}
	if r := f.Do(portal.OpWhoami, portal.Call{Session: old.Token}); r.Status != 401 {
		t.Fatalf("the session the browser had before login lives on: %s", portaltest.Status(r))
	}
	// A token the attacker chose is never adopted.
	if r := f.Do(portal.OpWhoami, portal.Call{Session: "attacker-chosen"}); r.Status != 401 {
		t.Fatal("unknown token accepted")
	}
}

func TestCSRFChecked(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("anna", portal.RolePractice, "a")
	s := f.Login(u)
	for _, csrf := range []string{"", "x", s.Token} {
		rep := f.Do(portal.OpDossierShow, portal.Call{Session: s.Token, CSRF: csrf, Tenant: "a", ID: "17"})
		if rep.Status != 403 || rep.Dossier != nil {
			t.Fatalf("csrf %q: %s", csrf, portaltest.Status(rep))
		}
	}
	if len(f.Backend.AccessLog()) != 0 {
		t.Fatal("the backend was reached without a CSRF token")
	}
	if len(f.Log.Refused("CSRF")) != 3 {
		t.Fatal("CSRF refusals not logged")
	}
	if rep := f.Do(portal.OpDossierShow, portal.Call{Session: s.Token, CSRF: s.CSRF, Tenant: "a", ID: "17"}); rep.Status != 200 {
		t.Fatalf("with the token: %s", portaltest.Status(rep))
	}
}

// release is a practice user of tenant a, an approver with a passkey and
// a pending release request.
type release struct {
	f            *portaltest.Fixture
	anna, bert   *portaltest.User
	annaS, bertS *portal.Session
	req          *portal.RequestView
}

func newRelease(t *testing.T, delivery string) *release {
	f := portaltest.New(t, origin)
	r := &release{f: f, anna: f.AddUser("anna", portal.RolePractice, "a"), bert: f.AddUser("bert", portal.RoleApprover)}
	r.annaS, r.bertS = f.Login(r.anna), f.Login(r.bert)
	f.AddPasskey(r.bertS, r.bert)
	r.req = r.request(t, delivery)
	return r
}

func (r *release) request(t *testing.T, delivery string) *portal.RequestView {
	rep := r.f.Do(portal.OpRequestCreate, portal.Call{Session: r.annaS.Token, CSRF: r.annaS.CSRF, Tenant: "a", Snapshot: "latest", ID: " 17 ", Reason: "client asked for their file", Delivery: delivery})
	if rep.Status != 200 || rep.Req.State != portal.StatePending || rep.Req.DossierID != "17" {
		t.Fatalf("request: %s", portaltest.Status(rep))
	}
	return rep.Req
}

func (r *release) download(token string) (portal.Reply, string) {
	var b strings.Builder
	rep, err := r.f.Client.Download(context.Background(), portal.Call{Session: r.annaS.Token, CSRF: r.annaS.CSRF, Request: r.req.ID, Token: token},
		func(string) io.Writer { return &b })
	if err != nil {
		panic(err)
	}
	return rep, b.String()
}

func TestFourEyesDownload(t *testing.T) {
	r := newRelease(t, portal.DeliverySQL)
	f := r.f
	// Before approval: no download.
	if rep, body := r.download("x"); rep.Status == 200 || body != "" {
		t.Fatalf("download before approval: %s", portaltest.Status(rep))
	}
	if rep := f.Approve(r.bertS, r.bert, r.req.ID); rep.Status != 200 {
		t.Fatalf("approve: %s", portaltest.Status(rep))
	}
	rep := f.Do(portal.OpRequest, portal.Call{Session: r.annaS.Token, Request: r.req.ID})
	if rep.Req.State != portal.StateApproved || rep.Req.Approver != "bert" || rep.Req.Download == "" {
		t.Fatalf("after approval: %s", portaltest.Status(rep))
	}
	tok := rep.Req.Download
	// The approver does not see the download link.
	if rb := f.Do(portal.OpRequest, portal.Call{Session: r.bertS.Token, Request: r.req.ID}); rb.Req.Download != "" {
		t.Fatal("the approver sees the download token")
	}
	if rep, _ := r.download("wrong"); rep.Status != http.StatusConflict {
		t.Fatalf("wrong token: %s", portaltest.Status(rep))
	}
	got, body := r.download(tok)
	if got.Status != 200 {
		t.Fatalf("download: %s", portaltest.Status(got))
	}
	acc := f.Backend.AccessLog()
	last := acc[len(acc)-1]
	if want := portaltest.Dossier(last, "sql"); body != want {
		t.Fatalf("downloaded %q, want %q", body, want)
	}
	if last.User != "anna" || last.Approver != "bert" || last.Request != r.req.ID || last.Action != "restore-sql" || last.Snapshot == "latest" {
		t.Fatalf("access record %+v", last)
	}
	// One time only.
	if rep, body := r.download(tok); rep.Status != http.StatusConflict || body != "" {
		t.Fatalf("second download: %s", portaltest.Status(rep))
	}
}

func TestFourEyesRestoreInto(t *testing.T) {
	r := newRelease(t, portal.DeliveryInto)
	f := r.f
	call := portal.Call{Session: r.annaS.Token, CSRF: r.annaS.CSRF, Request: r.req.ID}
	if rep := f.Do(portal.OpRestoreInto, call); rep.Status != http.StatusConflict {
		t.Fatalf("restore before approval: %s", portaltest.Status(rep))
	}
	if rep := f.Approve(r.bertS, r.bert, r.req.ID); rep.Status != 200 {
		t.Fatalf("approve: %s", portaltest.Status(rep))
	}
	if rep := f.Do(portal.OpRestoreInto, call); rep.Status != 200 {
		t.Fatalf("restore: %s", portaltest.Status(rep))
	}
	if rep := f.Do(portal.OpRestoreInto, call); rep.Status != http.StatusConflict {
		t.Fatalf("second restore: %s", portaltest.Status(rep))
	}
	if n := len(f.Backend.Into); n != 1 || f.Backend.Into[0].Approver != "bert" {
		t.Fatalf("restores %+v", f.Backend.Into)
	}
	// Tenant b has no live database configured: such a request is refused.
	rep := f.Do(portal.OpRequestCreate, portal.Call{Session: r.annaS.Token, CSRF: r.annaS.CSRF, Tenant: "a", ID: "1", Reason: "x", Delivery: "nonsense"})
	if rep.Status != 400 {
		t.Fatalf("bad delivery: %s", portaltest.Status(rep))
	}
}

func approveWith(f *portaltest.Fixture, s *portal.Session, id string, cred json.RawMessage) portal.Reply {
	f.Do(portal.OpApproveBegin, portal.Call{Session: s.Token, Request: id})
	return f.Do(portal.OpApproveFinish, portal.Call{Session: s.Token, CSRF: s.CSRF, Request: id, Credential: cred})
}

// TestApprovalAttacks: every four-eyes kind whose approval acts (a
// dossier release, an erasure override, a retention change) refuses a
// forged approval injected straight into the daemon's socket, the
// requester's own authenticator, a signature over another challenge or
// from another origin, a replayed and an expired approval; every
// refusal is logged with both identities.
func TestApprovalAttacks(t *testing.T) {
	for _, kind := range []string{portal.KindDossierRelease, portal.KindErasureOverride, portal.KindRetentionChange} {
		t.Run(kind, func(t *testing.T) {
			f := portaltest.New(t, origin)
			bert := f.AddUser("bert", portal.RoleApprover)
			bertS := f.Login(bert)
			f.AddPasskey(bertS, bert)
			var asker *portaltest.User
			var newReq func() string
			switch kind {
			case portal.KindRetentionChange:
				asker = f.AddUser("ada", portal.RoleAdmin)
				askerS := f.Login(asker)
				n := 0
				newReq = func() string {
					n++
					return retentionRequest(t, f, askerS, "a", portal.Retention{KeepLast: n}).ID
				}
			default:
				asker = f.AddUser("anna", portal.RolePractice, "a")
				askerS := f.Login(asker)
				if kind == portal.KindErasureOverride {
					f.Backend.Erase("a", "17", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
				}
				newReq = func() string {
					rep := f.Do(portal.OpRequestCreate, portal.Call{Session: askerS.Token, CSRF: askerS.CSRF, Tenant: "a", Snapshot: "latest", ID: "17", Reason: "lawful ground", Delivery: portal.DeliverySQL, Kind: kind})
					if rep.Status != 200 || rep.Req.Kind != kind {
						t.Fatalf("request: %s", portaltest.Status(rep))
					}
					return rep.Req.ID
				}
			}
			approvalAttacks(t, f, asker, bert, bertS, newReq)
		})
	}
}

func approvalAttacks(t *testing.T, f *portaltest.Fixture, asker, bert *portaltest.User, bertS *portal.Session, newReq func() string) {
	id := newReq()
	digest := func(id string) []byte {
		rep := f.Do(portal.OpRequest, portal.Call{Session: bertS.Token, Request: id})
		b, err := hexDecode(rep.Req.Digest)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rpID := "kluis.example.test"
	pending := func(id string) {
		t.Helper()
		rep := f.Do(portal.OpRequest, portal.Call{Session: bertS.Token, Request: id})
		if rep.Req.State != portal.StatePending {
			t.Fatalf("request is %s", rep.Req.State)
		}
	}
	acted := func() int { return len(f.Backend.Retentions) }
	before := acted()

	// 1. The web process compromised: it has bert's session token and
	// CSRF token, but not his authenticator. Its own key signs the
	// request's digest, for the right relying party and origin.
	forger := softauthn.New(origin)
	forger.Create(mustOptions(t, f, bertS)) // bert's options, but the daemon never registers this key
	forged, _ := forger.Sign(rpID, origin, digest(id))
	if rep := approveWith(f, bertS, id, forged); rep.Status != 403 {
		t.Fatalf("forged approval: %s", portaltest.Status(rep))
	}
	// Straight into the socket without begin, with garbage.
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: id, Credential: json.RawMessage(`{"id":"x"}`)}); rep.Status != 403 {
		t.Fatalf("garbage approval: %s", portaltest.Status(rep))
	}
	pending(id)

	// 2. The requester's own authenticator: she registers a passkey and
	// signs her own request; submitted in bert's session.
	askerS := f.Login(asker)
	f.AddPasskey(askerS, asker)
	own, _ := asker.Auth.Sign(rpID, origin, digest(id))
	if rep := approveWith(f, bertS, id, own); rep.Status != 403 {
		t.Fatalf("approval by the requester's authenticator in the approver's session: %s", portaltest.Status(rep))
	}
	// In her own session.
	if rep := approveWith(f, askerS, id, own); rep.Status == 200 {
		t.Fatalf("requester approved her own request: %s", portaltest.Status(rep))
	}
	if rep := f.Do(portal.OpRequest, portal.Call{Session: askerS.Token, Request: id}); rep.Req.CanApprove {
		t.Fatal("the requester is told she may approve")
	}
	pending(id)

	// 3. A signature by bert's authenticator over another challenge (an
	// older request, or anything the web process made up).
	other, _ := bert.Auth.Sign(rpID, origin, []byte("some other challenge, 32 bytes.."))
	if rep := approveWith(f, bertS, id, other); rep.Status != 403 {
		t.Fatalf("approval over another challenge: %s", portaltest.Status(rep))
	}
	// For another origin (a phishing site) or relying party.
	phish, _ := bert.Auth.Sign(rpID, "https://kluis.example.evil", digest(id))
	if rep := approveWith(f, bertS, id, phish); rep.Status != 403 {
		t.Fatalf("approval from another origin: %s", portaltest.Status(rep))
	}
	pending(id)
	if acted() != before {
		t.Fatal("a refused approval changed the retention")
	}

	// 4. The real approval, then its replay on the same and on another
	// request.
	// The bare digest is no longer the challenge: each attempt has its
	// own nonce (approve-begin), so a signature over the digest alone
	// does not verify.
	bare, _ := bert.Auth.Sign(rpID, origin, digest(id))
	if rep := approveWith(f, bertS, id, bare); rep.Status != 403 {
		t.Fatalf("approval over the digest without the attempt's nonce: %s", portaltest.Status(rep))
	}
	pending(id)
	good, err := bert.Auth.Get(f.Do(portal.OpApproveBegin, portal.Call{Session: bertS.Token, Request: id}).Options)
	if err != nil {
		t.Fatal(err)
	}
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: id, Credential: good}); rep.Status != 200 {
		t.Fatalf("real approval: %s", portaltest.Status(rep))
	}
	if rep := approveWith(f, bertS, id, good); rep.Status != http.StatusConflict {
		t.Fatalf("replayed on the same request: %s", portaltest.Status(rep))
	}
	second := newReq()
	if rep := approveWith(f, bertS, second, good); rep.Status != 403 {
		t.Fatalf("replayed on another request: %s", portaltest.Status(rep))
	}
	pending(second)

	// 5. Expired.
	f.Clock.Advance(25 * time.Hour)
	late := f.Login(bert)
	if rep := f.Approve(late, bert, second); rep.Status != http.StatusConflict {
		t.Fatalf("expired request approved: %s", portaltest.Status(rep))
	}

	// Every refusal is in the portal log with both identities.
	refused := f.Log.Refused("")
	var forgedLogged, ownLogged, expiredLogged bool
	for _, e := range refused {
		if e.Event == "approve" && e.Approver == "bert" && e.User == asker.Name && strings.Contains(e.Result, "does not verify") {
			forgedLogged = true
		}
		if strings.Contains(e.Result, "does not approve") || strings.Contains(e.Result, "own request") {
			ownLogged = true
		}
		if strings.Contains(e.Result, "expired") {
			expiredLogged = true
		}
	}
	if !forgedLogged || !ownLogged || !expiredLogged {
		t.Fatalf("refusals not logged (forged %v, own %v, expired %v): %+v", forgedLogged, ownLogged, expiredLogged, refused)
	}
}

// TestRequesterCannotApprove: an admin's user reset needs another admin.
func TestRequesterCannotApprove(t *testing.T) {
	f := portaltest.New(t, origin)
	ada, bob := f.AddUser("ada", portal.RoleAdmin), f.AddUser("bob", portal.RoleAdmin)
	f.AddUser("anna", portal.RolePractice, "a")
	adaS, bobS := f.Login(ada), f.Login(bob)
	f.AddPasskey(adaS, ada)
	f.AddPasskey(bobS, bob)
	rep := f.Do(portal.OpUserResetRequest, portal.Call{Session: adaS.Token, CSRF: adaS.CSRF, User: "anna", Reason: "lost phone"})
	if rep.Status != 200 {
		t.Fatalf("reset request: %s", portaltest.Status(rep))
	}
	id := rep.Req.ID
	if rep := f.Approve(adaS, ada, id); rep.Status != 403 {
		t.Fatalf("requester approved: %s", portaltest.Status(rep))
	}
	if rep := f.Approve(bobS, bob, id); rep.Status != 200 {
		t.Fatalf("second admin: %s", portaltest.Status(rep))
	}
	u, _ := f.Store.Get("anna")
	if u.Password != "" || u.EnrolHash == "" {
		t.Fatal("reset not done")
	}
	rep = f.Do(portal.OpRequest, portal.Call{Session: adaS.Token, Request: id})
	if !strings.HasPrefix(rep.Req.Result, "enrolment token: ") {
		t.Fatalf("requester does not get the new link: %+v", rep.Req)
	}
}

func TestPasskeyLogin(t *testing.T) {
	f := portaltest.New(t, origin)
	u := f.AddUser("bert", portal.RoleApprover)
	f.AddPasskey(f.Login(u), u)
	rep := f.Do(portal.OpLogin, portal.Call{User: "bert", Password: portaltest.Password})
	if rep.Status != 200 || !strings.Contains(strings.Join(rep.Factors, ","), "passkey") {
		t.Fatalf("login: %s", portaltest.Status(rep))
	}
	ticket := rep.Ticket
	// Another authenticator's assertion is refused.
	other := softauthn.New(origin)
	rep = f.Do(portal.OpLoginPasskeyBegin, portal.Call{Ticket: ticket})
	forged, _ := other.Sign("kluis.example.test", origin, []byte("challenge"))
	if r := f.Do(portal.OpLoginPasskeyFinish, portal.Call{Ticket: ticket, Credential: forged}); r.Status != 401 {
		t.Fatalf("forged passkey login: %s", portaltest.Status(r))
	}
	rep = f.Do(portal.OpLoginPasskeyBegin, portal.Call{Ticket: ticket})
	a, err := u.Auth.Get(rep.Options)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Do(portal.OpLoginPasskeyFinish, portal.Call{Ticket: ticket, Credential: a})
	if r.Status != 200 || r.Session.Token == "" {
		t.Fatalf("passkey login: %s", portaltest.Status(r))
	}
	// The passkey alone (no password) is no login: a ticket is needed.
	rep = f.Do(portal.OpLoginPasskeyBegin, portal.Call{Ticket: "made-up"})
	if rep.Status != 401 {
		t.Fatalf("passkey without password: %s", portaltest.Status(rep))
	}
}

// TestIsolation: a practice user of tenant a reaches nothing of b; an
// auditor no dossier; without a session, nothing.
func TestIsolation(t *testing.T) {
	f := portaltest.New(t, origin)
	anna := f.AddUser("anna", portal.RolePractice, "a")
	bea := f.AddUser("bea", portal.RolePractice, "b")
	aud := f.AddUser("audrey", portal.RoleAuditor, "a")
	vera := f.AddUser("vera", portal.RoleApprover)
	annaS, beaS, audS, veraS := f.Login(anna), f.Login(bea), f.Login(aud), f.Login(vera)
	f.Backend.Erase("b", "6", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	f.Backend.Erase("a", "6", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	// bea's request in tenant b.
	rep := f.Do(portal.OpRequestCreate, portal.Call{Session: beaS.Token, CSRF: beaS.CSRF, Tenant: "b", ID: "5", Reason: "r", Delivery: "sql"})
	if rep.Status != 200 {
		t.Fatal(portaltest.Status(rep))
	}
	bReq := rep.Req.ID
	before := len(f.Backend.AccessLog())
	type tc struct {
		who  *portal.Session
		op   string
		call portal.Call
	}
	cases := []tc{
		{annaS, portal.OpSnapshots, portal.Call{Tenant: "b"}},
		{annaS, portal.OpDossierShow, portal.Call{Tenant: "b", ID: "5"}},
		{annaS, portal.OpRequestCreate, portal.Call{Tenant: "b", ID: "5", Reason: "r", Delivery: "sql"}},
		{annaS, portal.OpRequest, portal.Call{Request: bReq}},
		{annaS, portal.OpReject, portal.Call{Request: bReq}},
		{annaS, portal.OpApproveBegin, portal.Call{Request: bReq}},
		{annaS, portal.OpRestoreInto, portal.Call{Request: bReq}},
		{annaS, portal.OpEvidence, portal.Call{}},
		{annaS, portal.OpUsers, portal.Call{}},
		{annaS, portal.OpUserResetRequest, portal.Call{User: "bea", Reason: "r"}},
		{annaS, portal.OpRequestCreate, portal.Call{Tenant: "b", ID: "6", Reason: "r", Delivery: "sql", Kind: portal.KindErasureOverride}},
		{annaS, portal.OpDossierShow, portal.Call{Tenant: "b", ID: "6"}},
		{annaS, portal.OpRetention, portal.Call{}},
		{annaS, portal.OpRetentionRequest, portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepLast: 1}}},
		{annaS, portal.OpSnapshots, portal.Call{Tenant: "../b"}},
		{annaS, portal.OpSnapshots, portal.Call{Tenant: ""}},
		{audS, portal.OpSnapshots, portal.Call{Tenant: "a"}},
		{audS, portal.OpDossierShow, portal.Call{Tenant: "a", ID: "5"}},
		{audS, portal.OpRequestCreate, portal.Call{Tenant: "a", ID: "5", Reason: "r", Delivery: "sql"}},
		{audS, portal.OpRequest, portal.Call{Request: bReq}},
		{audS, portal.OpEvidence, portal.Call{Tenant: "b"}},
		{audS, portal.OpUsers, portal.Call{}},
		{audS, portal.OpRetention, portal.Call{}},
		{audS, portal.OpRetentionRequest, portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepLast: 1}}},
		{audS, portal.OpRequestCreate, portal.Call{Tenant: "a", ID: "6", Reason: "r", Delivery: "sql", Kind: portal.KindErasureOverride}},
		{veraS, portal.OpRetentionRequest, portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepLast: 1}}},
		{veraS, portal.OpRequestCreate, portal.Call{Tenant: "a", ID: "6", Reason: "r", Delivery: "sql", Kind: portal.KindErasureOverride}},
		{veraS, portal.OpDossierShow, portal.Call{Tenant: "a", ID: "6"}},
		{nil, portal.OpRetention, portal.Call{}},
		{nil, portal.OpRetentionRequest, portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepLast: 1}}},
		{nil, portal.OpTenants, portal.Call{}},
		{nil, portal.OpSnapshots, portal.Call{Tenant: "a"}},
		{nil, portal.OpDossierShow, portal.Call{Tenant: "a", ID: "5"}},
		{nil, portal.OpRequests, portal.Call{}},
		{nil, portal.OpEvidence, portal.Call{}},
	}
	for _, c := range cases {
		call := c.call
		who := "nobody"
		if c.who != nil {
			call.Session, call.CSRF, who = c.who.Token, c.who.CSRF, c.who.User
		}
		rep := f.Do(c.op, call)
		if rep.Status < 400 || rep.Snapshots != nil || rep.Dossier != nil || rep.Req != nil || rep.Evidence != nil || rep.Users != nil || rep.Options != nil || rep.Retention != nil {
			t.Errorf("%s %s %+v: %s", who, c.op, c.call, portaltest.Status(rep))
		}
	}
	// Lists show only what is theirs.
	if rep := f.Do(portal.OpRequests, portal.Call{Session: annaS.Token}); len(rep.Requests) != 0 {
		t.Errorf("anna sees requests %+v", rep.Requests)
	}
	if rep := f.Do(portal.OpTenants, portal.Call{Session: annaS.Token}); strings.Join(rep.Tenants, ",") != "a" {
		t.Errorf("anna's tenants %v", rep.Tenants)
	}
	if rep := f.Do(portal.OpEvidence, portal.Call{Session: audS.Token}); rep.Status != 200 || strings.Join(rep.Evidence.Tenants, ",") != "a" {
		t.Errorf("auditor's evidence: %s", portaltest.Status(rep))
	}
	if n := len(f.Backend.AccessLog()); n != before {
		t.Errorf("the backend was reached %d times by refused calls", n-before)
	}
	if len(f.Backend.Retentions) != 0 {
		t.Errorf("a refused call changed the retention")
	}
	if rep := f.Do(portal.OpRequest, portal.Call{Session: beaS.Token, Request: bReq}); rep.Status != 200 {
		t.Errorf("bea's own request: %s", portaltest.Status(rep))
	}
}

func mustOptions(t *testing.T, f *portaltest.Fixture, s *portal.Session) []byte {
	rep := f.Do(portal.OpPasskeyAddBegin, portal.Call{Session: s.Token})
	if rep.Status != 200 {
		t.Fatal(portaltest.Status(rep))
	}
	return rep.Options
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

// TestEvidenceExport: the export holds every report of the period, so
// only an auditor of every tenant and an admin receive it.
func TestEvidenceExport(t *testing.T) {
	f := portaltest.New(t, origin)
	all := f.Login(f.AddUser("audrey", portal.RoleAuditor))
	scoped := f.Login(f.AddUser("aaron", portal.RoleAuditor, "a"))
	anna := f.Login(f.AddUser("anna", portal.RolePractice, "a"))
	export := func(s *portal.Session, tenant string) (portal.Reply, string) {
		var b strings.Builder
		rep, err := f.Client.Stream(context.Background(), portal.OpEvidenceExport, portal.Call{Session: s.Token, Tenant: tenant, From: "2026-11-01", To: "2026-11-30"}, func(string) io.Writer { return &b })
		if err != nil {
			t.Fatal(err)
		}
		return rep, b.String()
	}
	rep, body := export(all, "b")
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if rep.Status != 200 || body != portaltest.Export("b", from, to) {
		t.Fatalf("auditor of all tenants: %s %q", portaltest.Status(rep), body)
	}
	for _, s := range []*portal.Session{scoped, anna} {
		if rep, body := export(s, "a"); rep.Status != 403 || body != "" {
			t.Errorf("%s: %s", s.User, portaltest.Status(rep))
		}
	}
	if rep, _ := export(all, "nonexistent"); rep.Status != 404 {
		t.Errorf("unknown tenant: %s", portaltest.Status(rep))
	}
}

// TestRequestShowsDaemonCounts: the approver sees the dossier's counts
// as the daemon counted them at request time, inside the signed core.
func TestRequestShowsDaemonCounts(t *testing.T) {
	r := newRelease(t, portal.DeliverySQL)
	rep := r.f.Do(portal.OpRequest, portal.Call{Session: r.bertS.Token, Request: r.req.ID})
	v := rep.Req
	if rep.Status != 200 || v.Rows != 3 || len(v.Tables) != 2 || v.Tables[1].Table != "notes" || v.Tables[1].Rows != 2 || v.Taken.IsZero() {
		t.Fatalf("approver's view: %s %+v", portaltest.Status(rep), v)
	}
	if v.Requester != "anna" || v.Reason != "client asked for their file" || v.Tenant != "a" {
		t.Fatalf("approver's view: %+v", v)
	}
}

func retentionRequest(t *testing.T, f *portaltest.Fixture, s *portal.Session, tenant string, r portal.Retention) *portal.RequestView {
	t.Helper()
	rep := f.Do(portal.OpRetentionRequest, portal.Call{Session: s.Token, CSRF: s.CSRF, Tenant: tenant, Retention: &r, Reason: "contract changed"})
	if rep.Status != 200 || rep.Req.Kind != portal.KindRetentionChange || rep.Req.State != portal.StatePending {
		t.Fatalf("retention request: %s", portaltest.Status(rep))
	}
	return rep.Req
}

// TestErasureOverride: an erased dossier is neither shown nor released;
// an erasure-override request, approved by another person with their
// passkey, releases it once as a download, with the lawful ground and
// both identities in the access record.
func TestErasureOverride(t *testing.T) {
	r := newRelease(t, portal.DeliverySQL) // a pending release of 17
	f := r.f
	erasedAt := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	f.Backend.Erase("a", "42", erasedAt)
	call := func(op string, c portal.Call) portal.Reply {
		c.Session, c.CSRF = r.annaS.Token, r.annaS.CSRF
		return f.Do(op, c)
	}
	show := call(portal.OpDossierShow, portal.Call{Tenant: "a", ID: " 42", Snapshot: "latest"})
	if show.Status != http.StatusConflict || show.Dossier == nil || !show.Dossier.Erased || show.Dossier.ErasedOn != "2026-06-01" || len(show.Dossier.Tables) != 0 || show.Dossier.Rows != 0 {
		t.Fatalf("show of an erased dossier: %s", portaltest.Status(show))
	}
	// A release of it is refused; so is an override of a dossier that is
	// not erased, an override into the live database, and one without a
	// lawful ground.
	for _, c := range []portal.Call{
		{Tenant: "a", ID: "42", Reason: "r", Delivery: portal.DeliverySQL},
		{Tenant: "a", ID: "42", Reason: "r", Delivery: portal.DeliverySQL, Kind: portal.KindDossierRelease},
		{Tenant: "a", ID: "43", Reason: "r", Delivery: portal.DeliverySQL, Kind: portal.KindErasureOverride},
		{Tenant: "a", ID: "42", Reason: "r", Delivery: portal.DeliveryInto, Kind: portal.KindErasureOverride},
		{Tenant: "a", ID: "42", Reason: " ", Delivery: portal.DeliverySQL, Kind: portal.KindErasureOverride},
		{Tenant: "a", ID: "42", Reason: "r", Delivery: portal.DeliverySQL, Kind: portal.KindUserReset},
	} {
		if rep := call(portal.OpRequestCreate, c); rep.Status != 400 || rep.Req != nil {
			t.Errorf("%+v: %s", c, portaltest.Status(rep))
		}
	}
	rep := call(portal.OpRequestCreate, portal.Call{Tenant: "a", ID: "42", Snapshot: "latest", Reason: "court order 2026/123", Delivery: portal.DeliveryJSON, Kind: portal.KindErasureOverride})
	if rep.Status != 200 || rep.Req.Kind != portal.KindErasureOverride || rep.Req.ErasedOn != "2026-06-01" || rep.Req.Rows != 0 || len(rep.Req.Tables) != 0 {
		t.Fatalf("override request: %s", portaltest.Status(rep))
	}
	id := rep.Req.ID
	// The approver sees it, with the erasure date, and may approve it.
	if v := f.Do(portal.OpRequest, portal.Call{Session: r.bertS.Token, Request: id}).Req; v == nil || !v.CanApprove || v.ErasedOn != "2026-06-01" || v.Reason != "court order 2026/123" {
		t.Fatalf("approver's view %+v", v)
	}
	// Before the approval: nothing.
	dl := func(tok string) (portal.Reply, string) {
		var b strings.Builder
		rep, err := f.Client.Download(context.Background(), portal.Call{Session: r.annaS.Token, CSRF: r.annaS.CSRF, Request: id, Token: tok}, func(string) io.Writer { return &b })
		if err != nil {
			t.Fatal(err)
		}
		return rep, b.String()
	}
	if rep, body := dl("x"); rep.Status == 200 || body != "" {
		t.Fatalf("download before approval: %s", portaltest.Status(rep))
	}
	if rep := f.Approve(r.bertS, r.bert, id); rep.Status != 200 {
		t.Fatalf("approve: %s", portaltest.Status(rep))
	}
	tok := call(portal.OpRequest, portal.Call{Request: id}).Req.Download
	if tok == "" {
		t.Fatal("no download after approval")
	}
	got, body := dl(tok)
	acc := f.Backend.AccessLog()
	last := acc[len(acc)-1]
	if got.Status != 200 || body != portaltest.Dossier(last, "json") {
		t.Fatalf("download: %s %q", portaltest.Status(got), body)
	}
	if last.User != "anna" || last.Approver != "bert" || last.Request != id || !strings.Contains(last.Override, "court order 2026/123") || !strings.Contains(last.Override, "bert") {
		t.Fatalf("access record %+v", last)
	}
	if rep, body := dl(tok); rep.Status != http.StatusConflict || body != "" {
		t.Fatalf("second download: %s", portaltest.Status(rep))
	}
	// A release approved before the dossier was erased is not delivered
	// after: the erasure holds without an override.
	if rep := f.Approve(r.bertS, r.bert, r.req.ID); rep.Status != 200 {
		t.Fatalf("approve the release: %s", portaltest.Status(rep))
	}
	f.Backend.Erase("a", "17", f.Clock.Now())
	rel := call(portal.OpRequest, portal.Call{Request: r.req.ID}).Req
	if rep, body := r.download(rel.Download); rep.Status == 200 || body != "" {
		t.Fatalf("release of a dossier erased after approval: %s %q", portaltest.Status(rep), body)
	}
	if last := f.Backend.AccessLog(); last[len(last)-1].Override != "" {
		t.Fatalf("a release carried an override: %+v", last[len(last)-1])
	}
}

// TestRetentionChange: an admin asks, an approver approves with their
// passkey; the daemon states the old and new retention and what it
// forgets in the signed request, records the change with both
// identities, and refuses an approval of a request whose starting point
// changed meanwhile.
func TestRetentionChange(t *testing.T) {
	f := portaltest.New(t, origin)
	ada, bob, bert := f.AddUser("ada", portal.RoleAdmin), f.AddUser("bob", portal.RoleAdmin), f.AddUser("bert", portal.RoleApprover)
	adaS, bobS, bertS := f.Login(ada), f.Login(bob), f.Login(bert)
	f.AddPasskey(bertS, bert)
	f.AddPasskey(adaS, ada)
	for _, c := range []struct {
		call   portal.Call
		status int
	}{
		{portal.Call{Tenant: "a", Retention: &portal.Retention{KeepLast: 1}}, 400},                              // no reason
		{portal.Call{Tenant: "a", Reason: "r"}, 400},                                                            // nothing asked
		{portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepLast: 1}, ToPolicy: true}, 400}, // both
		{portal.Call{Tenant: "a", Reason: "r", Retention: &portal.Retention{KeepDaily: -1}}, 400},
		{portal.Call{Tenant: "a", Reason: "r", Retention: &portaltest.Policy}, 400}, // no change
		{portal.Call{Tenant: "a", Reason: "r", ToPolicy: true}, 400},                // already policy
		{portal.Call{Tenant: "c", Reason: "r", Retention: &portal.Retention{KeepLast: 1}}, 404},
	} {
		c.call.Session, c.call.CSRF = adaS.Token, adaS.CSRF
		if rep := f.Do(portal.OpRetentionRequest, c.call); rep.Status != c.status {
			t.Errorf("%+v: %s, want %d", c.call, portaltest.Status(rep), c.status)
		}
	}
	req := retentionRequest(t, f, adaS, "a", portal.Retention{KeepLast: 1})
	if *req.RetentionFrom != portaltest.Policy || *req.RetentionTo != (portal.Retention{KeepLast: 1}) || !req.Shortens || req.Forgets != 1 || req.Tenant != "a" {
		t.Fatalf("request %+v", req)
	}
	// bob asks too; his is approved first, so ada's no longer starts
	// from the retention in force.
	bobReq := retentionRequest(t, f, bobS, "a", portal.Retention{KeepDaily: 30, KeepWeekly: 8, KeepMonthly: 12})
	if bobReq.Shortens {
		t.Fatalf("a longer retention marked shorter: %+v", bobReq)
	}
	if rep := f.Approve(adaS, ada, req.ID); rep.Status != 403 {
		t.Fatalf("requester approved: %s", portaltest.Status(rep))
	}
	if rep := f.Approve(bertS, bert, bobReq.ID); rep.Status != 200 {
		t.Fatalf("approve: %s", portaltest.Status(rep))
	}
	if n := len(f.Backend.Retentions); n != 1 {
		t.Fatalf("%d retention changes", n)
	}
	got := f.Backend.Retentions[0]
	if got.Tenant != "a" || got.Requester != "bob" || got.Approver != "bert" || got.Request != bobReq.ID || got.Digest != bobReq.Digest || *got.Retention != (portal.Retention{KeepDaily: 30, KeepWeekly: 8, KeepMonthly: 12}) {
		t.Fatalf("recorded %+v", got)
	}
	if v := f.Do(portal.OpRequest, portal.Call{Session: bobS.Token, Request: bobReq.ID}).Req; v.State != portal.StateUsed || !strings.Contains(v.Result, "keep_daily 30") {
		t.Fatalf("bob's request after approval: %+v", v)
	}
	if rep := f.Approve(bertS, bert, req.ID); rep.Status != http.StatusConflict || !strings.Contains(rep.Error, "changed since") {
		t.Fatalf("approval of a stale request: %s", portaltest.Status(rep))
	}
	if len(f.Backend.Retentions) != 1 || len(f.Log.Refused("changed since")) != 1 {
		t.Fatal("the stale approval acted, or is not logged")
	}
	// The list shows the source; back to policy is a request too.
	rep := f.Do(portal.OpRetention, portal.Call{Session: bertS.Token})
	if rep.Status != 200 || len(rep.Retention) != 2 || rep.Retention[0].Request != bobReq.ID || rep.Retention[0].Approver != "bert" || rep.Retention[1].Source != portal.SourcePolicy {
		t.Fatalf("retention list: %s", portaltest.Status(rep))
	}
	back := f.Do(portal.OpRetentionRequest, portal.Call{Session: adaS.Token, CSRF: adaS.CSRF, Tenant: "a", ToPolicy: true, Reason: "contract ended"})
	if back.Status != 200 || !back.Req.ToPolicy || *back.Req.RetentionTo != portaltest.Policy || !back.Req.Shortens {
		t.Fatalf("back to policy: %s", portaltest.Status(back))
	}
	if rep := f.Approve(bobS, bob, back.Req.ID); rep.Status != 403 {
		t.Fatalf("bob has no passkey but approved: %s", portaltest.Status(rep))
	}
	// policy.retention changed by a config reload: back to policy is no
	// longer what the approver would sign.
	f.Backend.SetPolicy(portal.Retention{KeepLast: 3})
	if rep := f.Approve(bertS, bert, back.Req.ID); rep.Status != http.StatusConflict {
		t.Fatalf("approval of back to a policy that changed: %s", portaltest.Status(rep))
	}
	f.Backend.SetPolicy(portaltest.Policy)
	if rep := f.Approve(bertS, bert, back.Req.ID); rep.Status != 200 {
		t.Fatalf("approve back to policy: %s", portaltest.Status(rep))
	}
	if last := f.Backend.Retentions[len(f.Backend.Retentions)-1]; last.Retention != nil || last.Requester != "ada" {
		t.Fatalf("back to policy recorded as %+v", last)
	}
	var logged bool
	for _, e := range f.Log.Events() {
		logged = logged || e.Event == "retention-change" && e.User == "ada" && e.Approver == "bert" && e.Tenant == "a" && e.Result == "ok"
	}
	if !logged {
		t.Fatal("the retention change is not in the portal log with both identities")
	}
}

// TestRefusedApprovalReplay: an approval the daemon refused after the
// signature (here: the tenant's retention changed since the request)
// cannot be sent again later, when the refusal no longer holds, with a
// synced passkey whose sign counter is always 0: every attempt has its
// own single-use challenge (approve-begin), approve-finish without one
// is refused, and the stale check runs before the signature is
// verified, in approve-begin too.
func TestRefusedApprovalReplay(t *testing.T) {
	f := portaltest.New(t, origin)
	ada, bob, bert := f.AddUser("ada", portal.RoleAdmin), f.AddUser("bob", portal.RoleAdmin), f.AddUser("bert", portal.RoleApprover)
	adaS, bobS, bertS := f.Login(ada), f.Login(bob), f.Login(bert)
	bert.Auth = softauthn.New(f.Origin)
	bert.Auth.ZeroCount = true
	f.AddPasskey(bertS, bert)
	evil := retentionRequest(t, f, adaS, "a", portal.Retention{KeepLast: 1})
	other := retentionRequest(t, f, bobS, "a", portal.Retention{KeepDaily: 30, KeepWeekly: 8, KeepMonthly: 12})
	// bert opens an approval of evil, then other is approved first.
	b := f.Do(portal.OpApproveBegin, portal.Call{Session: bertS.Token, Request: evil.ID})
	if b.Status != 200 {
		t.Fatalf("approve-begin: %s", portaltest.Status(b))
	}
	a, err := bert.Auth.Get(b.Options)
	if err != nil {
		t.Fatal(err)
	}
	if rep := f.Approve(bertS, bert, other.ID); rep.Status != 200 {
		t.Fatalf("approve other: %s", portaltest.Status(rep))
	}
	// Stale now: approve-begin refuses, approve-finish refuses (before
	// verifying the signature) and uses up the attempt.
	if rep := f.Do(portal.OpApproveBegin, portal.Call{Session: bertS.Token, Request: evil.ID}); rep.Status != http.StatusConflict {
		t.Fatalf("approve-begin of a stale request: %s", portaltest.Status(rep))
	}
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: evil.ID, Credential: a}); rep.Status != http.StatusConflict {
		t.Fatalf("approve-finish of a stale request: %s", portaltest.Status(rep))
	}
	// The retention goes back to what evil was asked against.
	back := f.Do(portal.OpRetentionRequest, portal.Call{Session: bobS.Token, CSRF: bobS.CSRF, Tenant: "a", ToPolicy: true, Reason: "back"})
	if rep := f.Approve(bertS, bert, back.Req.ID); rep.Status != 200 {
		t.Fatalf("back to policy: %s", portaltest.Status(rep))
	}
	n := len(f.Backend.Retentions)
	// Replayed without approve-begin, and after a fresh approve-begin
	// (another nonce): both refused, evil stays pending.
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: evil.ID, Credential: a}); rep.Status != http.StatusForbidden {
		t.Fatalf("replay without approve-begin: %s", portaltest.Status(rep))
	}
	if rep := approveWith(f, bertS, evil.ID, a); rep.Status != http.StatusForbidden {
		t.Fatalf("replay after a new approve-begin: %s", portaltest.Status(rep))
	}
	if len(f.Backend.Retentions) != n {
		t.Fatalf("a replayed approval changed the retention: %+v", f.Backend.Retentions[n:])
	}
	if rep := f.Do(portal.OpRequest, portal.Call{Session: bertS.Token, Request: evil.ID}); rep.Req.State != portal.StatePending {
		t.Fatalf("request is %s", rep.Req.State)
	}
	// An attempt is used once, by whatever finish comes first: a garbage
	// finish uses it up, the real assertion after it is refused.
	b = f.Do(portal.OpApproveBegin, portal.Call{Session: bertS.Token, Request: evil.ID})
	a2, err := bert.Auth.Get(b.Options)
	if err != nil {
		t.Fatal(err)
	}
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: evil.ID, Credential: json.RawMessage(`{"id":"x"}`)}); rep.Status != http.StatusForbidden {
		t.Fatalf("garbage finish: %s", portaltest.Status(rep))
	}
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: evil.ID, Credential: a2}); rep.Status != http.StatusForbidden {
		t.Fatalf("second finish of one attempt: %s", portaltest.Status(rep))
	}
	// An attempt expires.
	b = f.Do(portal.OpApproveBegin, portal.Call{Session: bertS.Token, Request: evil.ID})
	a3, err := bert.Auth.Get(b.Options)
	if err != nil {
		t.Fatal(err)
	}
	f.Clock.Advance(6 * time.Minute)
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: bertS.Token, CSRF: bertS.CSRF, Request: evil.ID, Credential: a3}); rep.Status != http.StatusForbidden {
		t.Fatalf("expired attempt: %s", portaltest.Status(rep))
	}
	// A fresh attempt, finished at once, approves.
	if rep := f.Approve(bertS, bert, evil.ID); rep.Status != 200 {
		t.Fatalf("fresh approval: %s", portaltest.Status(rep))
	}
}
