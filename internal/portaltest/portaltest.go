// Package portaltest runs the portal's daemon side (portal.Service) on a
// real Unix socket with a fake backend and a clock the test moves, for
// the portal's and the web process's tests.
package portaltest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/idptest"
	"github.com/kluis-nl/kluis/internal/softauthn"
	"github.com/kluis-nl/kluis/portal"
)

// Password is every test user's password.
const Password = "correct horse battery staple"

// Clock is a settable clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Backend is a fake portal.Backend: tenants "a" and "b", two snapshots
// each, a dossier of every id but the erased ones, recorded accesses,
// retention changes.
type Backend struct {
	mu       sync.Mutex
	Accesses []portal.Access
	Into     []portal.Access
	// Erased holds "tenant/id" of erased dossiers.
	Erased map[string]time.Time
	// Retentions are the recorded retention changes, in order.
	Retentions []portal.RetentionSet
	// Pending and Cancelled are the delayed (shortening) changes per
	// tenant the fake appliance reports, set by a test.
	Pending, Cancelled map[string]*portal.DelayedRetention
	// policy overrides Policy (SetPolicy: a config reload).
	policy *portal.Retention
}

// SetPolicy changes the fake appliance's policy.retention, as a config
// reload does.
func (b *Backend) SetPolicy(p portal.Retention) {
	b.mu.Lock()
	b.policy = &p
	b.mu.Unlock()
}

// Policy is the fake appliance's policy.retention.
var Policy = portal.Retention{KeepDaily: 7, KeepWeekly: 4}

// Erase puts a dossier into the fake erasure register.
func (b *Backend) Erase(tenant, id string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Erased == nil {
		b.Erased = map[string]time.Time{}
	}
	b.Erased[tenant+"/"+id] = at
}

// erased is the error for an erased dossier without an override.
func (b *Backend) erased(ctx context.Context, a portal.Access) error {
	b.mu.Lock()
	at, ok := b.Erased[a.Tenant+"/"+a.ID]
	b.mu.Unlock()
	if !ok || a.Override != "" {
		return nil
	}
	s, _ := b.Snapshot(ctx, a.Tenant, a.Snapshot)
	return &portal.ErasedError{Snapshot: s.ID, On: at.Format("2006-01-02"), Err: fmt.Errorf("dossier %s of tenant %s was erased", a.ID, a.Tenant)}
}

// Retention is policy or the last change of the tenant.
func (b *Backend) Retention(ctx context.Context, tenant string, proposed *portal.Retention) (*portal.RetentionView, error) {
	if !slices.Contains(Tenants, tenant) {
		return nil, fmt.Errorf("no tenant %q", tenant)
	}
	b.mu.Lock()
	pol := Policy
	if b.policy != nil {
		pol = *b.policy
	}
	v := &portal.RetentionView{Tenant: tenant, Effective: pol, Policy: pol, Source: portal.SourcePolicy, Snapshots: 2}
	for _, c := range b.Retentions {
		if c.Tenant != tenant {
			continue
		}
		v.Effective, v.Source, v.Request, v.Requester, v.Approver = pol, portal.SourcePolicy, "", "", ""
		if c.Retention != nil {
			v.Effective, v.Source, v.Request, v.Requester, v.Approver = *c.Retention, "request "+c.Request, c.Request, c.Requester, c.Approver
		}
	}
	v.Pending, v.Cancelled = b.Pending[tenant], b.Cancelled[tenant]
	b.mu.Unlock()
	if p := proposed; p != nil {
		if p.KeepLast < 0 || p.KeepDaily < 0 || p.KeepWeekly < 0 || p.KeepMonthly < 0 {
			return nil, fmt.Errorf("keep counts cannot be negative")
		}
		if !p.KeepsAll() {
			kept := max(p.KeepLast, p.KeepDaily)
			if p.KeepWeekly > 0 || p.KeepMonthly > 0 {
				kept = max(kept, 1)
			}
			v.Forgets = 2 - min(2, kept)
		}
	}
	return v, nil
}

// SetRetention records the change.
func (b *Backend) SetRetention(ctx context.Context, c portal.RetentionSet) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Retentions = append(b.Retentions, c)
	return nil
}

// Tenants of the fake appliance.
var Tenants = []string{"a", "b"}

func snapID(tenant string, n int) string {
	return fmt.Sprintf("%s%063d", tenant, n)
}

