package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed signing key, so sample exports and fuzz seeds are
// reproducible. It signs nothing outside tests.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

var t0 = time.Date(2026, 1, 4, 6, 0, 0, 0, time.UTC)

type sampleLoc struct{ name, site, provider string }

var sampleLocs = []sampleLoc{{"amsterdam", "Amsterdam", "provider-a"}, {"groningen", "Groningen", "provider-b"}}

// sampleReport is a realistic report of a weekly restore test: tenant,
// week number (which location it alternates to) and whether it fails,
// and how. Check details are spelled as restore/restoretest writes them
// (runner.go, rpo.go), so the example in docs/evidence.md is real.
func sampleReport(tenant, engine string, week int, fail string) Report {
	started := t0.Add(time.Duration(week) * 7 * 24 * time.Hour).Add(time.Duration(len(tenant)) * 3 * time.Minute)
	loc := sampleLocs[week%2]
	age := 5*time.Hour + 12*time.Minute
	if fail == "rpo" {
		age = 53 * time.Hour // backups failed for two nights
	}
	snap := started.Add(-age)
	rto := 95.0 + float64(len(tenant)*7+week*3)
	gap := 24*time.Hour + 5*time.Minute
	// A few random hex digits, fixed per test: ScratchName's suffix.
	rnd := fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint("scratch", tenant, week))))[:6]
	scratch := "kluis_rt_" + strings.ReplaceAll(tenant, "-", "_") + "_" + started.Format("20060102150405") + "_" + rnd
	r := Report{
		Schema: Schema, Appliance: "ams-1", Tenant: tenant, Engine: engine, Verdict: Pass,
		FailedChecks: []string{}, Started: started, Finished: started.Add(time.Duration(rto+4) * time.Second),
		Snapshot: Snapshot{ID: fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(tenant, week)))), Time: snap, Tables: 4, Rows: 48210 + int64(week*97), Bytes: 7<<20 + int64(week*4096)},
		Location: Location{Name: loc.name, Country: "NL", Site: loc.site, Provider: loc.provider},
		Tables: []Table{
			{Name: "clients", Rows: 1200, RowsRestored: 1200, Bytes: 210_000, Fingerprint: fp(tenant, "clients"), RestoredFingerprint: fp(tenant, "clients"), Match: true},
			{Name: "appointments", Rows: 31850, RowsRestored: 31850, Bytes: 4_100_000, Fingerprint: fp(tenant, "appointments"), RestoredFingerprint: fp(tenant, "appointments"), Match: true},
			{Name: "notes", Rows: 15060 + int64(week*97), RowsRestored: 15060 + int64(week*97), Bytes: 3_020_000, Fingerprint: fp(tenant, "notes"), RestoredFingerprint: fp(tenant, "notes"), Match: true},
			{Name: "audit_log", Rows: 100, RowsRestored: 100, Bytes: 9_000, Fingerprint: fp(tenant, "audit_log"), RestoredFingerprint: fp(tenant, "audit_log"), Match: true},
		},
		Probes: []Probe{{Name: "clients-present", OK: true, Expected: ">= 1000", Got: "1200"}, {Name: "recent-appointments", OK: true, Expected: ">= 1", Got: "212"}},
		RTO:    RTO{TargetSeconds: 4 * 3600, MeasuredSeconds: rto, OK: true},
		RPO: RPO{TargetSeconds: 26 * 3600, SnapshotAgeSeconds: age.Seconds(), WindowDays: 30, SnapshotsInWindow: 30,
			LargestGapSeconds: gap.Seconds(), LargestGapFrom: snap.Add(-72 * time.Hour), LargestGapTo: snap.Add(-72*time.Hour + gap), OK: true},
		Kluis: "0.9.0",
	}
	blobs := 1874 + week*3
	checks := []struct {
		name string
		secs float64
		det  string
	}{
		{CheckSnapshot, 0.2, fmt.Sprintf("snapshot %s of %s at %s: %d tables, %d rows, %d bytes",
			r.Snapshot.ID[:8], snap.Format(time.RFC3339), loc.name, r.Snapshot.Tables, r.Snapshot.Rows, r.Snapshot.Bytes)},
		{CheckFetch, rto * 0.3, fmt.Sprintf("5 streams, %d blobs in 1 pack, %d bytes read from %s and verified", blobs, r.Snapshot.Bytes+int64(blobs)*40+1024, loc.name)},
		{CheckRestore, rto * 0.6, "restored into scratch database " + scratch},
		{CheckFingerprints, rto * 0.08, fmt.Sprintf("all 4 tables (%d rows) match the manifest's row counts and fingerprints", r.Snapshot.Rows)},
		{CheckProbes, 0.3, "2 probes returned the expected result"},
		{CheckRTO, 0, fmt.Sprintf("restore took %s; target %s", time.Duration(rto)*time.Second, 4*time.Hour)},
		{CheckRPO, 0, fmt.Sprintf("snapshot age %s; largest gap %s over 30 days (30 snapshots in the window); target %s", age, gap, 26*time.Hour)},
		{CheckDropScratch, 0.1, "scratch database " + scratch + " removed and verified gone"},
	}
	for _, c := range checks {
		r.Checks = append(r.Checks, Check{Name: c.name, OK: true, Seconds: c.secs, Detail: c.det})
	}
	switch fail {
	case "fingerprint":
		r.Tables[2].RestoredFingerprint, r.Tables[2].Match, r.Tables[2].RowsRestored = fp(tenant, "notes, 3 rows fewer"), false, r.Tables[2].Rows-3
		r.Checks[3].OK, r.Checks[3].Detail = false, "1 of 4 tables differ from the manifest: notes"
		r.FailedChecks, r.Verdict = []string{CheckFingerprints}, Fail
	case "rpo":
		r.RPO.OK = false
		r.Checks[6].OK, r.Checks[6].Detail = false, fmt.Sprintf("snapshot is %s old, over the RPO target %s", age, 26*time.Hour)
		r.FailedChecks, r.Verdict = []string{CheckRPO}, Fail
	}
	return r
}

