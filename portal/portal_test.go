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

func TestApprovalAttacks(t *testing.T) {
	r := newRelease(t, portal.DeliverySQL)
	f := r.f
	digest := func(id string) []byte {
		rep := f.Do(portal.OpRequest, portal.Call{Session: r.bertS.Token, Request: id})
		b, err := hexDecode(rep.Req.Digest)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rpID := "kluis.example.test"
	pending := func(id string) {
		t.Helper()
		rep := f.Do(portal.OpRequest, portal.Call{Session: r.annaS.Token, Request: id})
		if rep.Req.State != portal.StatePending {
			t.Fatalf("request is %s", rep.Req.State)
		}
	}

	// 1. The web process compromised: it has bert's session token and
	// CSRF token, but not his authenticator. Its own key signs the
	// request's digest, for the right relying party and origin.
	forger := softauthn.New(origin)
	forger.Create(mustOptions(t, f, r.bertS)) // bert's options, but the daemon never registers this key
	forged, _ := forger.Sign(rpID, origin, digest(r.req.ID))
	if rep := approveWith(f, r.bertS, r.req.ID, forged); rep.Status != 403 {
		t.Fatalf("forged approval: %s", portaltest.Status(rep))
	}
	// Straight into the socket without begin, with garbage.
	if rep := f.Do(portal.OpApproveFinish, portal.Call{Session: r.bertS.Token, CSRF: r.bertS.CSRF, Request: r.req.ID, Credential: json.RawMessage(`{"id":"x"}`)}); rep.Status != 403 {
		t.Fatalf("garbage approval: %s", portaltest.Status(rep))
	}
	pending(r.req.ID)

	// 2. The requester's own authenticator: anna registers a passkey and
	// signs her own request; submitted in bert's session.
	f.AddPasskey(r.annaS, r.anna)
	own, _ := r.anna.Auth.Sign(rpID, origin, digest(r.req.ID))
	if rep := approveWith(f, r.bertS, r.req.ID, own); rep.Status != 403 {
		t.Fatalf("approval by the requester's authenticator in the approver's session: %s", portaltest.Status(rep))
	}
	// In her own session (a practice user cannot approve at all).
	if rep := approveWith(f, r.annaS, r.req.ID, own); rep.Status == 200 {
		t.Fatalf("requester approved her own request: %s", portaltest.Status(rep))
	}
	pending(r.req.ID)

	// 3. A signature by bert's authenticator over another challenge (an
	// older request, or anything the web process made up).
	other, _ := r.bert.Auth.Sign(rpID, origin, []byte("some other challenge, 32 bytes.."))
	if rep := approveWith(f, r.bertS, r.req.ID, other); rep.Status != 403 {
		t.Fatalf("approval over another challenge: %s", portaltest.Status(rep))
	}
	// For another origin (a phishing site) or relying party.
	phish, _ := r.bert.Auth.Sign(rpID, "https://kluis.example.evil", digest(r.req.ID))
	if rep := approveWith(f, r.bertS, r.req.ID, phish); rep.Status != 403 {
		t.Fatalf("approval from another origin: %s", portaltest.Status(rep))
	}
	pending(r.req.ID)

	// 4. The real approval, then its replay on the same and on another
	// request.
	good, _ := r.bert.Auth.Sign(rpID, origin, digest(r.req.ID))
	if rep := approveWith(f, r.bertS, r.req.ID, good); rep.Status != 200 {
		t.Fatalf("real approval: %s", portaltest.Status(rep))
	}
	if rep := approveWith(f, r.bertS, r.req.ID, good); rep.Status != http.StatusConflict {
		t.Fatalf("replayed on the same request: %s", portaltest.Status(rep))
	}
	second := r.request(t, portal.DeliverySQL)
	if rep := approveWith(f, r.bertS, second.ID, good); rep.Status != 403 {
		t.Fatalf("replayed on another request: %s", portaltest.Status(rep))
	}
	pending(second.ID)

	// 5. Expired.
	f.Clock.Advance(25 * time.Hour)
	late := f.Login(r.bert)
	if rep := f.Approve(late, r.bert, second.ID); rep.Status != http.StatusConflict {
		t.Fatalf("expired request approved: %s", portaltest.Status(rep))
	}

	// Every refusal is in the portal log with both identities.
	refused := f.Log.Refused("")
	var forgedLogged, ownLogged, expiredLogged bool
	for _, e := range refused {
		if e.Event == "approve" && e.Approver == "bert" && e.User == "anna" && strings.Contains(e.Result, "does not verify") {
			forgedLogged = true
		}
		if strings.Contains(e.Result, "role practice") || strings.Contains(e.Result, "own request") {
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
	annaS, beaS, audS := f.Login(anna), f.Login(bea), f.Login(aud)
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
		{annaS, portal.OpSnapshots, portal.Call{Tenant: "../b"}},
		{annaS, portal.OpSnapshots, portal.Call{Tenant: ""}},
		{audS, portal.OpSnapshots, portal.Call{Tenant: "a"}},
		{audS, portal.OpDossierShow, portal.Call{Tenant: "a", ID: "5"}},
		{audS, portal.OpRequestCreate, portal.Call{Tenant: "a", ID: "5", Reason: "r", Delivery: "sql"}},
		{audS, portal.OpRequest, portal.Call{Request: bReq}},
		{audS, portal.OpEvidence, portal.Call{Tenant: "b"}},
		{audS, portal.OpUsers, portal.Call{}},
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
		if rep.Status < 400 || rep.Snapshots != nil || rep.Dossier != nil || rep.Req != nil || rep.Evidence != nil || rep.Users != nil || rep.Options != nil {
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
