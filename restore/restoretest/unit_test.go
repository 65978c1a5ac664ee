package restoretest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
)

func TestMeasureRPO(t *testing.T) {
	now := time.Date(2025, 3, 31, 6, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	at := func(hoursBefore ...float64) []time.Time {
		var out []time.Time
		for _, h := range hoursBefore {
			out = append(out, now.Add(-time.Duration(h*float64(time.Hour))))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		times    []time.Time
		window   time.Duration
		ok       bool
		gapHours float64
		inWindow int
		detail   string
	}{
		{name: "daily", times: at(4, 28, 52, 76), window: 30 * day, ok: true, gapHours: 24, inWindow: 4},
		{name: "one snapshot", times: at(4), window: 30 * day, ok: true, gapHours: 0, inWindow: 1, detail: "no gap to measure"},
		{name: "missed night", times: at(4, 52, 76), window: 30 * day, ok: false, gapHours: 48, inWindow: 3, detail: "largest gap between snapshots is 48h 00m"},
		{name: "gap outside the window", times: at(4, 28, 52, 76, 24*10, 24*15), window: 3 * day, ok: true, gapHours: 24, inWindow: 3},
		{name: "gap across the window start", times: at(4, 28, 24*33), window: 30 * day, ok: false, gapHours: 24*33 - 28, inWindow: 2},
		{name: "unsorted", times: at(52, 4, 28), window: 30 * day, ok: true, gapHours: 24, inWindow: 3},
		{name: "future snapshot ignored", times: append(at(4, 28), now.Add(time.Hour)), window: 30 * day, ok: true, gapHours: 24, inWindow: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, detail := measureRPO(now.Add(-4*time.Hour), tc.times, now, tc.window, 26*time.Hour)
			if r.OK != tc.ok || r.LargestGapSeconds != tc.gapHours*3600 || r.SnapshotsInWindow != tc.inWindow {
				t.Errorf("got %+v (%s)", r, detail)
			}
			if r.OK != (checkOK(detail)) {
				t.Errorf("detail %q does not match OK=%v", detail, r.OK)
			}
			if tc.detail != "" && !strings.Contains(detail, tc.detail) {
				t.Errorf("detail %q lacks %q", detail, tc.detail)
			}
			if r.TargetSeconds != 26*3600 || r.WindowDays != tc.window.Hours()/24 {
				t.Errorf("target/window: %+v", r)
			}
		})
	}
	r, detail := measureRPO(now.Add(-30*time.Hour), at(30), now, 30*day, 26*time.Hour)
	if r.OK || r.SnapshotAgeSeconds != 30*3600 || !strings.Contains(detail, "snapshot is 30h 00m old") {
		t.Errorf("old snapshot: %+v %q", r, detail)
	}
}

func checkOK(detail string) bool { return !strings.Contains(detail, "over the RPO target") }

func TestPickLocation(t *testing.T) {
	c := &config.Config{Locations: []config.Location{{Name: "amsterdam"}, {Name: "groningen"}, {Name: "zwolle"}}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rep := func(tenant, loc, verdict string, day int) evidence.Report {
		return evidence.Report{Tenant: tenant, Location: evidence.Location{Name: loc}, Verdict: verdict, Started: t0.AddDate(0, 0, day)}
	}
	for _, tc := range []struct {
		name string
		prev []evidence.Report
		want string
	}{
		{"none yet", nil, "amsterdam"},
		{"next untested", []evidence.Report{rep("a", "amsterdam", evidence.Pass, 1)}, "groningen"},
		{"other tenants do not count", []evidence.Report{rep("b", "amsterdam", evidence.Pass, 1), rep("a", "groningen", evidence.Pass, 2)}, "amsterdam"},
		{"least recently tested", []evidence.Report{
			rep("a", "amsterdam", evidence.Pass, 5), rep("a", "groningen", evidence.Pass, 3), rep("a", "zwolle", evidence.Pass, 4),
		}, "groningen"},
		// A failing location does not keep the others from being proven:
		// it waits its turn like the rest.
		{"a failed location waits its turn", []evidence.Report{
			rep("a", "amsterdam", evidence.Pass, 1), rep("a", "groningen", evidence.Pass, 2), rep("a", "zwolle", evidence.Pass, 3),
			rep("a", "amsterdam", evidence.Fail, 4),
		}, "groningen"},
		{"a location that always fails is retried in turn", []evidence.Report{
			rep("a", "amsterdam", evidence.Fail, 1), rep("a", "groningen", evidence.Pass, 2), rep("a", "zwolle", evidence.Pass, 3),
		}, "amsterdam"},
		{"never passed: least recently tested", []evidence.Report{
			rep("a", "amsterdam", evidence.Fail, 1), rep("a", "groningen", evidence.Fail, 2), rep("a", "zwolle", evidence.Fail, 3),
		}, "amsterdam"},
		{"removed location ignored", []evidence.Report{
			rep("a", "rotterdam", evidence.Pass, 1), rep("a", "amsterdam", evidence.Pass, 2), rep("a", "groningen", evidence.Pass, 3), rep("a", "zwolle", evidence.Pass, 4),
		}, "amsterdam"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PickLocation(c, "a", tc.prev); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPickLocationAlternates: with two locations of which one always
// fails, scheduled tests still alternate, so the good copy keeps being
// proven and the failing one is retried every other run.
func TestPickLocationAlternates(t *testing.T) {
	c := &config.Config{Locations: []config.Location{{Name: "amsterdam"}, {Name: "groningen"}}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var prev []evidence.Report
	var got []string
	for day := 0; day < 4; day++ {
		loc := PickLocation(c, "a", prev)
		verdict := evidence.Pass
		if loc == "amsterdam" {
			verdict = evidence.Fail
		}
		prev = append(prev, evidence.Report{Tenant: "a", Location: evidence.Location{Name: loc}, Verdict: verdict, Started: t0.AddDate(0, 0, day)})
		got = append(got, loc)
	}
	if s := strings.Join(got, ","); s != "amsterdam,groningen,amsterdam,groningen" {
		t.Errorf("locations tested: %s", s)
	}
}

func TestScratchName(t *testing.T) {
	now := time.Date(2025, 3, 9, 6, 4, 5, 0, time.FixedZone("CET", 3600))
	re := regexp.MustCompile(`^kluis_rt_[a-z0-9_]+_20250309050405_[0-9a-f]{6}$`)
	for _, tenant := range []string{"a", "praktijk-a", strings.Repeat("x", 63)} {
		n := ScratchName(tenant, now)
		if len(n) > 63 || !re.MatchString(n) {
			t.Errorf("ScratchName(%q) = %q", tenant, n)
		}
		if n == ScratchName(tenant, now) {
			t.Errorf("two names alike: %s", n)
		}
	}
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		fam, a, b string
		same      bool
	}{
		{familyPostgres, "host=localhost port=5432", "postgres://u:p@127.0.0.1/db", true},
		{familyPostgres, "host=::1 port=5432", "host=127.0.0.1", true},
		{familyPostgres, "host=/var/run/postgresql port=5432 dbname=x", "host=127.0.0.1 port=5432", true},
		{familyPostgres, "host=/var/run/postgresql port=5433", "host=/var/run/postgresql/ port=5433", true},
		{familyPostgres, "host=127.0.0.1 port=5433", "host=127.0.0.1 port=5432", false},
		{familyPostgres, "host=DB1.example port=5432", "postgres://db1.example:5432/x", true},
		{familyPostgres, "host=db1.example", "host=db2.example", false},
		{familyPostgres, "host=db1.example,db2.example", "host=db2.example", true},
		{familyMariaDB, "root:pw@tcp(localhost:3306)/", "kluis@tcp(127.0.0.1)/praktijk", true},
		{familyMariaDB, "root@tcp(127.0.0.1:3307)/", "kluis@tcp(127.0.0.1:3306)/praktijk", false},
		{familyMariaDB, "root@unix(/run/mysqld/mysqld.sock)/", "kluis@unix(/run/mysqld/mysqld.sock)/x", true},
		{familyMariaDB, "root@tcp([::1]:3306)/", "kluis@tcp(127.0.0.1:3306)/x", true},
	} {
		ka, err := endpoints(tc.fam, tc.a)
		if err != nil {
			t.Fatalf("%s: %v", tc.a, err)
		}
		kb, err := endpoints(tc.fam, tc.b)
		if err != nil {
			t.Fatalf("%s: %v", tc.b, err)
		}
		same := false
		for _, x := range ka {
			for _, y := range kb {
				same = same || x == y
			}
		}
		if same != tc.same {
			t.Errorf("%q vs %q: same server %v (%v, %v), want %v", tc.a, tc.b, same, ka, kb, tc.same)
		}
	}
	if _, err := endpoints(familyMariaDB, "not a dsn"); err == nil || strings.Contains(err.Error(), "not a dsn") {
		t.Errorf("a bad DSN: %v (it must not be echoed)", err)
	}
}

// TestOwnServerByAddress: a restore-test server at a tenant's address is
// refused by name, without connecting.
func TestOwnServerByAddress(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	c := &config.Config{Dir: dir,
		Tenants: []config.Tenant{
			{ID: "pg-a", Engine: "postgres", DSNFile: write("a.dsn", "host=db1.example port=5432 dbname=a password=s3cret")},
			{ID: "maria-b", Engine: "mariadb", DSNFile: write("b.dsn", "kluis:s3cret@tcp(db2.example:3306)/b")},
			{ID: "found", Engine: "postgres", DSN: "host=db3.example dbname=found", Discovered: true},
		},
		Discover: []config.Discover{{Engine: "postgres", DSNFile: write("d.dsn", "host=db4.example")}},
	}
	for _, tc := range []struct {
		fam, server, want string
	}{
		{familyPostgres, "host=db1.example user=rt", "tenant pg-a (db1.example:5432)"},
		{familyPostgres, "host=db3.example port=5432", "tenant found"},
		{familyPostgres, "host=db4.example", "discover[0]"},
		{familyPostgres, "host=db2.example port=3306", ""},
		{familyMariaDB, "rt:pw@tcp(db2.example)/", "tenant maria-b"},
		{familyMariaDB, "rt:pw@tcp(db1.example:5432)/", ""},
		{familyPostgres, "host=rt.example", ""},
	} {
		_, err := ownServer(context.Background(), c, tc.fam, tc.server)
		switch {
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "does not answer")):
			// No server here answers: the guard fails closed.
			t.Errorf("%s: %v, want a refusal: the servers do not answer", tc.server, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), serverField(tc.fam))):
			t.Errorf("%s: %v, want an error naming %q", tc.server, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the error shows a password: %v", err)
		}
	}
}

// TestDescribe: database errors are reduced to their codes; kluis's own
// context and SQLite's messages are kept; secrets masked; long details
// cut.
func TestDescribe(t *testing.T) {
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: `duplicate key value violates unique constraint "clients_bsn_key"`,
		Detail: "Key (bsn)=(123456782) already exists."}
	myErr := &mysql.MySQLError{Number: 1062, SQLState: [5]byte{'2', '3', '0', '0', '0'}, Message: "Duplicate entry '123456782' for key 'bsn'"}
	myErr2 := &mysql.MySQLError{Number: 1062, SQLState: [5]byte{'2', '3', '0', '0', '0'}, Message: "Duplicate entry '111222333' for key 'bsn'"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"postgres", fmt.Errorf("table public.clients: %w", pgErr), "table public.clients: postgres error SQLSTATE 23505 (ERROR)"},
		{"mariadb", fmt.Errorf("table clients: %w", myErr), "table clients: mariadb error 1062 (SQLSTATE 23000)"},
		// The forms source/mariadb returns: both sides of "%w (%w)" wrapped.
		{"cancelled load", fmt.Errorf("mariadb: loading table clients: %w", fmt.Errorf("%w (%w)", context.Canceled, fmt.Errorf("rows up to 5: %w", myErr))),
			"mariadb: loading table clients: context canceled (rows up to 5: mariadb error 1062 (SQLSTATE 23000))"},
		{"stream and server", fmt.Errorf("%w (%w)", errors.New("row 3 has 2 fields for 3 columns"), myErr),
			"row 3 has 2 fields for 3 columns (mariadb error 1062 (SQLSTATE 23000))"},
		{"two server errors", errors.Join(fmt.Errorf("table a: %w", myErr), fmt.Errorf("table b: %w", myErr2)),
			"table a: mariadb error 1062 (SQLSTATE 23000)\ntable b: mariadb error 1062 (SQLSTATE 23000)"},
		{"ours", errors.New("pack 1234: content does not match its name"), "pack 1234: content does not match its name"},
		{"secret", errors.New("connect to host=x password=hunter2 failed"), "connect to host=x password=xxxxx failed"},
	} {
		if got := describe(tc.err, "hunter2"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := describe(errors.New(strings.Repeat("é", 400))); len(got) > maxDetail || !strings.HasSuffix(got, "…") {
		t.Errorf("long detail: %d bytes", len(got))
	}
}

func TestJudge(t *testing.T) {
	s := func(v string) *string { return &v }
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name  string
		p     config.Probe
		v     any
		ok    bool
		shown string
	}{
		{"exact number", config.Probe{Expect: s("42")}, int64(42), true, "42"},
		{"numeric text", config.Probe{Expect: s("42")}, "42.0", true, "42.0"},
		{"differs", config.Probe{Expect: s("42")}, int64(41), false, "41"},
		{"bool", config.Probe{Expect: s("true")}, true, true, "true"},
		{"bool as t", config.Probe{Expect: s("t")}, true, true, "true"},
		{"text", config.Probe{Expect: s("Jansen")}, "Jansen", true, ""},
		{"min", config.Probe{Min: f(1)}, int64(0), false, "0"},
		{"max", config.Probe{Max: f(10)}, 9.5, true, "9.5"},
		{"range on text", config.Probe{Min: f(1), Max: f(2)}, "Jansen", false, ""},
		{"null", config.Probe{Expect: s("NULL")}, nil, true, ""},
	} {
		ok, _ := judge(tc.p, tc.v)
		shown, showOK := showable(tc.v)
		if ok != tc.ok || shown != tc.shown || showOK != (tc.shown != "") {
			t.Errorf("%s: ok %v shown %q, want %v %q", tc.name, ok, shown, tc.ok, tc.shown)
		}
	}
	if e := expectation(config.Probe{Expect: s("Jansen")}); e != "text (withheld)" {
		t.Errorf("textual expect shown: %q", e)
	}
	if e := expectation(config.Probe{Min: f(1), Max: f(5)}); e != "between 1 and 5" {
		t.Errorf("range: %q", e)
	}
}

// failingScratch is a scratch database that cannot be dropped.
type failingScratch struct{ scratch }

func (failingScratch) Name() string                   { return "kluis_rt_x_20250101000000_abcdef" }
func (failingScratch) Drop(ctx context.Context) error { return errors.New("permission denied") }

// panickingScratch is a scratch database whose Drop panics.
type panickingScratch struct{ scratch }

func (panickingScratch) Name() string                   { return "kluis_rt_x_20250101000000_abcdef" }
func (panickingScratch) Drop(ctx context.Context) error { panic("driver bug") }

// TestDropPanicFails: a panic while dropping (past Run's own recover) is
// a failed drop-scratch, not a crash.
func TestDropPanicFails(t *testing.T) {
	var logs strings.Builder
	rt := &run{checks: map[string]evidence.Check{}, rep: &evidence.Report{}, started: time.Now(),
		scratch: panickingScratch{}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	rt.dropScratch(context.Background())
	rep := rt.finish()
	if c := rep.Checks[len(rep.Checks)-1]; c.OK || c.Detail != "internal error: driver bug" {
		t.Errorf("drop-scratch: %+v", c)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestStaleAfter(t *testing.T) {
	c := &config.Config{}
	c.Policy.RestoreTest.RTOTarget = config.Duration(4 * time.Hour)
	if d := StaleAfter(c); d != 24*time.Hour {
		t.Errorf("rto 4h: %s", d)
	}
	c.Policy.RestoreTest.RTOTarget = config.Duration(20 * time.Hour)
	if d := StaleAfter(c); d != 40*time.Hour {
		t.Errorf("rto 20h: %s", d)
	}
}

// TestDropFailureFails: a scratch database that cannot be removed fails
// the test (personal data would remain), and is logged.
func TestDropFailureFails(t *testing.T) {
	var logs strings.Builder
	rt := &run{checks: map[string]evidence.Check{}, rep: &evidence.Report{}, started: time.Now(),
		scratch: failingScratch{}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	for _, n := range checkOrder[:len(checkOrder)-1] {
		rt.record(n, true, 0, "ok")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the drop runs on a context of its own
	rt.dropScratch(ctx)
	rt.dropScratch(ctx) // once only
	rep := rt.finish()
	if rep.Verdict != evidence.Fail || strings.Join(rep.FailedChecks, ",") != evidence.CheckDropScratch {
		t.Fatalf("verdict %s, failed %v", rep.Verdict, rep.FailedChecks)
	}
	if c := rep.Checks[len(rep.Checks)-1]; !strings.Contains(c.Detail, "not removed: permission denied") {
		t.Errorf("detail: %q", c.Detail)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "NOT removed") {
		t.Errorf("logs: %s", logs.String())
	}
}

// TestPGScratchDSN: the scratch database's DSN names it and its
// throwaway role whatever form the server's DSN takes, also when a URL's
// query names a database.
func TestPGScratchDSN(t *testing.T) {
	const name = "kluis_rt_a_20250101000000_abcdef"
	for _, server := range []string{
		"host=rt.example user=kluis_rt dbname=postgres",
		"host=rt.example user=kluis_rt",
		"postgres://kluis_rt:pw@rt.example/postgres",
		"postgres://kluis_rt:pw@rt.example/?dbname=postgres&sslmode=require",
		"postgresql://kluis_rt:pw@rt.example:5433/x?database=postgres",
	} {
		dsn, err := pgScratchDSN(server, name, name, "pw'\\ x")
		if err != nil {
			t.Errorf("%s: %v", server, err)
			continue
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil || cfg.Database != name || cfg.Host != "rt.example" || cfg.User != name || cfg.Password != "pw'\\ x" {
			t.Errorf("%s: %s connects to %+v (%v)", server, dsn, cfg, err)
		}
	}
	if _, err := pgScratchDSN("postgres://u:s3cret@[bad", name, name, "pw"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad DSN: %v", err)
	}
}