// Snapshots of a tenant.
func (b *Backend) Snapshots(ctx context.Context, tenant string) ([]portal.Snapshot, error) {
	if !slices.Contains(Tenants, tenant) {
		return nil, fmt.Errorf("no tenant %q", tenant)
	}
	base := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	return []portal.Snapshot{
		{ID: snapID(tenant, 2), Short: snapID(tenant, 2)[:8], Started: base.Add(24 * time.Hour)},
		{ID: snapID(tenant, 1), Short: snapID(tenant, 1)[:8], Started: base},
	}, nil
}

// Tenants lists the tenants.
func (b *Backend) Tenants(ctx context.Context) ([]string, error) { return Tenants, nil }

// Snapshot resolves latest or a prefix.
func (b *Backend) Snapshot(ctx context.Context, tenant, id string) (portal.Snapshot, error) {
	snaps, err := b.Snapshots(ctx, tenant)
	if err != nil {
		return portal.Snapshot{}, err
	}
	if id == "" || id == "latest" {
		return snaps[0], nil
	}
	for _, s := range snaps {
		if strings.HasPrefix(s.ID, id) {
			return s, nil
		}
	}
	return portal.Snapshot{}, fmt.Errorf("no snapshot %q", id)
}

func (b *Backend) record(a portal.Access) {
	b.mu.Lock()
	b.Accesses = append(b.Accesses, a)
	b.mu.Unlock()
}

// AccessLog returns the accesses so far.
func (b *Backend) AccessLog() []portal.Access {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.Accesses)
}

// DossierShow returns two tables.
func (b *Backend) DossierShow(ctx context.Context, a portal.Access) (*portal.DossierView, error) {
	b.record(a)
	s, err := b.Snapshot(ctx, a.Tenant, a.Snapshot)
	if err != nil {
		return nil, err
	}
	if err := b.erased(ctx, a); err != nil {
		return nil, err
	}
	return &portal.DossierView{Tenant: a.Tenant, Snapshot: s.ID, Taken: s.Started, ID: a.ID, Rows: 3,
		Tables: []portal.TableCount{{Table: "clients", Rows: 1, Via: "root"}, {Table: "notes", Rows: 2, Via: "client_id"}}}, nil
}

// Dossier is what DossierWrite writes.
func Dossier(a portal.Access, format string) string {
	return fmt.Sprintf("-- dossier %s of tenant %s, snapshot %s, %s\n", a.ID, a.Tenant, a.Snapshot, format)
}

// DossierWrite writes Dossier.
func (b *Backend) DossierWrite(ctx context.Context, a portal.Access, format string, w io.Writer) error {
	b.record(a)
	if err := b.erased(ctx, a); err != nil {
		return err
	}
	_, err := io.WriteString(w, Dossier(a, format))
	return err
}

// DossierInto records the restore.
func (b *Backend) DossierInto(ctx context.Context, a portal.Access) (string, error) {
	b.record(a)
	if err := b.erased(ctx, a); err != nil {
		return "", err
	}
	b.mu.Lock()
	b.Into = append(b.Into, a)
	b.mu.Unlock()
	return "restored dossier " + a.ID, nil
}

// Evidence returns one report per tenant.
func (b *Backend) Evidence(ctx context.Context, tenants []string, from, to time.Time) (*portal.EvidenceView, error) {
	v := &portal.EvidenceView{Tenants: tenants, Verified: true, Key: "ed25519:test", Reports: []portal.EvidenceRow{}}
	for i, t := range tenants {
		v.Reports = append(v.Reports, portal.EvidenceRow{Seq: uint64(i + 1), Time: from.Add(time.Hour), Tenant: t, Location: "l1", Snapshot: snapID(t, 1), Verdict: "PASS", Verified: true})
	}
	return v, nil
}

// Export is what EvidenceExport writes.
func Export(tenant string, from, to time.Time) string {
	return fmt.Sprintf("evidence export %q %s..%s\n", tenant, from.Format("2006-01-02"), to.Format("2006-01-02"))
}

// EvidenceExport writes Export.
func (b *Backend) EvidenceExport(ctx context.Context, tenant string, from, to time.Time, w io.Writer) error {
	_, err := io.WriteString(w, Export(tenant, from, to))
	return err
}

// Log keeps events in memory and in a signed chain.
type Log struct {
	chain *portal.ChainLog
	mu    sync.Mutex
	ev    []portal.Event
}

// Log records e.
func (l *Log) Log(e portal.Event) error {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
	return l.chain.Log(e)
}

// Events returns the events so far.
func (l *Log) Events() []portal.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// Refused returns the refused events whose result contains substr.
func (l *Log) Refused(substr string) []portal.Event {
	var out []portal.Event
	for _, e := range l.Events() {
		if strings.HasPrefix(e.Result, "refused") && strings.Contains(e.Result, substr) {
			out = append(out, e)
		}
	}
	return out
}

