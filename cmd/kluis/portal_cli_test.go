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

// TestPortalRelease runs the portal's daemon side on a real appliance (a
// SQLite tenant, its repository, the signed access log): users added
// with the CLI, a practice user's dossier view equal to `dossier show`,
// a release approved with a passkey, the download equal to `dossier
// restore --format sql`, and a restore into the configured live
// database; every access in the access log with both identities.
func TestPortalRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sockDir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	const origin = "https://kluis.example.test"
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + dossierTenant + `, engine: sqlite, path: ./praktijk.db, dossier: practice}
  - {id: other, engine: sqlite, path: ./other.db, dossier: practice}
dossiers:
  practice: {root: clients, key: id, exclude: [audit_log]}
policy: {pack_size: 1MiB}
web:
  listen: 127.0.0.1:0
  socket: ` + filepath.Join(sockDir, "p.sock") + `
  origin: ` + origin + `
  restore_targets: {` + dossierTenant + `: ./secrets/target.dsn}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
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

	var added struct {
		Link string `json:"enrol_link"`
	}
	e.mustJSON(0, &added, "users", "add", "--name", "anna", "--role", "practice", "--tenant", dossierTenant)
	annaTok := strings.TrimPrefix(added.Link, origin+"/enrol/")
	e.mustJSON(0, &added, "users", "add", "--name", "bert", "--role", "approver")
	bertTok := strings.TrimPrefix(added.Link, origin+"/enrol/")
	if r := e.run("users", "add", "--name", "carl", "--role", "practice", "--tenant", "nonexistent"); r.code == 0 {
		t.Fatalf("user bound to an unknown tenant: %v", r)
	}
	if r := e.run("users", "add", "--name", "carl", "--role", "practice"); r.code != 2 {
		t.Fatalf("practice user without tenant: %v", r)
	}

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
	defer cancel()
	go svc.Serve(sctx, ln)
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
	anna, bert := login("anna", annaTok), login("bert", bertTok)
	auth := softauthn.New(origin)
	opts := do(portal.OpPasskeyAddBegin, portal.Call{Session: bert.Token}).Options
	cred, err := auth.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	do(portal.OpPasskeyAddFinish, portal.Call{Session: bert.Token, CSRF: bert.CSRF, Credential: cred})

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
		begin := do(portal.OpApproveBegin, portal.Call{Session: bert.Token, Request: req.ID})
		as, err := auth.Get(begin.Options)
		if err != nil {
			t.Fatal(err)
		}
		do(portal.OpApproveFinish, portal.Call{Session: bert.Token, CSRF: bert.CSRF, Request: req.ID, Credential: as})
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
	e.mustJSON(0, &added, "users", "add", "--name", "audrey", "--role", "auditor")
	audrey := login("audrey", strings.TrimPrefix(added.Link, origin+"/enrol/"))
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
