package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"filippo.io/age"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
	"github.com/kluis-nl/kluis/repo/local"
)

// appendN appends n sample reports (tenants in turn) to s.
func appendN(t testing.TB, s *Store, n int) []Record {
	t.Helper()
	var out []Record
	for i := range n {
		tn := sampleTenants[i%len(sampleTenants)]
		r := sampleReport(tn.id, tn.engine, i/len(sampleTenants), "")
		s.Now = func() time.Time { return r.Finished.Add(time.Second) }
		rec, res, err := s.Append(context.Background(), &r)
		if err != nil {
			t.Fatal(err)
		}
		for _, lr := range res {
			if !lr.OK {
				t.Fatalf("append %d: location %s: %s", i+1, lr.Location, lr.Error)
			}
		}
		out = append(out, rec)
	}
	return out
}

func TestAppendRecordsRoundTrip(t *testing.T) {
	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), nil)
	if recs, err := s.Records(); err != nil || len(recs) != 0 {
		t.Fatalf("empty store: %v, %d records", err, len(recs))
	}
	want := sampleReport("huisarts-de-linde", "postgres", 0, "fingerprint")
	want.Schema, want.Appliance, want.Probes = "", "", nil // filled in by Append
	rec, res, err := s.Append(context.Background(), &want)
	if err != nil || res != nil {
		t.Fatalf("append: %v %v", err, res)
	}
	if rec.Seq != 1 || rec.Prev != chain.ZeroHash || rec.Report.Schema != Schema || rec.Report.Appliance != "ams-1" || rec.Report.Probes == nil {
		t.Fatalf("first record: %+v", rec)
	}
	appended := append([]Record{rec}, appendN(t, s, 4)...)

	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d records", len(recs))
	}
	var log bytes.Buffer
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Hash != appended[i].Hash || !reflect.DeepEqual(r.Report, appended[i].Report) {
			t.Errorf("record %d: %+v, appended %+v", i+1, r, appended[i])
		}
		if i > 0 && r.Prev != recs[i-1].Hash {
			t.Errorf("record %d does not link to %d", i+1, i)
		}
		data, err := os.ReadFile(filepath.Join(state, DirName, FileName(r.Seq)))
		if err != nil || !bytes.Equal(data, r.Raw) {
			t.Errorf("file of record %d: %v", i+1, err)
		}
		if fi, err := os.Stat(filepath.Join(state, DirName, FileName(r.Seq))); err != nil || fi.Mode().Perm() != 0o400 {
			t.Errorf("file of record %d: mode %v, %v", i+1, fi.Mode(), err)
		}
		log.Write(data)
	}
	// The report files, concatenated in order, are an evidence/chain log.
	if h, err := chain.Verify(&log, s.PublicKey()); err != nil || h.Count != 5 || h.Hash != recs[4].Hash {
		t.Errorf("concatenated files as a chain log: %v %+v", err, h)
	}
	// The report round-trips: what the runner filled in is what is read.
	got := recs[0].Report
	want.Schema, want.Appliance, want.Probes = Schema, "ams-1", []Probe{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report did not round-trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestAppendRefusesBadReports(t *testing.T) {
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), nil)
	ok := sampleReport("fysio-noord", "mariadb", 0, "")
	for name, edit := range map[string]func(r *Report){
		"other appliance":     func(r *Report) { r.Appliance = "ams-2" },
		"unknown schema":      func(r *Report) { r.Schema = "kluis-restore-test/v2" },
		"no tenant":           func(r *Report) { r.Tenant = "" },
		"no verdict":          func(r *Report) { r.Verdict = "" },
		"PASS with a failure": func(r *Report) { r.FailedChecks = []string{CheckRPO} },
	} {
		r := ok
		edit(&r)
		if _, _, err := s.Append(context.Background(), &r); err == nil {
			t.Errorf("%s: appended", name)
		}
	}
	if _, _, err := OpenStore(t.TempDir(), "../x", testKey(1), nil).Append(context.Background(), &ok); err == nil {
		t.Error("an appliance id that is not a name was accepted")
	}
	if recs, err := s.Records(); err != nil || len(recs) != 0 {
		t.Errorf("refused reports were stored: %d, %v", len(recs), err)
	}
}

