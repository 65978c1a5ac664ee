package restoretest_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

const sqliteTenant = `
  - id: praktijk-a
    engine: sqlite
    path: ./praktijk.db
    probes:
      - {name: clients-present, sql: "SELECT count(*) FROM clients", min: 1, record_result: true}
      - {name: no-births-after-2100, sql: "SELECT count(*) FROM clients WHERE birth_date > '2100-01-01'", expect: "0", record_result: true}
      - {name: some-active, sql: "SELECT EXISTS (SELECT 1 FROM clients WHERE active)", expect: "1"}
  - {id: docs, engine: files}
`

// sqliteEnv is an appliance with one synthetic sqlite practice, backed up
// once at the clock's start.
func sqliteEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.synthSQLite("praktijk.db", synth.Tiny)
	e.writeConfig(sqliteTenant, "")
	e.backup("praktijk-a")
	return e
}

// run runs a restore test an hour after the clock's time and checks that
// no scratch file remains.
func (e *env) run(opts restoretest.Options) *evidence.Report {
	e.t.Helper()
	if opts.Tenant == "" {
		opts.Tenant = "praktijk-a"
	}
	e.clk.Advance(time.Hour)
	rep, err := restoretest.Run(testCtx(e.t), e.a, opts)
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	if left := e.scratchLeft(); len(left) > 0 {
		e.t.Fatalf("scratch files left behind: %v", left)
	}
	return rep
}

// TestSQLitePass: a clean backup passes at both locations, the default
// location alternates so two runs prove both, and the report carries the
// tables, the numeric probe results, RTO and RPO — and no personal data.
func TestSQLitePass(t *testing.T) {
	e := sqliteEnv(t)
	var reports []evidence.Report
	var locs []string
	for i := 0; i < 3; i++ {
		rep := e.run(restoretest.Options{Previous: reports, Version: "test"})
		wantVerdict(t, rep, evidence.Pass)
		reports = append(reports, *rep)
		locs = append(locs, rep.Location.Name)
	}
	if got := strings.Join(locs, ","); got != "amsterdam,groningen,amsterdam" {
		t.Errorf("locations tested: %s; want alternation amsterdam,groningen,amsterdam", got)
	}
	rep := reports[0]
	if rep.Schema != evidence.Schema || rep.Appliance != "ams-1" || rep.Tenant != "praktijk-a" || rep.Engine != "sqlite" || rep.Kluis != "test" {
		t.Errorf("report header: %+v", rep)
	}
	if rep.Location != (evidence.Location{Name: "amsterdam", Country: "NL", Site: "Amsterdam", Provider: "a"}) {
		t.Errorf("location: %+v", rep.Location)
	}
	if rep.Snapshot.Tables != len(rep.Tables) || rep.Snapshot.Tables < 10 || rep.Snapshot.Rows == 0 || rep.Snapshot.Bytes == 0 || !rep.Snapshot.Time.Equal(start) {
		t.Errorf("snapshot: %+v (%d tables in the report)", rep.Snapshot, len(rep.Tables))
	}
	for _, tb := range rep.Tables {
		if !tb.Match || tb.Fingerprint == "" || tb.Fingerprint != tb.RestoredFingerprint || tb.Rows != tb.RowsRestored {
			t.Errorf("table %+v", tb)
		}
	}
	if len(rep.Probes) != 3 {
		t.Fatalf("probes: %+v", rep.Probes)
	}
	for _, p := range rep.Probes {
		if !p.OK {
			t.Errorf("probe %+v", p)
		}
	}
	if rep.Probes[0].Got != "30" || rep.Probes[0].Expected != ">= 1" || rep.Probes[1].Got != "0" || rep.Probes[1].Expected != "0" {
		t.Errorf("probe values: %+v", rep.Probes)
	}
	if !rep.RTO.OK || rep.RTO.MeasuredSeconds <= 0 || rep.RTO.TargetSeconds != 4*3600 {
		t.Errorf("RTO: %+v", rep.RTO)
	}
	if !rep.RPO.OK || rep.RPO.SnapshotAgeSeconds != 3600 || rep.RPO.SnapshotsInWindow != 1 || rep.RPO.TargetSeconds != 26*3600 || rep.RPO.WindowDays != 30 {
		t.Errorf("RPO: %+v", rep.RPO)
	}
	if f := checkOf(t, &rep, evidence.CheckFetch); !strings.Contains(f.Detail, "verified") || !strings.Contains(f.Detail, "amsterdam") {
		t.Errorf("fetch detail: %q", f.Detail)
	}
	for _, c := range rep.Checks {
		if c.Seconds < 0 || c.Detail == "" {
			t.Errorf("check %+v", c)
		}
	}
	assertNoPersonalData(t, e.path("praktijk.db"), &rep)
}

