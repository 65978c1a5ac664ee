package restoretest_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// Issue 18.4: the tested location disappears after the snapshot check
// (an unmounted share, a bucket gone): the test could not run, which is
// verdict ERROR with a cause naming the location, not a FAIL of the
// backup.
func TestRigLocationGoneMidTest(t *testing.T) {
	e := sqliteEnv(t)
	opts := restoretest.Options{Tenant: "praktijk-a", Location: "amsterdam"}
	restoretest.SetBeforeCheck(&opts, func(check string) {
		if check == evidence.CheckFetch {
			if err := os.Rename(e.path("loc-a"), e.path("loc-a.unmounted")); err != nil {
				t.Error(err)
			}
		}
	})
	e.clk.Advance(0)
	rep, err := restoretest.Run(testCtx(t), e.a, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != evidence.Error || !strings.Contains(rep.Cause, "location amsterdam is ") || !strings.Contains(rep.Cause, "fetch") {
		t.Fatalf("verdict %s, cause %q: %s", rep.Verdict, rep.Cause, dump(rep))
	}
	if c := checkOf(t, rep, evidence.CheckFetch); c.OK || !strings.Contains(c.Detail, "could not run: location amsterdam") {
		t.Errorf("fetch: %+v", c)
	}
	// The location back: the next test passes, and a genuinely damaged
	// copy is still a FAIL (the location answers).
	if err := os.Rename(e.path("loc-a.unmounted"), e.path("loc-a")); err != nil {
		t.Fatal(err)
	}
	rep = e.run(restoretest.Options{Location: "amsterdam"})
	wantVerdict(t, rep, evidence.Pass)
	if rep.Cause != "" {
		t.Errorf("a PASS with a cause: %q", rep.Cause)
	}
}

// The restore-test server refuses the password in its DSN file: the test
// could not run. Either it does not start (a setup error naming the
// server's config field) or its report is ERROR naming the server; never
// a FAIL of the backup.
func TestRigServerRefusesPassword(t *testing.T) {
	e := newPGEnv(t)
	if !e.rtSrv.PasswordAuth {
		t.Skip("the restore-test server does not check passwords")
	}
	e.writeSecret("rt.dsn", pgtest.WithPassword(e.rtSrv.DSN("postgres"), "not-the-password"))
	e.clk.Advance(0)
	rep, err := restoretest.Run(testCtx(t), e.a, restoretest.Options{Tenant: "praktijk-pg"})
	var se *restoretest.SetupError
	switch {
	case errors.As(err, &se):
		if !strings.Contains(err.Error(), "server_dsn_file") {
			t.Errorf("setup error does not name the server: %v", err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		if rep.Verdict != evidence.Error || !strings.Contains(rep.Cause, "restore-test server (policy.restore_test.server_dsn_file)") ||
			!strings.Contains(rep.Cause, "refused the login") {
			t.Fatalf("verdict %s, cause %q: %s", rep.Verdict, rep.Cause, dump(rep))
		}
		if strings.Contains(dump(rep), "not-the-password") || strings.Contains(rep.Cause, fmt.Sprint(e.rtSrv.Port)) {
			t.Errorf("the report holds a connection detail: %s", dump(rep))
		}
	}
}

// Issue 18.4: the restore reads from disk the packs the fetch verified;
// each pack is read from the location once per test. Without the cache
// (PackCacheBytes < 0) the restore reads them from the location again.
func TestRigPackCacheReadsEachPackOnce(t *testing.T) {
	e := newEnv(t)
	e.synthSQLite("praktijk.db", synth.ScaleForBytes(28<<20))
	e.writeConfig(sqliteTenant, "")
	e.backup("praktijk-a")
	reads := func(opts restoretest.Options) (packs, fromLoc, fromCache int) {
		t.Helper()
		rep := e.run(opts)
		wantVerdict(t, rep, evidence.Pass)
		var n, s, b int
		fetch := checkOf(t, rep, evidence.CheckFetch).Detail
		if _, err := fmt.Sscanf(fetch[strings.Index(fetch, " in ")+4:], "%d pack", &packs); err != nil {
			t.Fatalf("fetch detail %q: %v", fetch, err)
		}
		d := checkOf(t, rep, evidence.CheckRestore).Detail
		i := strings.Index(d, "packs read from the location: ")
		if i < 0 {
			t.Fatalf("restore detail %q", d)
		}
		if _, err := fmt.Sscanf(d[i:], "packs read from the location: %d (%d bytes), from the verified pack cache: %d", &n, &b, &s); err != nil {
			t.Fatalf("restore detail %q: %v", d, err)
		}
		return packs, n, s
	}
	packs, loc, cached := reads(restoretest.Options{})
	if packs <= 4 {
		t.Fatalf("only %d packs: the repository's memory cache would hide a second read", packs)
	}
	// Each pack once from the location; the restore's reads of packs the
	// repository's memory cache no longer holds come from the disk cache.
	if loc != packs || cached == 0 {
		t.Errorf("with the cache: %d packs, %d read from the location, %d from the cache; want each once from the location", packs, loc, cached)
	}
	_, loc, cached = reads(restoretest.Options{PackCacheBytes: -1})
	if loc <= packs || cached != 0 {
		t.Errorf("without the cache: %d packs, %d read from the location, %d from the cache", packs, loc, cached)
	}
	if _, err := os.Stat(e.path("state", "restore-test", "packs-praktijk-a")); !os.IsNotExist(err) {
		t.Errorf("the pack cache is left behind: %v", err)
	}
}