// TestConcurrentAppends: goroutines of one process and several processes
// appending at once give one valid chain with every report.
func TestConcurrentAppends(t *testing.T) {
	if dir := os.Getenv("KLUIS_EVIDENCE_HELPER_DIR"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("KLUIS_EVIDENCE_HELPER_N"))
		s := OpenStore(dir, "ams-1", testKey(1), nil)
		for i := range n {
			r := sampleReport("tandarts-zuid", "sqlite", i, "")
			if _, _, err := s.Append(context.Background(), &r); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	state := t.TempDir()
	const goroutines, perGoroutine, procs, perProc = 8, 5, 3, 5
	var cmds []*exec.Cmd
	for range procs {
		c := exec.Command(os.Args[0], "-test.run=^TestConcurrentAppends$")
		c.Env = append(os.Environ(), "KLUIS_EVIDENCE_HELPER_DIR="+state, fmt.Sprintf("KLUIS_EVIDENCE_HELPER_N=%d", perProc))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := OpenStore(state, "ams-1", testKey(1), nil) // a store each, like separate commands
			for i := range perGoroutine {
				r := sampleReport(sampleTenants[g%3].id, sampleTenants[g%3].engine, i, "")
				if _, _, err := s.Append(context.Background(), &r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs, err := OpenStore(state, "ams-1", testKey(1), nil).Records()
	if err != nil {
		t.Fatal(err)
	}
	if want := goroutines*perGoroutine + procs*perProc; len(recs) != want {
		t.Fatalf("%d records, want %d", len(recs), want)
	}
}

// TestCrashLeftovers: a crash mid-write leaves at most a temporary file
// (the record is linked into place only when complete and fsynced); it is
// never read as a report, and the next Append removes it.
func TestCrashLeftovers(t *testing.T) {
	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), nil)
	recs := appendN(t, s, 3)
	dir := filepath.Join(state, DirName)
	half := recs[2].Raw[:len(recs[2].Raw)/2]
	for name, data := range map[string][]byte{".tmp-123": half, ".tmp-456": nil, ".tmp-789": recs[1].Raw} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Records(); err != nil || len(got) != 3 {
		t.Fatalf("with leftovers: %d records, %v", len(got), err)
	}
	appendN(t, s, 1)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != lockName && e.Name() != CheckpointDir && filepath.Ext(e.Name()) != ".json" {
			t.Errorf("leftover %s survived an Append", e.Name())
		}
	}
	if got, err := s.Records(); err != nil || len(got) != 4 {
		t.Fatalf("after the next append: %d records, %v", len(got), err)
	}
}

// TestAppendRefusesBrokenHead: a chain whose newest report does not
// verify is not extended.
func TestAppendRefusesBrokenHead(t *testing.T) {
	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), nil)
	recs := appendN(t, s, 2)
	p := filepath.Join(state, DirName, FileName(2))
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, bytes.Replace(recs[1].Raw, []byte(`"PASS"`), []byte(`"FAIL"`), 1), 0o400); err != nil {
		t.Fatal(err)
	}
	r := sampleReport("fysio-noord", "mariadb", 5, "")
	if _, _, err := s.Append(context.Background(), &r); err == nil {
		t.Fatal("appended to a chain whose newest report was edited")
	}
	if _, err := s.Records(); err == nil {
		t.Fatal("Records accepted an edited report")
	}
	// Another key's store refuses too.
	if _, _, err := OpenStore(state, "ams-1", testKey(9), nil).Append(context.Background(), &r); err == nil {
		t.Fatal("appended with another key")
	}
}