// assertNoPersonalData fails when a report's JSON holds any client's BSN,
// name or e-mail address from the source database.
func assertNoPersonalData(t *testing.T, dbPath string, rep *evidence.Report) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT bsn, first_name, last_name, COALESCE(email, '') FROM clients")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	js, _ := json.Marshal(rep)
	n := 0
	for rows.Next() {
		var vals [4]string
		if err := rows.Scan(&vals[0], &vals[1], &vals[2], &vals[3]); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if len(v) >= 4 && strings.Contains(string(js), v) {
				t.Errorf("report contains personal data %q", v)
			}
		}
		n++
	}
	if n == 0 {
		t.Fatal("no clients to look for")
	}
}

// TestSQLiteCorruptPack: a pack damaged at the tested location fails the
// fetch (naming the pack), the checks that need the data are skipped, rpo
// still runs; the other location still passes.
func TestSQLiteCorruptPack(t *testing.T) {
	e := sqliteEnv(t)
	packs, _ := filepath.Glob(e.path("loc-a", "praktijk-a", "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs at loc-a")
	}
	sort.Strings(packs)
	flipByte(t, packs[0])
	rep := e.run(restoretest.Options{Location: "amsterdam"})
	wantVerdict(t, rep, evidence.Fail, evidence.CheckFetch, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO)
	fetch := checkOf(t, rep, evidence.CheckFetch)
	if !strings.Contains(fetch.Detail, filepath.Base(packs[0])) || !strings.Contains(fetch.Detail, "does not match its name") {
		t.Errorf("fetch detail does not name the bad pack: %q", fetch.Detail)
	}
	if c := checkOf(t, rep, evidence.CheckRestore); c.Detail != "skipped: fetch failed" {
		t.Errorf("restore: %+v", c)
	}
	if c := checkOf(t, rep, evidence.CheckRPO); !c.OK {
		t.Errorf("rpo did not run after a failed fetch: %+v", c)
	}
	if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK || !strings.Contains(c.Detail, "no scratch") {
		t.Errorf("drop-scratch: %+v", c)
	}
	// The repository at groningen is untouched: it passes; after the
	// failure at amsterdam alone, the default is the untested groningen.
	wantVerdict(t, e.run(restoretest.Options{Location: "groningen"}), evidence.Pass)
	if got := restoretest.PickLocation(e.a.Cfg, "praktijk-a", []evidence.Report{*rep}); got != "groningen" {
		t.Errorf("after a failure at amsterdam and no pass anywhere, pick %s; want groningen (never tested)", got)
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteFingerprintMismatch: a row changed in the scratch database
// after the load fails the fingerprints check, naming the table; restore,
// probes, rto and rpo pass.
func TestSQLiteFingerprintMismatch(t *testing.T) {
	e := sqliteEnv(t)
	var opts restoretest.Options
	restoretest.SetBeforeFingerprint(&opts, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, "UPDATE clients SET last_name = last_name || 'x' WHERE id = (SELECT min(id) FROM clients)")
		return err
	})
	rep := e.run(opts)
	wantVerdict(t, rep, evidence.Fail, evidence.CheckFingerprints)
	if c := checkOf(t, rep, evidence.CheckFingerprints); c.Detail != "1 of "+itoa(len(rep.Tables))+" tables differ from the manifest: clients" {
		t.Errorf("fingerprints detail: %q", c.Detail)
	}
	for _, tb := range rep.Tables {
		if tb.Match != (tb.Name != "clients") {
			t.Errorf("table %+v", tb)
		}
		if tb.Name == "clients" && (tb.Rows != tb.RowsRestored || tb.Fingerprint == tb.RestoredFingerprint) {
			t.Errorf("clients: %+v", tb)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestSQLiteFailingProbe: a probe whose result differs fails the probes
// check, naming the probe; a textual result is withheld; an SQL error is
// reported; the other checks pass.
func TestSQLiteFailingProbe(t *testing.T) {
	e := newEnv(t)
	e.synthSQLite("praktijk.db", synth.Tiny)
	e.writeConfig(`
  - id: praktijk-a
    engine: sqlite
    path: ./praktijk.db
    probes:
      - {name: clients-present, sql: "SELECT count(*) FROM clients", min: 1}
      - {name: exactly-five-clients, sql: "SELECT count(*) FROM clients", expect: "5", record_result: true}
      - {name: first-name, sql: "SELECT last_name FROM clients ORDER BY id LIMIT 1", expect: "Nobody", record_result: true}
      - {name: bad-sql, sql: "SELECT count(*) FROM no_such_table", max: 3}
      - {name: two-rows, sql: "SELECT id FROM clients LIMIT 2", min: 0}
      - {name: writes-refused, sql: "DELETE FROM clients RETURNING 1", min: 0}
      - {name: a-bsn, sql: "SELECT bsn FROM clients ORDER BY id LIMIT 1", min: 0}
      - {name: count-unrecorded, sql: "SELECT count(*) FROM clients", min: 1}
`, "")
	e.backup("praktijk-a")
	rep := e.run(restoretest.Options{})
	wantVerdict(t, rep, evidence.Fail, evidence.CheckProbes)
	c := checkOf(t, rep, evidence.CheckProbes)
	for _, name := range []string{"exactly-five-clients", "first-name", "bad-sql", "two-rows", "writes-refused"} {
		if !strings.Contains(c.Detail, name) {
			t.Errorf("probes detail does not name %s: %q", name, c.Detail)
		}
	}
	if strings.Contains(c.Detail, "clients-present") || !strings.HasPrefix(c.Detail, "5 of 8 probes failed") {
		t.Errorf("probes detail: %q", c.Detail)
	}
	byName := map[string]evidence.Probe{}
	for _, p := range rep.Probes {
		byName[p.Name] = p
	}
	if p := byName["exactly-five-clients"]; p.OK || p.Got != "30" || p.Expected != "5" {
		t.Errorf("numeric probe: %+v", p)
	}
	if p := byName["first-name"]; p.OK || p.Got != "withheld" || p.Expected != "text (withheld)" {
		t.Errorf("textual probe: %+v", p)
	}
	// A BSN is a number, and personal data: withheld. A count too,
	// unless its probe says record_result.
	if p := byName["a-bsn"]; !p.OK || p.Got != "withheld" {
		t.Errorf("a numeric personal value: %+v", p)
	}
	if p := byName["count-unrecorded"]; !p.OK || p.Got != "withheld" {
		t.Errorf("a probe without record_result: %+v", p)
	}
	if p := byName["bad-sql"]; p.OK || !strings.Contains(p.Detail, "no such table") {
		t.Errorf("failing SQL: %+v", p)
	}
	if p := byName["two-rows"]; p.OK || !strings.Contains(p.Detail, "more than one row") {
		t.Errorf("two rows: %+v", p)
	}
	if p := byName["writes-refused"]; p.OK || p.Detail == "" {
		t.Errorf("a writing probe: %+v", p)
	}
	assertNoPersonalData(t, e.path("praktijk.db"), rep)
}

// TestSQLiteRPOBreach: a snapshot older than the RPO target, or a gap
// between snapshots larger than it, fails the rpo check only.
func TestSQLiteRPOBreach(t *testing.T) {
	t.Run("old snapshot", func(t *testing.T) {
		e := sqliteEnv(t)
		e.clk.Advance(30 * time.Hour)
		rep := e.run(restoretest.Options{})
		wantVerdict(t, rep, evidence.Fail, evidence.CheckRPO)
		if c := checkOf(t, rep, evidence.CheckRPO); !strings.Contains(c.Detail, "snapshot is 31h 00m old, over the RPO target 26h 00m") {
			t.Errorf("rpo detail: %q", c.Detail)
		}
		if rep.RPO.OK || rep.RPO.SnapshotAgeSeconds != 31*3600 {
			t.Errorf("RPO: %+v", rep.RPO)
		}
	})
	t.Run("gap", func(t *testing.T) {
		e := sqliteEnv(t)
		e.clk.Advance(24 * time.Hour)
		e.backup("praktijk-a")
		e.clk.Advance(50 * time.Hour) // a missed night and more
		e.backup("praktijk-a")
		rep := e.run(restoretest.Options{})
		wantVerdict(t, rep, evidence.Fail, evidence.CheckRPO)
		c := checkOf(t, rep, evidence.CheckRPO)
		if !strings.Contains(c.Detail, "largest gap between snapshots is 50h 00m") || strings.Contains(c.Detail, "old,") {
			t.Errorf("rpo detail: %q", c.Detail)
		}
		if rep.RPO.SnapshotsInWindow != 3 || rep.RPO.LargestGapSeconds != 50*3600 || !rep.RPO.LargestGapFrom.Equal(start.Add(24*time.Hour)) {
			t.Errorf("RPO: %+v", rep.RPO)
		}
		// A shorter window that starts inside the gap still sees it.
		e.writeConfig(sqliteTenant, "  restore_test: {rpo_window: 2h}")
		rep = e.run(restoretest.Options{})
		wantVerdict(t, rep, evidence.Fail, evidence.CheckRPO)
		if rep.RPO.SnapshotsInWindow != 1 || rep.RPO.LargestGapSeconds != 50*3600 {
			t.Errorf("RPO with a 2h window: %+v", rep.RPO)
		}
	})
}

// TestSQLiteCancelled: a test cancelled during the restore returns an
// error wrapping context.Canceled and a FAIL report, and still removes
// its scratch file.
func TestSQLiteCancelled(t *testing.T) {
	e := sqliteEnv(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var restoring bool
	rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-a", Progress: func(check string, done, total int64) {
		if check == evidence.CheckRestore {
			restoring = true
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if !restoring {
		t.Fatal("the restore never reported progress")
	}
	if rep == nil || rep.Verdict != evidence.Fail || checkOf(t, rep, evidence.CheckRestore).OK {
		t.Fatalf("report: %s", dump(rep))
	}
	if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK || !strings.Contains(c.Detail, "removed") {
		t.Errorf("drop-scratch: %+v", c)
	}
	if left := e.scratchLeft(); len(left) > 0 {
		t.Errorf("scratch files left behind: %v", left)
	}
}

// TestCannotStart: what cannot start is an error, not a report.
func TestCannotStart(t *testing.T) {
	e := newEnv(t)
	e.synthSQLite("praktijk.db", synth.Tiny)
	e.writeSecret("pg.dsn", "host=db.example port=5432 dbname=praktijk user=kluis")
	e.writeConfig(sqliteTenant+`
  - {id: pg-tenant, engine: postgres, dsn_file: ./pg.dsn}
`, "")
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		opts restoretest.Options
		want string
	}{
		{"no tenant", restoretest.Options{}, "no tenant"},
		{"unknown tenant", restoretest.Options{Tenant: "nobody"}, `no tenant "nobody"`},
		{"files tenant", restoretest.Options{Tenant: "docs"}, "engine files"},
		{"unknown location", restoretest.Options{Tenant: "praktijk-a", Location: "rotterdam"}, `no location "rotterdam"`},
		{"no server", restoretest.Options{Tenant: "pg-tenant"}, "set policy.restore_test.server_dsn_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := restoretest.Run(ctx, e.a, tc.opts)
			if err == nil || rep != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v, %v; want an error with %q", rep, err, tc.want)
			}
		})
	}
}

// TestRunAndRecord: reports go into the signed evidence log, copied to
// both locations, and the log's history alternates the tested location.
func TestRunAndRecord(t *testing.T) {
	e := sqliteEnv(t)
	store := e.store()
	var locs []string
	for i := 1; i <= 3; i++ {
		e.clk.Advance(time.Hour)
		got, err := restoretest.RunAndRecord(testCtx(t), e.a, store, restoretest.Options{Tenant: "praktijk-a"})
		if err != nil {
			t.Fatal(err)
		}
		wantVerdict(t, got.Report, evidence.Pass)
		if got.Record.Seq != uint64(i) || got.Record.Report.Location.Name != got.Report.Location.Name {
			t.Errorf("record %+v", got.Record)
		}
		for _, l := range got.Locations {
			if !l.OK {
				t.Errorf("evidence copy at %s: %s", l.Location, l.Error)
			}
		}
		locs = append(locs, got.Report.Location.Name)
	}
	if strings.Join(locs, ",") != "amsterdam,groningen,amsterdam" {
		t.Errorf("locations: %v", locs)
	}
	recs, err := store.Records()
	if err != nil || len(recs) != 3 {
		t.Fatalf("records: %d, %v", len(recs), err)
	}
	// A setup problem is an error of its own kind, and nothing is written.
	_, err = restoretest.RunAndRecord(testCtx(t), e.a, store, restoretest.Options{Tenant: "praktijk-a", Location: "rotterdam"})
	var se *restoretest.SetupError
	if !errors.As(err, &se) {
		t.Errorf("unknown location: %v, want a SetupError", err)
	}
	if recs, _ := store.Records(); len(recs) != 3 {
		t.Errorf("%d records after a refused test", len(recs))
	}
}

// Issue 19: the fetch streams each pack whole and holds one blob at a
// time under the repository's read budget. Under a one-byte budget a
// restore test passes as it does under the default one, and a damaged
// pack still fails the fetch, naming the pack, with the same checks
// failed as under the default budget.
func TestSQLiteTinyReadBudget(t *testing.T) {
	e := sqliteEnv(t)
	var tiny restoretest.Options
	restoretest.SetReadBudget(&tiny, 1)
	tiny.Location = "amsterdam"
	wantVerdict(t, e.run(tiny), evidence.Pass)

	packs, _ := filepath.Glob(e.path("loc-a", "praktijk-a", "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs at loc-a")
	}
	sort.Strings(packs)
	flipByte(t, packs[len(packs)-1])
	failed := []string{evidence.CheckFetch, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO}
	for _, opts := range []restoretest.Options{tiny, {Location: "amsterdam"}} {
		rep := e.run(opts)
		wantVerdict(t, rep, evidence.Fail, failed...)
		if d := checkOf(t, rep, evidence.CheckFetch).Detail; !strings.Contains(d, filepath.Base(packs[len(packs)-1])) || !strings.Contains(d, "does not match its name") {
			t.Errorf("fetch detail does not name the bad pack: %q", d)
		}
	}
}
