package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/softauthn"
	"github.com/kluis-nl/kluis/portal"
	"github.com/kluis-nl/kluis/synth"
)

func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o700)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o700)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// code moves the clock to the next TOTP step and returns its code.
func (c *testClock) code(t *testing.T, secret string) string {
	c.mu.Lock()
	c.t = c.t.Add(30 * time.Second)
	c.mu.Unlock()
	cd, err := totp.GenerateCode(secret, c.now())
	if err != nil {
		t.Fatal(err)
	}
	return cd
}

// portalOrigin is the web.origin of the portal tests on a real appliance.
const portalOrigin = "https://kluis.example.test"

// writePortalConfig writes e's config: the SQLite practice dossierTenant
// (./praktijk.db) and more tenants, policy, and a web: section with a
// socket of its own and more lines.
func writePortalConfig(t *testing.T, e *env, tenants, policy, web string) {
	t.Helper()
	// A socket path must stay short: a directory of its own.
	sockDir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + dossierTenant + `, engine: sqlite, path: ./praktijk.db, dossier: practice}
` + tenants + `dossiers:
  practice: {root: clients, key: id, exclude: [audit_log]}
policy: ` + policy + `
web:
  listen: 127.0.0.1:0
  socket: ` + filepath.Join(sockDir, "p.sock") + `
  origin: ` + portalOrigin + `
` + web
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPortalRelease runs the portal's daemon side on a real appliance (a
// SQLite tenant, its repository, the signed access log): users added
// with the CLI, a practice user's dossier view equal to `dossier show`,
// a release approved with a passkey, the download equal to `dossier
// restore --format sql`, and a restore into the configured live
// database; every access in the access log with both identities.
func TestPortalRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	writePortalConfig(t, e, "  - {id: other, engine: sqlite, path: ./other.db, dossier: practice}\n", "{pack_size: 1MiB}",
		"  restore_targets: {"+dossierTenant+": ./secrets/target.dsn}\n")
	ctx := context.Background()
	if err := synth.GenerateSQLiteFile(ctx, e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(ctx, e.path("other.db"), synth.Tiny, 6); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", dossierTenant)
	e.mustRun(0, "backup", "--tenant", dossierTenant)
	// The live database: a full restore, which holds dossier 3 already.
	e.mustRun(0, "restore", "--tenant", dossierTenant, "--target-path", e.path("live.db"))
	if err := os.WriteFile(e.path("secrets", "target.dsn"), []byte(e.path("live.db")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun(0, "config", "check")

	annaTok := portalUserAdd(e, "anna", "practice", dossierTenant)
	bertTok := portalUserAdd(e, "bert", "approver")
	if r := e.run("users", "add", "--name", "carl", "--role", "practice", "--tenant", "nonexistent"); r.code == 0 {
		t.Fatalf("user bound to an unknown tenant: %v", r)
	}
	if r := e.run("users", "add", "--name", "carl", "--role", "practice"); r.code != 2 {
		t.Fatalf("practice user without tenant: %v", r)
	}

	h := startPortalService(t, e)
	cl, do, login := h.cl, h.do, h.login
	anna, bert := login("anna", annaTok), login("bert", bertTok)
	auth := h.addPasskey(bert)

	// The practice's view equals dossier show.
	var show struct {
		Rows   int64 `json:"rows"`
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
	}
	e.mustJSON(0, &show, "dossier", "show", "--tenant", dossierTenant, "--id", "3")
	view := do(portal.OpDossierShow, portal.Call{Session: anna.Token, CSRF: anna.CSRF, Tenant: dossierTenant, Snapshot: "latest", ID: "3"}).Dossier
	if view.Rows != show.Rows || len(view.Tables) != len(show.Tables) || view.Tables[0].Table != show.Tables[0].Table || view.Tables[0].Rows != show.Tables[0].Rows {
		t.Fatalf("portal view %+v, dossier show %+v", view, show)
	}
	// The other tenant is not hers.
	if rep := cl.Do(ctx, portal.OpSnapshots, portal.Call{Session: anna.Token, Tenant: "other"}); rep.Status != 403 {
		t.Fatalf("other tenant's snapshots: %+v", rep)
	}

	release := func(delivery string) string {
		req := do(portal.OpRequestCreate, portal.Call{Session: anna.Token, CSRF: anna.CSRF, Tenant: dossierTenant, Snapshot: "latest", ID: "3", Reason: "client moved practice", Delivery: delivery}).Req
		h.approve(bert, auth, req.ID)
		return req.ID
	}
	id := release(portal.DeliverySQL)
	tok := do(portal.OpRequest, portal.Call{Session: anna.Token, Request: id}).Req.Download
	var got strings.Builder
	var name string
	rep, err := cl.Download(ctx, portal.Call{Session: anna.Token, CSRF: anna.CSRF, Request: id, Token: tok}, func(n string) io.Writer {
		name = n
		return &got
	})
	if err != nil || rep.Status != 200 {
		t.Fatalf("download: %v %+v", err, rep)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "compare", "--out", e.path("cli.sql"))
	want, _ := os.ReadFile(e.path("cli.sql"))
	if got.String() != string(want) || !strings.HasSuffix(name, ".sql") {
		t.Fatalf("the portal's download (%s, %d bytes) differs from dossier restore --format sql (%d bytes)", name, got.Len(), len(want))
	}

	id2 := release(portal.DeliveryInto)
	msg := do(portal.OpRestoreInto, portal.Call{Session: anna.Token, CSRF: anna.CSRF, Request: id2}).Message
	if !strings.Contains(msg, "already present and kept") {
		t.Fatalf("restore into the live database: %s", msg)
	}

	e.mustRun(0, "access-log", "verify")
	b, _ := os.ReadFile(e.path("state", "dossier-access.jsonl"))
	log := string(b)
	for _, want := range []string{`"operator":"portal:anna"`, `"approver":"bert"`, `"request":"` + id + `"`, `"request":"` + id2 + `"`, `"action":"restore-into"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s", want)
		}
	}
	e.mustRun(0, "access-log", "verify", "--file", e.path("state", portal.EventsFileName))
	var users []portal.UserView
	e.mustJSON(0, &users, "users", "list")
	if len(users) != 2 || !users[0].Enrolled || users[1].Passkeys != 1 {
		t.Fatalf("users list: %+v", users)
	}
	// The auditor's export verifies with the public key alone.
	e.mustRun(0, "restore-test", "--tenant", dossierTenant)
	audrey := login("audrey", portalUserAdd(e, "audrey", "auditor"))
	ev := do(portal.OpEvidence, portal.Call{Session: audrey.Token}).Evidence
	if !ev.Verified || len(ev.Reports) != 1 || ev.Reports[0].Verdict != "PASS" {
		t.Fatalf("auditor's view: %+v", ev)
	}
	var tgz bytes.Buffer
	if rep, err := cl.Stream(ctx, portal.OpEvidenceExport, portal.Call{Session: audrey.Token}, func(string) io.Writer { return &tgz }); err != nil || rep.Status != 200 {
		t.Fatalf("export: %v %+v", err, rep)
	}
	untar(t, &tgz, e.path("export"))
	pub := e.mustRun(0, "keys", "public")
	os.WriteFile(e.path("pub.pem"), []byte(pub.stdout), 0o644)
	e.mustRun(0, "evidence", "verify", "--public-key", e.path("pub.pem"), e.path("export", "kluis-evidence"))
	if ents, _ := os.ReadDir(e.path("state")); slices.ContainsFunc(ents, func(d os.DirEntry) bool { return strings.HasPrefix(d.Name(), "portal-export-") }) {
		t.Error("the export's scratch directory is left in the state directory")
	}

	e.mustRun(0, "users", "disable", "anna")
	if rep := cl.Do(ctx, portal.OpWhoami, portal.Call{Session: anna.Token}); rep.Status != 401 {
		t.Fatalf("disabled user's session: %+v", rep)
	}
}

// portalService is the portal's daemon side on a real appliance (the
// config at e.cfg), serving its socket; the clock moves 30 s per TOTP
// code.
type portalService struct {
	t     *testing.T
	a     *appliance.Appliance
	cl    *portal.Client
	clock *testClock
	do    func(op string, call portal.Call) portal.Reply
	login func(name, tok string) *portal.Session
}

func startPortalService(t *testing.T, e *env) *portalService {
	t.Helper()
	ctx := context.Background()
	c, err := config.Load(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := appliance.New(c, nil)
	key, err := signingKey(a)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Now()}
	svc, err := portal.New(portal.Options{Store: portal.NewStore(a.StateDir()), Backend: portalBackend{app: func() *appliance.Appliance { return a }},
		Events: &portal.ChainLog{Path: filepath.Join(a.StateDir(), portal.EventsFileName), Key: key}, Web: c.Web, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := portal.Listen(c.Resolve(c.Web.Socket))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Serve(sctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	cl := portal.NewClient(c.Web.Socket)
	do := func(op string, call portal.Call) portal.Reply {
		t.Helper()
		rep := cl.Do(ctx, op, call)
		if rep.Status != 200 {
			t.Fatalf("%s: %d %s", op, rep.Status, rep.Error)
		}
		return rep
	}
	login := func(name, tok string) *portal.Session {
		secret := do(portal.OpEnrolInfo, portal.Call{Token: tok}).Enrol.TOTPSecret
		do(portal.OpEnrol, portal.Call{Token: tok, Password: "a long enough password", Code: clock.code(t, secret)})
		rep := do(portal.OpLogin, portal.Call{User: name, Password: "a long enough password"})
		return do(portal.OpLoginTOTP, portal.Call{Ticket: rep.Ticket, Code: clock.code(t, secret)}).Session
	}
	return &portalService{t: t, a: a, cl: cl, clock: clock, do: do, login: login}
}

// portalUserAdd runs `kluis users add` and returns the enrolment token.
func portalUserAdd(e *env, name, role string, tenants ...string) string {
	e.t.Helper()
	args := []string{"users", "add", "--name", name, "--role", role}
	for _, tn := range tenants {
		args = append(args, "--tenant", tn)
	}
	var added struct {
		Link string `json:"enrol_link"`
	}
	e.mustJSON(0, &added, args...)
	return strings.TrimPrefix(added.Link, portalOrigin+"/enrol/")
}

// addPasskey registers a software authenticator for the session's user.
func (h *portalService) addPasskey(s *portal.Session) *softauthn.Authenticator {
	h.t.Helper()
	auth := softauthn.New(h.a.Cfg.Web.Origin)
	cred, err := auth.Create(h.do(portal.OpPasskeyAddBegin, portal.Call{Session: s.Token}).Options)
	if err != nil {
		h.t.Fatal(err)
	}
	h.do(portal.OpPasskeyAddFinish, portal.Call{Session: s.Token, CSRF: s.CSRF, Credential: cred})
	return auth
}

// approve approves request id as s's user with auth.
func (h *portalService) approve(s *portal.Session, auth *softauthn.Authenticator, id string) portal.Reply {
	h.t.Helper()
	as, err := auth.Get(h.do(portal.OpApproveBegin, portal.Call{Session: s.Token, Request: id}).Options)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(portal.OpApproveFinish, portal.Call{Session: s.Token, CSRF: s.CSRF, Request: id, Credential: as})
}

// portalExport is the portal's evidence download (the auditor's page:
// portalBackend.EvidenceExport of [from, to)), unpacked; it returns the
// export's directory.
func portalExport(t *testing.T, e *env, tenant string, from, to time.Time) string {
	t.Helper()
	c, err := config.Load(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := appliance.New(c, nil)
	var tgz bytes.Buffer
	if err := (portalBackend{app: func() *appliance.Appliance { return a }}).EvidenceExport(context.Background(), tenant, from, to, &tgz); err != nil {
		t.Fatalf("the portal's evidence export: %v", err)
	}
	dir := t.TempDir()
	untar(t, &tgz, dir)
	return filepath.Join(dir, "kluis-evidence")
}

// TestPortalEvidenceExportPeriod: the auditor's download of a period
// from the portal carries the reports just outside it, as the CLI's
// export does, so that `evidence verify --expect-period` proves nothing
// of the period is missing; the two hold the same files.
func TestPortalEvidenceExportPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	e.appendEvidence(4, time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)) // one a day, 1 to 4 March
	pub := e.path("appliance.pub")
	if err := os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := e.path("cli-export")
	e.mustRun(0, "evidence", "export", "--out", cli, "--from", "2026-03-02", "--to", "2026-03-03")
	web := portalExport(t, e, "", time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC))
	for _, dir := range []string{cli, web} {
		if r := e.runNoConfig("evidence", "verify", "--public-key", pub, "--expect-period", "2026-03-02..2026-03-03", dir); r.code != 0 || !strings.Contains(r.stdout, "2 reports here were signed within it") {
			t.Errorf("%s: verify --expect-period: %v", filepath.Base(filepath.Dir(dir)), r)
		}
	}
	names := func(dir string) []string {
		var out []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, rel)
			}
			return nil
		})
		return out
	}
	if c, w := names(cli), names(web); !slices.Equal(c, w) {
		t.Errorf("the portal's export holds %v, the CLI's %v", w, c)
	}
	for _, f := range []string{"00000001.json", "00000004.json", "checkpoint.note"} {
		a, _ := os.ReadFile(filepath.Join(cli, f))
		b, _ := os.ReadFile(filepath.Join(web, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the CLI's and the portal's export", f)
		}
	}
}

// TestPortalOverrideAndRetention runs the portal's two other four-eyes
// requests on a real appliance: an erased dossier is neither shown nor
// released until an erasure-override request is approved with another
// person's passkey, then released once — what `dossier restore
// --override-erasure` writes — with the lawful ground and both
// identities in the signed access log; a retention change asked by an
// admin and approved by an approver is recorded in a signed log that
// status, config check and forget read, and a log edited on disk stops
// retention instead of being ignored.
func TestPortalOverrideAndRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	writePortalConfig(t, e, "", "{pack_size: 1MiB, retention: {keep_daily: 7, keep_weekly: 4}}", "")
	ctx := context.Background()
	if err := synth.GenerateSQLiteFile(ctx, e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", dossierTenant)
	for i := 0; i < 3; i++ {
		e.mustRun(0, "backup", "--tenant", dossierTenant)
	}
	annaTok := portalUserAdd(e, "anna", "practice", dossierTenant)
	bertTok := portalUserAdd(e, "bert", "approver")
	adaTok := portalUserAdd(e, "ada", "admin")
	h := startPortalService(t, e)
	anna, bert, ada := h.login("anna", annaTok), h.login("bert", bertTok), h.login("ada", adaTok)
	auth := h.addPasskey(bert)
	raw := func(s *portal.Session, op string, c portal.Call) portal.Reply {
		c.Session, c.CSRF = s.Token, s.CSRF
		return h.cl.Do(ctx, op, c)
	}

	// Erasure override.
	e.mustRun(0, "erasure", "add", "--tenant", dossierTenant, "--id", "3", "--reason", "client asked (AVG art. 17)", "--date", "2026-06-01")
	if rep := raw(anna, portal.OpDossierShow, portal.Call{Tenant: dossierTenant, Snapshot: "latest", ID: "3"}); rep.Status != 409 || rep.Dossier == nil || !rep.Dossier.Erased || rep.Dossier.ErasedOn != "2026-06-01" || len(rep.Dossier.Tables) != 0 {
		t.Fatalf("show of the erased dossier: %+v", rep)
	}
	if rep := raw(anna, portal.OpRequestCreate, portal.Call{Tenant: dossierTenant, Snapshot: "latest", ID: "3", Reason: "r", Delivery: portal.DeliverySQL}); rep.Status != 400 || !strings.Contains(rep.Error, "erased") {
		t.Fatalf("release of the erased dossier: %+v", rep)
	}
	req := raw(anna, portal.OpRequestCreate, portal.Call{Tenant: dossierTenant, Snapshot: "latest", ID: "3", Reason: "court order 2026/123", Delivery: portal.DeliverySQL, Kind: portal.KindErasureOverride}).Req
	if req == nil || req.Kind != portal.KindErasureOverride || req.ErasedOn != "2026-06-01" {
		t.Fatalf("override request: %+v", req)
	}
	if rep := h.approve(bert, auth, req.ID); rep.Status != 200 {
		t.Fatalf("approve: %+v", rep)
	}
	tok := h.do(portal.OpRequest, portal.Call{Session: anna.Token, Request: req.ID}).Req.Download
	var got strings.Builder
	if rep, err := h.cl.Download(ctx, portal.Call{Session: anna.Token, CSRF: anna.CSRF, Request: req.ID, Token: tok}, func(string) io.Writer { return &got }); err != nil || rep.Status != 200 {
		t.Fatalf("download: %v %+v", err, rep)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "compare", "--override-erasure", "compare", "--out", e.path("cli.sql"))
	want, _ := os.ReadFile(e.path("cli.sql"))
	if got.String() != string(want) || !strings.Contains(got.String(), "INSERT") {
		t.Fatalf("the override's download (%d bytes) differs from dossier restore --override-erasure (%d bytes)", got.Len(), len(want))
	}
	e.mustRun(0, "access-log", "verify")
	b, _ := os.ReadFile(e.path("state", "dossier-access.jsonl"))
	for _, want := range []string{`"override_erasure":"four-eyes request ` + req.ID + `, approved by bert: court order 2026/123"`, `"operator":"portal:anna","tenant":"` + dossierTenant + `","dossier_id":"3"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("access log lacks %s", want)
		}
	}
	// Before the override the refused show and release are recorded
	// without one.
	if n := strings.Count(string(b), `"override_erasure"`); n != 2 {
		t.Errorf("%d access records carry an override, want 2 (the portal's and the CLI's)", n)
	}

	// Retention change.
	if rep := raw(ada, portal.OpRetentionRequest, portal.Call{Tenant: dossierTenant, Reason: "r", Retention: &portal.Retention{KeepDaily: 3, KeepWeekly: 2}}); rep.Status != 400 || !strings.Contains(rep.Error, "rpo_window") {
		t.Fatalf("a retention config check refuses: %+v", rep)
	}
	rr := raw(ada, portal.OpRetentionRequest, portal.Call{Tenant: dossierTenant, Reason: "contract: newest backup only", Retention: &portal.Retention{KeepLast: 1}}).Req
	if rr == nil || !rr.Shortens || rr.Forgets != 2 || *rr.RetentionFrom != (portal.Retention{KeepDaily: 7, KeepWeekly: 4}) {
		t.Fatalf("retention request: %+v", rr)
	}
	if rep := h.approve(bert, auth, rr.ID); rep.Status != 200 {
		t.Fatalf("approve the retention change: %+v", rep)
	}
	log := e.path("state", appliance.RetentionFileName)
	e.mustRun(0, "access-log", "verify", "--file", log)
	src := "portal request " + rr.ID + " (asked by portal:ada, approved by bert"
	if r := e.run("status"); !strings.Contains(r.stdout, "retention: tenant "+dossierTenant+": keep_last 1, keep_daily 0, keep_weekly 0, keep_monthly 0, from "+src) {
		t.Errorf("status does not show the retention and its source: %v", r)
	}
	if r := e.mustRun(0, "config", "check"); !strings.Contains(r.stdout, "retention of tenant "+dossierTenant+": keep_last 1") || !strings.Contains(r.stdout, src) {
		t.Errorf("config check does not show the retention change: %v", r)
	}
	var fg struct {
		Snapshots []struct {
			Keep bool `json:"keep"`
		} `json:"snapshots"`
	}
	e.mustJSON(0, &fg, "forget", "--tenant", dossierTenant, "--dry-run")
	if len(fg.Snapshots) != 3 || !fg.Snapshots[0].Keep || fg.Snapshots[1].Keep || fg.Snapshots[2].Keep {
		t.Errorf("forget --dry-run under the change: %+v", fg)
	}
	if v := h.do(portal.OpRetention, portal.Call{Session: bert.Token}).Retention; len(v) != 1 || v[0].Request != rr.ID || v[0].Effective.KeepLast != 1 {
		t.Errorf("the portal's retention list: %+v", v)
	}

	// The log edited on disk (a longer retention planted, or a shorter
	// one): nothing reads it as valid, nothing falls back to policy.
	lb, _ := os.ReadFile(log)
	edited := strings.Replace(string(lb), `"keep_last":1`, `"keep_last":9`, 1)
	if edited == string(lb) {
		t.Fatalf("the retention log holds no keep_last 1:\n%s", lb)
	}
	os.WriteFile(log, []byte(edited), 0o600)
	if r := e.run("config", "check"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "approved retention changes") {
		t.Errorf("config check of an edited retention log: %v", r)
	}
	if r := e.run("forget", "--tenant", dossierTenant, "--dry-run"); r.code == 0 {
		t.Errorf("forget with an edited retention log: %v", r)
	}
	if r := e.run("status"); r.code == 0 || !strings.Contains(r.stdout, "approved retention changes") {
		t.Errorf("status with an edited retention log: %v", r)
	}
	if rep := raw(ada, portal.OpRetentionRequest, portal.Call{Tenant: dossierTenant, Reason: "r", ToPolicy: true}); rep.Status == 200 {
		t.Errorf("a retention request on an edited log: %+v", rep)
	}
}