func TestStateChainMissingStart(t *testing.T) {
	state := t.TempDir()
	s := OpenStore(state, "ams-1", testKey(1), nil)
	appendN(t, s, 3)
	os.Remove(filepath.Join(state, DirName, FileName(1)))
	if _, err := s.Records(); err == nil {
		t.Fatal("a state directory without report 1 verified")
	}
}

// TestLocationDownThenSync: a location that is down during Append is
// reported, the report is safe in the state directory and at the other
// location, and Sync (or the next Append) uploads what it lacks.
func TestLocationDownThenSync(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	a := local.New("amsterdam", t.TempDir())
	g := faulty.New(local.New("groningen", t.TempDir()), faulty.Options{})
	s := OpenStore(state, "ams-1", testKey(1), []repo.Location{a, g})
	appendN(t, s, 2)

	g.SetDown(errors.New("connection refused"))
	r := sampleReport("fysio-noord", "mariadb", 1, "")
	rec, res, err := s.Append(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].OK || res[1].OK || res[1].Location != "groningen" || res[1].Error == "" {
		t.Fatalf("results with groningen down: %+v", res)
	}
	if _, err := a.Stat(ctx, LeafObject("ams-1", testKey(1).Public().(ed25519.PublicKey), LeafHash(rec))); err != nil {
		t.Fatalf("amsterdam lacks the report: %v", err)
	}
	if res, err := s.Sync(ctx); err != nil || res[1].OK {
		t.Fatalf("sync while down: %+v %v", res, err)
	}
	g.SetUp()
	res, err = s.Sync(ctx)
	if err != nil || !res[0].OK || !res[1].OK {
		t.Fatalf("sync: %+v %v", res, err)
	}
	for _, l := range []repo.Location{a, g} {
		v := verifyLocation(t, s, l)
		if !v.OK() || v.Last != 3 {
			t.Fatalf("location copy %s: %+v", l.Name(), v)
		}
	}

	// Down again: the next Append catches up instead of Sync.
	g.SetDown(errors.New("connection refused"))
	appendNLenient(t, s, 2)
	g.SetUp()
	if _, res, err := s.Append(ctx, &r); err != nil || !res[1].OK {
		t.Fatalf("append after coming back: %+v %v", res, err)
	}
	if n := countLeaves(t, g); n != 6 {
		t.Fatalf("groningen holds %d reports after catching up, want 6", n)
	}

	// Down once more: the daemon's hourly CatchUp copies what is missing.
	g.SetDown(errors.New("connection refused"))
	appendNLenient(t, s, 1)
	if res := s.CatchUp(ctx); res[1].OK {
		t.Fatalf("catch-up while down: %+v", res)
	}
	g.SetUp()
	if res := s.CatchUp(ctx); !res[0].OK || !res[1].OK {
		t.Fatalf("catch-up: %+v", res)
	}
	if n := countLeaves(t, g); n != 7 {
		t.Fatalf("groningen holds %d reports after the catch-up, want 7", n)
	}

	// A location whose copy differs (it cannot be replaced) fails Sync.
	recs, _ := s.Records()
	p := filepath.Join(a.Root(), filepath.FromSlash(LeafObject("ams-1", testKey(1).Public().(ed25519.PublicKey), LeafHash(recs[1]))))
	os.Chmod(p, 0o600)
	os.WriteFile(p, []byte("x\n"), 0o600)
	if res, err := s.Sync(ctx); err != nil || res[0].OK {
		t.Fatalf("sync with a differing copy: %+v %v", res, err)
	}
}