// Fixture is a running portal service.
type Fixture struct {
	T       testing.TB
	Dir     string
	Origin  string
	Clock   *Clock
	Store   *portal.Store
	Service *portal.Service
	Client  *portal.Client
	Socket  string
	Backend *Backend
	Log     *Log
	Key     ed25519.PrivateKey
	Web     config.Web
	// IDP is the identity provider of a fixture made by NewOIDC.
	IDP *idptest.Provider
}

// New starts a service for origin (e.g. http://127.0.0.1:8080); mod
// changes the web: config before it starts.
func New(t testing.TB, origin string, mod ...func(*config.Web)) *Fixture {
	return newFixture(t, origin, false, nil, "", mod)
}

// NewOIDC starts a service whose web.oidc is a test identity provider
// (f.IDP) on the fixture's clock.
func NewOIDC(t testing.TB, origin string, mod ...func(*config.Web)) *Fixture {
	return newFixture(t, origin, true, nil, "", mod)
}

// NewOIDCAt starts a service whose web.oidc is o, another provider,
// with its client secret.
func NewOIDCAt(t testing.TB, origin string, o config.OIDC, secret string) *Fixture {
	return newFixture(t, origin, false, &o, secret, nil)
}

func newFixture(t testing.TB, origin string, withOIDC bool, o *config.OIDC, secret string, mod []func(*config.Web)) *Fixture {
	dir := t.TempDir()
	// Unix socket paths are short: TempDir can be too long.
	sockDir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	// The clock starts at the real time: go-webauthn checks a session's
	// expiry (the request's, from this clock) against time.Now, so a
	// fixed start became a test that failed from the day after it.
	f := &Fixture{T: t, Dir: dir, Origin: origin, Clock: &Clock{t: time.Now().UTC().Truncate(time.Second)},
		Store: portal.NewStore(dir), Backend: &Backend{}, Socket: filepath.Join(sockDir, "p.sock"), Key: key}
	f.Log = &Log{chain: &portal.ChainLog{Path: filepath.Join(dir, portal.EventsFileName), Key: key}}
	f.Web = config.Web{Socket: f.Socket, Origin: origin, RestoreTargets: map[string]string{"a": "/nonexistent/dsn-a"}}
	f.Web.OIDC = o
	if withOIDC {
		f.IDP = idptest.New(t, strings.TrimSuffix(origin, "/")+config.OIDCCallbackPath, f.Clock.Now)
		f.Web.OIDC = &config.OIDC{Issuer: f.IDP.Issuer, ClientID: f.IDP.ClientID, ClientSecretFile: "(given directly)", Label: "Test IdP"}
		secret = f.IDP.ClientSecret
	}
	for _, m := range mod {
		m(&f.Web)
	}
	f.Service, err = portal.New(portal.Options{Store: f.Store, Backend: f.Backend, Events: f.Log, Web: f.Web,
		RequestsPath: filepath.Join(dir, "requests.json"), Now: f.Clock.Now, OIDCClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := portal.Listen(f.Socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Service.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	f.Client = portal.NewClient(f.Socket)
	return f
}

// Do calls the daemon and fails the test on a transport error.
func (f *Fixture) Do(op string, c portal.Call) portal.Reply {
	return f.Client.Do(context.Background(), op, c)
}

// User is an enrolled test user.
type User struct {
	Name, Secret string
	Auth         *softauthn.Authenticator
}

// AddUser adds and enrols a user (password and TOTP).
func (f *Fixture) AddUser(name, role string, tenants ...string) *User {
	f.T.Helper()
	tok, err := f.Store.Add(&portal.User{Name: name, Role: role, Tenants: tenants}, f.Clock.Now(), time.Hour)
	if err != nil {
		f.T.Fatal(err)
	}
	rep := f.Do(portal.OpEnrolInfo, portal.Call{Token: tok})
	if rep.Status != 200 {
		f.T.Fatalf("enrol-info: %+v", rep)
	}
	u := &User{Name: name, Secret: rep.Enrol.TOTPSecret}
	rep = f.Do(portal.OpEnrol, portal.Call{Token: tok, Password: Password, Code: f.Code(u)})
	if rep.Status != 200 {
		f.T.Fatalf("enrol: %+v", rep)
	}
	return u
}

// AddOIDCUser adds a user bound to the identity subject at f.IDP and
// enrols it (TOTP, no password).
func (f *Fixture) AddOIDCUser(name, role, subject string, tenants ...string) *User {
	f.T.Helper()
	tok, err := f.Store.Add(&portal.User{Name: name, Role: role, Tenants: tenants, OIDCSubject: subject}, f.Clock.Now(), time.Hour)
	if err != nil {
		f.T.Fatal(err)
	}
	rep := f.Do(portal.OpEnrolInfo, portal.Call{Token: tok})
	if rep.Status != 200 || !rep.Enrol.OIDC {
		f.T.Fatalf("enrol-info: %+v", rep)
	}
	u := &User{Name: name, Secret: rep.Enrol.TOTPSecret}
	if rep = f.Do(portal.OpEnrol, portal.Call{Token: tok, Code: f.Code(u)}); rep.Status != 200 {
		f.T.Fatalf("enrol: %+v", rep)
	}
	return u
}

// OIDCFlow is a sign-in at f.IDP up to the provider's answer: what the
// browser brings back to the portal.
type OIDCFlow struct {
	Begin   portal.Reply
	Code    string
	State   string
	Binding string
	// Error is the provider's error parameter, if it sent one.
	Error string
}

// StartOIDC begins a sign-in at the daemon and follows its redirect to
// f.IDP (signing in whoever the test chose with f.IDP.SignIn).
func (f *Fixture) StartOIDC() OIDCFlow {
	f.T.Helper()
	rep := f.Do(portal.OpOIDCBegin, portal.Call{Client: "test"})
	if rep.Status != 200 || rep.Redirect == "" || rep.Binding == "" {
		f.T.Fatalf("oidc-begin: %s", Status(rep))
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(rep.Redirect)
	if err != nil {
		f.T.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		f.T.Fatalf("the provider answered %s (Location %q)", resp.Status, resp.Header.Get("Location"))
	}
	q := loc.Query()
	return OIDCFlow{Begin: rep, Code: q.Get("code"), State: q.Get("state"), Binding: rep.Binding, Error: q.Get("error")}
}

// FinishOIDC hands the provider's answer to the daemon.
func (f *Fixture) FinishOIDC(fl OIDCFlow) portal.Reply {
	return f.Do(portal.OpOIDCFinish, portal.Call{Code: fl.Code, State: fl.State, Binding: fl.Binding, Client: "test"})
}

// Code returns u's TOTP code of the next time step (moving the clock 30
// seconds, so no code is used twice).
func (f *Fixture) Code(u *User) string {
	f.Clock.Advance(30 * time.Second)
	c, err := totp.GenerateCode(u.Secret, f.Clock.Now())
	if err != nil {
		f.T.Fatal(err)
	}
	return c
}

// Login logs u in with password and TOTP and returns the session.
func (f *Fixture) Login(u *User) *portal.Session {
	f.T.Helper()
	rep := f.Do(portal.OpLogin, portal.Call{User: u.Name, Password: Password, Client: "test"})
	if rep.Status != 200 {
		f.T.Fatalf("login %s: %+v", u.Name, rep)
	}
	rep = f.Do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: f.Code(u), Client: "test"})
	if rep.Status != 200 || rep.Session == nil || rep.Session.Token == "" {
		f.T.Fatalf("login-totp %s: %+v", u.Name, rep)
	}
	return rep.Session
}

// AddPasskey registers a software authenticator's credential for the
// session's user.
func (f *Fixture) AddPasskey(s *portal.Session, u *User) {
	f.T.Helper()
	if u.Auth == nil {
		u.Auth = softauthn.New(f.Origin)
	}
	rep := f.Do(portal.OpPasskeyAddBegin, portal.Call{Session: s.Token})
	if rep.Status != 200 {
		f.T.Fatalf("passkey-add-begin: %+v", rep)
	}
	cred, err := u.Auth.Create(rep.Options)
	if err != nil {
		f.T.Fatal(err)
	}
	rep = f.Do(portal.OpPasskeyAddFinish, portal.Call{Session: s.Token, CSRF: s.CSRF, Credential: cred})
	if rep.Status != 200 {
		f.T.Fatalf("passkey-add-finish: %+v", rep)
	}
}

// Approve approves request id as the session's user with u's passkey
// and returns the reply.
func (f *Fixture) Approve(s *portal.Session, u *User, id string) portal.Reply {
	f.T.Helper()
	rep := f.Do(portal.OpApproveBegin, portal.Call{Session: s.Token, Request: id})
	if rep.Status != 200 {
		return rep
	}
	a, err := u.Auth.Get(rep.Options)
	if err != nil {
		f.T.Fatal(err)
	}
	return f.Do(portal.OpApproveFinish, portal.Call{Session: s.Token, CSRF: s.CSRF, Request: id, Credential: a})
}

// Status is a reply's status for messages.
func Status(r portal.Reply) string {
	b, _ := json.Marshal(r)
	return fmt.Sprintf("%d %s", r.Status, b)
}

var _ = http.StatusOK