// fp stands for a table's keyed fingerprint (64 hex digits).
func fp(tenant, table string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(tenant+"/"+table)))
}

var sampleTenants = []struct{ id, engine string }{
	{"huisarts-de-linde", "postgres"}, {"fysio-noord", "mariadb"}, {"tandarts-zuid", "sqlite"},
}

// sampleStore appends eight weeks of weekly restore tests of three tenants,
// with two failures, to a store in dir.
func sampleStore(t testing.TB, dir string) *Store {
	t.Helper()
	s := OpenStore(dir, "ams-1", testKey(1), nil)
	for week := range 8 {
		for i, tn := range sampleTenants {
			fail := ""
			switch {
			case week == 1 && i == 1:
				fail = "fingerprint"
			case week == 6 && i == 2:
				fail = "rpo"
			}
			r := sampleReport(tn.id, tn.engine, week, fail)
			s.Now = func() time.Time { return r.Finished.Add(2 * time.Second) }
			if _, _, err := s.Append(context.Background(), &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestWriteSampleExport writes the export of a realistic sample chain to
// $KLUIS_EVIDENCE_EXPORT (scripts/evidence-screenshot.sh uses it), else to
// a temp dir, and checks what it wrote.
func TestWriteSampleExport(t *testing.T) {
	out := os.Getenv("KLUIS_EVIDENCE_EXPORT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "export")
	}
	s := sampleStore(t, t.TempDir())
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	amsterdam, _ := time.LoadLocation("Europe/Amsterdam")
	res, err := Export(out, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), TimeZone: amsterdam,
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, amsterdam), To: time.Date(2026, 3, 1, 0, 0, 0, 0, amsterdam),
		Now: time.Date(2026, 3, 2, 9, 30, 0, 0, amsterdam), Kluis: "0.9.0"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 24 || res.First != 1 || res.Last != 24 || !res.Verification.OK() {
		t.Fatalf("export: %+v", res)
	}
	html, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"huisarts-de-linde", "fysio-noord", "tandarts-zuid", "FAIL", "PASS", "Groningen", res.PublicKey, "Verified at export"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "src=", "@import"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("index.html is not self-contained: it has %q", bad)
		}
	}
	t.Logf("sample export in %s", out)
}

// TestDocExample: the example report in docs/evidence.md is report 5 of
// the sample export, spread out: its link, signature and every check
// detail are the real ones (regenerate the example when sampleReport
// changes).
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "evidence.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(doc), "### Example")
	if !ok {
		t.Fatal("docs/evidence.md has no example")
	}
	recs, err := sampleStore(t, t.TempDir()).Records()
	if err != nil {
		t.Fatal(err)
	}
	rec := recs[4]
	wants := []string{
		fmt.Sprintf(`"seq": %d,`, rec.Seq), fmt.Sprintf(`"prev": %q,`, rec.Prev), fmt.Sprintf(`"time": %q,`, rec.Time.Format(time.RFC3339)),
		fmt.Sprintf(`"sig": %q}`, base64.StdEncoding.EncodeToString(rec.line.Sig)),
		fmt.Sprintf(`"engine": %q,`, rec.Report.Engine), fmt.Sprintf(`"id": %q,`, rec.Report.Snapshot.ID),
	}
	for _, c := range rec.Report.Checks {
		wants = append(wants, fmt.Sprintf(`{"name": %q, "ok": %t, "seconds": %s, "detail": %q}`, c.Name, c.OK, strconv.FormatFloat(c.Seconds, 'f', -1, 64), c.Detail))
	}
	for _, w := range wants {
		if !strings.Contains(example, w) {
			t.Errorf("the example in docs/evidence.md lacks %s", w)
		}
	}
}