// appendNLenient appends n reports, accepting location failures.
func appendNLenient(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := range n {
		r := sampleReport("huisarts-de-linde", "postgres", i, "")
		if _, _, err := s.Append(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUploadComparesContent: a location's copy of a report with the same
// size as the state directory's but other bytes is reported by Sync (which
// reads every copy back); Append checks only sizes of older copies, so it
// uploads the new report and leaves the finding to Sync.
func TestUploadComparesContent(t *testing.T) {
	ctx := context.Background()
	a := local.New("amsterdam", t.TempDir())
	g := local.New("groningen", t.TempDir())
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{a, g})
	recs := appendN(t, s, 3)
	p := filepath.Join(a.Root(), filepath.FromSlash(LeafObject("ams-1", testKey(1).Public().(ed25519.PublicKey), LeafHash(recs[1]))))
	// The copy replaced by a sealed, edited report of the same size.
	same := bytes.Replace(recs[1].Raw, []byte(`"rows":1200,`), []byte(`"rows":1201,`), 1)
	if len(same) != len(recs[1].Raw) || bytes.Equal(same, recs[1].Raw) {
		t.Fatal("test edit changed the size or nothing")
	}
	sealed, err := s.seal(same)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := s.Sync(ctx)
	if err != nil || len(res) != 2 || res[0].OK || !strings.Contains(res[0].Error, "the sealed copy of report "+FileName(2)+" is not the report the appliance wrote") || !res[1].OK {
		t.Fatalf("sync with a same-size differing copy: %+v %v", res, err)
	}
	r := sampleReport("fysio-noord", "mariadb", 1, "")
	_, res, err = s.Append(ctx, &r)
	if err != nil || !res[0].OK || !res[1].OK {
		t.Fatalf("append next to a same-size differing copy: %+v %v", res, err)
	}
	if res, _ := s.Sync(ctx); res[0].OK {
		t.Fatalf("sync after the append no longer sees the differing copy: %+v", res)
	}
	if n := countLeaves(t, a); n != 4 {
		t.Fatalf("the new report was not uploaded next to the differing copy: %d copies", n)
	}
}

// TestUploadOnlyVerified: a report file in the state directory that does
// not verify is never copied to a location, even by Append (which checks
// only the newest report before it extends the chain).
func TestUploadOnlyVerified(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	g := faulty.New(local.New("groningen", t.TempDir()), faulty.Options{})
	s := OpenStore(state, "ams-1", testKey(1), []repo.Location{g})
	appendN(t, s, 1)
	g.SetDown(errors.New("connection refused"))
	appendNLenient(t, s, 2)
	g.SetUp()
	// Report 2, never uploaded, is edited in the state directory (report 3
	// is the newest: Append still extends the chain).
	p := filepath.Join(state, DirName, FileName(2))
	os.Chmod(p, 0o600)
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(b, []byte(`"verdict":"PASS"`), []byte(`"verdict":"FAIL"`), 1), 0o400); err != nil {
		t.Fatal(err)
	}
	r := sampleReport("fysio-noord", "mariadb", 1, "")
	_, res, err := s.Append(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].OK || !strings.Contains(res[0].Error, FileName(2)) || !strings.Contains(res[0].Error, "does not verify") {
		t.Fatalf("append with an edited report in the state directory: %+v", res)
	}
	files, _, err := ReadLocation(ctx, g, "ams-1", s.PublicKey(), mustSealIdentity(t, s))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != FileName(1)+" "+FileName(3)+" "+FileName(4) {
		t.Fatalf("location holds %v: want reports 1, 3 and 4 (not the edited report 2)", got)
	}
	if res, err := s.Sync(ctx); err == nil {
		t.Fatalf("sync of a chain that does not verify: %+v", res)
	}
}

// manyTables is a report of n tables, as a tenant with n tables gets.
func manyTables(n int) Report {
	r := sampleReport("ziekenhuis-oost", "postgres", 0, "")
	r.Tables = make([]Table, n)
	for i := range r.Tables {
		name := fmt.Sprintf("schema_%03d.table_%05d", i/100, i)
		r.Tables[i] = Table{Name: name, Rows: int64(i), RowsRestored: int64(i), Bytes: int64(i) * 100,
			Fingerprint: fp("ziekenhuis-oost", name), RestoredFingerprint: fp("ziekenhuis-oost", name), Match: true}
	}
	r.Snapshot.Tables = n
	return r
}

// TestLargeReport: a tenant with 20,000 tables (a report of about 5 MB)
// records evidence that verifies, in the state directory and at a
// location; a report too large for a record is refused by
// Append with a clear error, and nothing is written.
func TestLargeReport(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	a := local.New("amsterdam", t.TempDir())
	s := OpenStore(state, "ams-1", testKey(1), []repo.Location{a})
	appendN(t, s, 1)
	r := manyTables(20_000)
	rec, res, err := s.Append(ctx, &r)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("append of a report of 20,000 tables: %v %+v", err, res)
	}
	if len(rec.Raw) < 1<<20 {
		t.Fatalf("the report of 20,000 tables is only %d bytes: not a test of the cap", len(rec.Raw))
	}
	v := verifyLocation(t, s, a)
	if !v.OK() || len(v.Records) != 2 || len(v.Records[1].Report.Tables) != 20_000 {
		t.Fatalf("location copy: %+v", v)
	}

	huge := manyTables(20_000)
	huge.Checks[1].Detail = strings.Repeat("x", 12<<20) // with the tables, over 16 MiB
	if _, _, err := s.Append(ctx, &huge); err == nil || !strings.Contains(err.Error(), "larger than the 16 MiB a report may be") {
		t.Fatalf("append of a report larger than a record may be: %v", err)
	}
	if names, _ := s.names(); len(names) != 2 {
		t.Fatalf("%d report files after a refused append, want 2", len(names))
	}
}

