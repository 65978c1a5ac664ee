package evidence

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium is Debian's headless-capable browser.
const chromium = "/usr/bin/chromium"

// chromiumArgs keep a headless run offline and self-contained.
func chromiumArgs(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile}
}

// TestSummaryInChromium opens the HTML summary of a sample export in a
// real browser and checks the rendered DOM: tenants, verdicts, the failing
// reports and the verification status, and that a hostile site name stays
// text. It skips without /usr/bin/chromium (apt-get install chromium to
// run it); KLUIS_TEST_REQUIRE_CHROMIUM=1 makes that a failure.
func TestSummaryInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("KLUIS_TEST_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("%s is missing and KLUIS_TEST_REQUIRE_CHROMIUM=1", chromium)
		}
		t.Skipf("%s is missing: apt-get install chromium to run this test", chromium)
	}
	s := sampleStore(t, t.TempDir())
	r := sampleReport("praktijk-escape", "sqlite", 9, "fingerprint")
	r.Location.Site = `Zwolle <b id="injected">&amp;</b>`
	s.Now = func() time.Time { return r.Finished.Add(time.Second) }
	if _, _, err := s.Append(t.Context(), &r); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	if _, err := Export(dir, recs, ExportOptions{Appliance: "ams-1", Key: testKey(1), Now: t0.Add(70 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(chromiumArgs(t.TempDir()), "--dump-dom", "file://"+filepath.Join(dir, SummaryFile))
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := string(out)
	for _, want := range []string{
		"Restore-test evidence", "huisarts-de-linde", "fysio-noord", "tandarts-zuid", "praktijk-escape",
		">PASS<", ">FAIL<", "Verified at export", "fingerprints", "rpo",
		"<b>25</b><span>restore tests</span>",
		"Zwolle &lt;b id=\"injected\"&gt;&amp;amp;&lt;/b&gt;",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, `id="injected"`) && !strings.Contains(dom, `&lt;b id="injected"`) {
		t.Error("a site name from the config became markup")
	}
	if n := strings.Count(dom, `class="badge fail"`); n < 3 {
		t.Errorf("%d FAIL badges rendered, want at least 3 (two sample failures and the escape report)", n)
	}
}
