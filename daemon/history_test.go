package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
	"github.com/kluis-nl/kluis/repo/local"
)

// historyFixture is a daemon (not running) with one SQLite tenant.
func historyFixture(t *testing.T, policy string) (*fixture, string) {
	t.Helper()
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 30)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), policy, "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d.Reload(context.Background(), cfg)
	return f, p
}

// killedBetweenManifests commits a snapshot the way a process killed
// between the two manifest writes leaves it: packs and index at both
// locations, the manifest at amsterdam only, and neither the ledger nor
// the job history told (they are written after both manifests).
func killedBetweenManifests(t *testing.T, f *fixture) repo.Hash {
	t.Helper()
	ctx := context.Background()
	a := f.d.Appliance()
	mk, err := a.MasterKey()
	if err != nil {
		t.Fatal(err)
	}
	g := faulty.New(local.New("groningen", filepath.Join(f.dir, "loc-g")), faulty.Options{})
	g.SetDrop(func(name string) bool { return strings.Contains(name, "/snapshots/") })
	locs := []repo.Location{local.New("amsterdam", filepath.Join(f.dir, "loc-a")), g}
	r, err := repo.Open(ctx, "praktijk-a", locs, repo.Options{Master: mk, Now: f.clk.Now}) // no ledger: the kill came first
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := a.Cfg.Tenant("praktijk-a")
	eng, err := a.Engine(tn, r.FingerprintKey())
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Database(ctx, r, eng, repo.BackupOptions{Appliance: "ams-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "loc-g", "praktijk-a", "snapshots", res.Snapshot)); err == nil {
		t.Fatal("the manifest reached groningen")
	}
	return res.ID
}

func statusOf(t *testing.T, f *fixture) TenantStatus {
	t.Helper()
	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if len(rep.Tenants) != 1 {
		t.Fatalf("status: %+v", rep)
	}
	return rep.Tenants[0]
}

// Issue 21 point 2: a one-copy snapshot no job recorded (a kill between
// the two manifest writes), after a newer snapshot reached both
// locations. Status and the metrics show it until the nightly reconcile
// heals it; then both are clean. The running daemon finds one at start
// from the listings and its sync heals it, with no memory of it.
func TestOneCopySnapshotIsReconciled(t *testing.T) {
	ctx := context.Background()
	f, dbPath := historyFixture(t, "")
	if err := f.d.runBackup(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Hour)
	orphan := killedBetweenManifests(t, f)
	f.clk.Advance(time.Hour)
	// A newer backup reaches both locations: before, this cleared
	// "degraded" and the sync did nothing.
	os.WriteFile(dbPath+".touch", nil, 0o600)
	if err := f.d.runBackup(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, f)
	if st.OK() || st.DegradedSnapshots != 1 || !st.Degraded || st.Missing["groningen"] != 1 ||
		!strings.Contains(strings.Join(st.Problems, ";"), "1 snapshots at fewer than 2 required locations (e.g. "+orphan.Short()) {
		t.Fatalf("status with a one-copy snapshot: %+v", st)
	}
	_, body := scrape(t, f.d.Handler(), "/metrics")
	for _, want := range []string{
		`kluis_snapshot_degraded{tenant="praktijk-a"} 1`,
		`kluis_snapshots_under_copies{tenant="praktijk-a"} 1`,
		`kluis_snapshots_missing{location="groningen",tenant="praktijk-a"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if err := f.d.runReconcile(ctx, "praktijk-a"); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "loc-g", "praktijk-a", "snapshots", orphan.String())); err != nil {
		t.Fatalf("reconcile did not copy the one-copy snapshot: %v", err)
	}
	if st := statusOf(t, f); !st.OK() || st.DegradedSnapshots != 0 || st.Degraded {
		t.Fatalf("status after reconcile: %+v", st)
	}
	_, body = scrape(t, f.d.Handler(), "/metrics")
	for _, want := range []string{
		`kluis_snapshot_degraded{tenant="praktijk-a"} 0`,
		`kluis_snapshots_under_copies{tenant="praktijk-a"} 0`,
		`kluis_snapshots_missing{location="groningen",tenant="praktijk-a"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics after reconcile lacks %s", want)
		}
	}

	// Another one, then the daemon starts: its sync, decided from the
	// listings, heals it.
	f.clk.Advance(time.Hour)
	orphan = killedBetweenManifests(t, f)
	if st := statusOf(t, f); st.OK() {
		t.Fatalf("status ok with a one-copy snapshot: %+v", st)
	}
	f.run()
	f.settle()
	if _, err := os.Stat(filepath.Join(f.dir, "loc-g", "praktijk-a", "snapshots", orphan.String())); err != nil {
		t.Fatalf("the daemon did not heal the one-copy snapshot at start: %v", err)
	}
	if st := statusOf(t, f); !st.OK() {
		t.Fatalf("status after the daemon's sync: %+v", st)
	}
}

// Issue 18 point 6: an unreachable location is shown as unreachable, not
// as a location with no snapshots, in status and the metrics.
func TestUnreachableIsNotMissing(t *testing.T) {
	ctx := context.Background()
	f, _ := historyFixture(t, "")
	if err := f.d.runBackup(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	locG := filepath.Join(f.dir, "loc-g")
	if err := os.Rename(locG, locG+".away"); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, f)
	if _, ok := st.Copies["groningen"]; ok || strings.Join(st.Unreachable, ",") != "groningen" || st.OK() || !st.Degraded ||
		!strings.Contains(strings.Join(st.Problems, ";"), "location groningen cannot be listed") {
		t.Fatalf("status with groningen away: %+v", st)
	}
	f.d.observe(ctx, f.d.Appliance(), "praktijk-a", nil)
	_, body := scrape(t, f.d.Handler(), "/metrics")
	if !strings.Contains(body, `kluis_location_listed{location="groningen",tenant="praktijk-a"} 0`) ||
		strings.Contains(body, `kluis_snapshots_at_location{location="groningen"`) ||
		!strings.Contains(body, `kluis_snapshots_at_location{location="amsterdam",tenant="praktijk-a"} 1`) {
		t.Errorf("metrics with groningen away:\n%s", body)
	}
}

// Issue 14: the nightly verify reads a rolling slice of the packs; a
// flipped bit in one pack (which a check without --read-data does not
// see) is found within policy.verify.read_data_period, the metric drops
// to 0 and status turns red — and stays red on the following nights while
// the pack is still damaged.
func TestVerifyFindsCorruptionWithinPeriod(t *testing.T) {
	ctx := context.Background()
	f, _ := historyFixture(t, "verify: {read_data_period: 168h}, rpo_target: 400h")
	if err := f.d.runBackup(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	var packs []string
	filepath.Walk(filepath.Join(f.dir, "loc-a", "praktijk-a", "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) == 0 {
		t.Fatal("no pack")
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if cs, err := f.d.Appliance().OpenRepo(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	} else if res, err := cs.Check(ctx, repo.CheckOptions{}); err != nil || !res[0].OK() {
		t.Fatalf("a check without reading data sees the flipped bit (%v %v): this test would prove nothing", res, err)
	}

	failedOn := -1
	for night := range 7 {
		f.clk.Set(time.Date(2026, 6, 2+night, 3, 0, 0, 0, ams))
		err := f.d.runVerify(ctx, "praktijk-a")
		if err != nil {
			if !strings.Contains(err.Error(), "amsterdam") {
				t.Errorf("verify error does not name the location: %v", err)
			}
			failedOn = night
			break
		}
		if st := statusOf(t, f); !st.OK() {
			t.Fatalf("status red after a clean verify: %+v", st)
		}
	}
	if failedOn < 0 {
		t.Fatal("verify did not find the damaged pack within the 7-day period")
	}
	// The one pack is read on its own night of the seven, not before: the
	// slices are a rotation, not a full read every night.
	h, err := repo.ParseHash(filepath.Base(packs[0]))
	if err != nil || len(packs) != 1 {
		t.Fatalf("want exactly one pack: %v %v", packs, err)
	}
	want := -1
	for night := range 7 {
		if int(time.Date(2026, 6, 2+night, 3, 0, 0, 0, ams).Unix()/86400)%7 == packSlot(h, 7) {
			want = night
		}
	}
	if failedOn != want {
		t.Errorf("found on night %d, want night %d (the pack's slot %d)", failedOn+1, want+1, packSlot(h, 7))
	}
	if st := statusOf(t, f); st.OK() || !strings.Contains(strings.Join(st.Problems, ";"), "last verify") {
		t.Errorf("status after a failed verify: %+v", st)
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, `kluis_verify_ok{tenant="praktijk-a"} 0`) {
		t.Errorf("metrics do not show the failed verify")
	}
	// The next night reads another slice, and the damaged one again.
	f.clk.Advance(24 * time.Hour)
	if err := f.d.runVerify(ctx, "praktijk-a"); err == nil {
		t.Error("the next night's verify passed while the pack is still damaged")
	}
	if st := statusOf(t, f); st.OK() {
		t.Error("status green while the pack is still damaged")
	}
}

// TestJobTimeoutIsAVerdict (new-user trial, 2026-12-02): a verify or
// reconcile job cut off by policy.job_timeout (here waiting for the
// tenant's lock, which someone holds) used to count as a shutdown for
// verify: nothing recorded, kluis_verify_ok unchanged, status silent. Now
// a timeout is a failure recorded in the history that says so, fails
// status and sets kluis_verify_ok to 0; a shutdown still records nothing.
func TestJobTimeoutIsAVerdict(t *testing.T) {
	ctx := context.Background()
	f, _ := historyFixture(t, "")
	if err := f.d.runBackup(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	held, err := f.d.Appliance().Lock(ctx, "praktijk-a", true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	spec, err := RetentionSpec(f.d.Appliance().Cfg, ams)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]func(context.Context) error{}
	for _, j := range f.d.historyJobs("praktijk-a", spec, lastOK{}) {
		jobs[j.Kind] = withDeadline(j, 300*time.Millisecond)
	}
	// A shutdown first: no verdict.
	sctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := jobs[KindVerify](sctx); err == nil {
		t.Fatal("verify ran although the tenant is locked")
	}
	if r := lastVerify(history(t, f), "praktijk-a"); r != nil {
		t.Fatalf("a verify cut off by shutdown was recorded: %+v", r)
	}
	for _, kind := range []string{KindVerify, KindReconcile} {
		if err := jobs[kind](ctx); err == nil || !strings.Contains(err.Error(), "policy.job_timeout") {
			t.Errorf("%s with the tenant locked: %v, want cancelled after policy.job_timeout", kind, err)
		}
		var rec *appliance.Record
		for _, r := range history(t, f) {
			if r.Job == kind {
				rec = &r
			}
		}
		if rec == nil || rec.OK || !strings.Contains(rec.Error, "cancelled after policy.job_timeout") {
			t.Errorf("%s cut off by job_timeout: history record %+v", kind, rec)
		}
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, `kluis_verify_ok{tenant="praktijk-a"} 0`) {
		t.Error("kluis_verify_ok is not 0 after a verify cut off by job_timeout")
	}
	for _, ts := range Status(ctx, f.d.Appliance(), f.clk.Now()).Tenants {
		if p := strings.Join(ts.Problems, "; "); !strings.Contains(p, "last verify") || !strings.Contains(p, "job_timeout") {
			t.Errorf("status after a timed-out verify: %+v", ts)
		}
	}
}

func history(t *testing.T, f *fixture) []appliance.Record {
	t.Helper()
	h, err := f.d.Appliance().History()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