// TestAppendRefusesRenamedAppliance: after appliance.id changed, Append
// refuses to extend the old appliance's chain (every new report would look
// inserted from another appliance) and says how to fix it.
func TestAppendRefusesRenamedAppliance(t *testing.T) {
	state := t.TempDir()
	appendN(t, OpenStore(state, "ams-1", testKey(1), nil), 1)
	s := OpenStore(state, "ams-2", testKey(1), nil)
	r := sampleReport("praktijk-a", "sqlite", 1, "")
	r.Appliance = ""
	_, _, err := s.Append(context.Background(), &r)
	if err == nil || !strings.Contains(err.Error(), `belongs to appliance "ams-1" but appliance.id is now "ams-2"`) {
		t.Fatalf("append after a rename: %v", err)
	}
	if reps, _ := filepath.Glob(filepath.Join(state, DirName, "*.json")); len(reps) != 1 {
		t.Fatalf("%d reports after a refused append, want 1", len(reps))
	}
}

func mustSealIdentity(t *testing.T, s *Store) age.Identity {
	t.Helper()
	id, err := s.SealIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// verifyLocation verifies a location's copy of s's log: the sealed
// reports opened with the appliance's identity.
func verifyLocation(t *testing.T, s *Store, l repo.Location) *Verification {
	t.Helper()
	files, _, err := ReadLocation(context.Background(), l, "ams-1", s.PublicKey(), mustSealIdentity(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return Verify(files, s.PublicKey(), VerifyOptions{})
}

// countLeaves counts the sealed reports at a location.
func countLeaves(t *testing.T, l repo.Location) int {
	t.Helper()
	n := 0
	if err := l.List(context.Background(), LogPrefix("ams-1", testKey(1).Public().(ed25519.PublicKey))+"leaf/", func(repo.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSquattedNames: location names are content addresses, unknown until
// the report exists. Someone who learns one (from an export's tree.txt)
// while a location is down and plants an object there first is found:
// the read-back does not open to the report, and sync says squatted.
// The old predictable names (_evidence/APPLIANCE/NNNNNNNN.json) are no
// longer written, so squatting them blocks nothing.
func TestSquattedNames(t *testing.T) {
	ctx := context.Background()
	g := faulty.New(local.New("groningen", t.TempDir()), faulty.Options{})
	s := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{g})
	appendN(t, s, 1)
	for seq := uint64(2); seq <= 5; seq++ {
		if err := g.Put(ctx, LocationPrefix("ams-1")+FileName(seq), []byte("squatted\n")); err != nil {
			t.Fatal(err)
		}
	}
	g.SetDown(errors.New("connection refused"))
	appendNLenient(t, s, 1)
	g.SetUp()
	recs, _ := s.Records()
	rec := recs[1]
	if err := g.Put(ctx, LeafObject("ams-1", testKey(1).Public().(ed25519.PublicKey), LeafHash(rec)), []byte("age-encryption.org/v1\nsquatted\n")); err != nil {
		t.Fatal(err)
	}
	res, err := s.Sync(ctx)
	if err != nil || res[0].OK || !strings.Contains(res[0].Error, "the sealed copy of report "+FileName(rec.Seq)+" is not the report the appliance wrote (squatted or replaced") {
		t.Fatalf("sync over a squatted leaf: %+v %v", res, err)
	}
	// A planted checkpoint object: named by a hash its content lacks.
	_, cp, _ := s.Checkpoint()
	name := CheckpointObject("ams-1", testKey(1).Public().(ed25519.PublicKey), append([]byte("x"), cp...))
	if err := g.Put(ctx, name, cp); err != nil {
		t.Fatal(err)
	}
	res, err = s.CheckLocations(ctx)
	if err != nil || res[0].OK || !strings.Contains(res[0].Error, name+" does not hold what its name says (squatted or replaced)") {
		t.Fatalf("check with a planted checkpoint: %+v %v", res, err)
	}
}

// TestRecoveredApplianceNewKey (issue 18 point 2): an appliance rebuilt
// after a disaster, with a new signing key and the same appliance id,
// writes its log beside the old one (another key prefix): nothing
// collides with the old write-once objects, sync is clean, and the old
// log stays readable with the offline recovery identity and verifiable
// with the old public key.
func TestRecoveredApplianceNewKey(t *testing.T) {
	ctx := context.Background()
	recovery, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	l := local.New("amsterdam", t.TempDir())
	old := OpenStore(t.TempDir(), "ams-1", testKey(1), []repo.Location{l})
	old.Recipients = []age.Recipient{recovery.Recipient()}
	appendN(t, old, 3)

	// The disaster: state and key gone. The new appliance: new key.
	fresh := OpenStore(t.TempDir(), "ams-1", testKey(5), []repo.Location{l})
	fresh.Recipients = []age.Recipient{recovery.Recipient()}
	r := sampleReport("praktijk-a", "postgres", 9, "")
	if _, res, err := fresh.Append(ctx, &r); err != nil || !res[0].OK {
		t.Fatalf("the recovered appliance's first report: %+v %v", res, err)
	}
	if res, err := fresh.Sync(ctx); err != nil || !res[0].OK {
		t.Fatalf("sync on the recovered appliance: %+v %v", res, err)
	}
	files, notes, err := ReadLocation(ctx, l, "ams-1", old.PublicKey(), recovery)
	if err != nil || len(files) != 3 || len(notes) != 3 {
		t.Fatalf("the old log with the recovery identity: %d reports, %d checkpoints, %v", len(files), len(notes), err)
	}
	if v := Verify(files, old.PublicKey(), VerifyOptions{}); !v.OK() || v.Last != 3 {
		t.Fatalf("the old log does not verify with the old key: %+v", v)
	}
	if v := verifyLocationWith(t, fresh, l); !v.OK() || v.Last != 1 {
		t.Fatalf("the new log: %+v", v)
	}
}

func verifyLocationWith(t *testing.T, s *Store, l repo.Location) *Verification {
	t.Helper()
	files, _, err := ReadLocation(context.Background(), l, "ams-1", s.PublicKey(), mustSealIdentity(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return Verify(files, s.PublicKey(), VerifyOptions{})
}
