package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreTestSettings: defaults, the RPO window under sparse
// retention, and each bad setting refused naming its field.
func TestRestoreTestSettings(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(validYAML(t)), dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := c.Policy.RestoreTest
	if rt.Schedule != DefaultRestoreTestSchedule || rt.RTOTarget != DefaultRTOTarget || rt.ScratchDir != filepath.Join("state", "restore-test") {
		t.Errorf("defaults: %+v", rt)
	}
	// keep_daily 7 with keep_weekly: the window is 6 days, not 30.
	if rt.RPOWindow.D() != 6*24*time.Hour {
		t.Errorf("rpo_window under keep_daily 7 + keep_weekly 4: %s", rt.RPOWindow.D())
	}
	c, err = Parse([]byte(edit(t, validYAML(t), "    keep_weekly: 4\n", "")), dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.RestoreTest.RPOWindow != DefaultRPOWindow {
		t.Errorf("rpo_window without sparse retention: %s", c.Policy.RestoreTest.RPOWindow.D())
	}

	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"praktijk-b.dsn", "rt.dsn"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", f), []byte("host=x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pol := "  chunk_average: 64KiB\n"
	for _, tc := range []struct{ name, add, want string }{
		{"bad schedule", "  restore_test: {schedule: \"0 25 * * *\"}\n", "policy.restore_test.schedule"},
		{"tiny rto", "  restore_test: {rto_target: 10s}\n", "policy.restore_test.rto_target"},
		{"tiny window", "  restore_test: {rpo_window: 5m}\n", "policy.restore_test.rpo_window"},
		{"window past daily retention", "  restore_test: {rpo_window: 720h}\n", "reaches past the 144h0m0s"},
		{"tenant's own dsn file", "  restore_test: {server_dsn_file: secrets/praktijk-b.dsn}\n", "tenants[1].dsn_file: is policy.restore_test.server_dsn_file"},
		{"one file for both servers", "  restore_test: {server_dsn_file: secrets/rt.dsn, mariadb_server_dsn_file: secrets/rt.dsn}\n", "mariadb_server_dsn_file"},
		{"unknown key", "  restore_test: {rto: 1h}\n", "field rto not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(edit(t, validYAML(t), pol, pol+tc.add)), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("want one message, got %d:\n%v", n, err)
			}
		})
	}
}

// TestProbeRecordResult: a probe's result enters evidence only when the
// probe says record_result: true.
func TestProbeRecordResult(t *testing.T) {
	probes := `    schedule: "0 2 * * *"
    probes:
      - {name: clients, sql: "SELECT count(*) FROM clients", min: 1, record_result: true}
      - {name: a-bsn, sql: "SELECT bsn FROM clients LIMIT 1", min: 0}
`
	c, err := Parse([]byte(edit(t, validYAML(t), "    schedule: \"0 2 * * *\"\n", probes)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Tenants[0].Probes
	if len(p) != 2 || !p[0].RecordResult || p[1].RecordResult {
		t.Errorf("probes: %+v", p)
	}
}

// TestProbesWithoutServer (new-user trial, 2026-12-02): probes on a
// tenant whose engine has no restore-test server made the whole config
// invalid, so every command (backups of every tenant included) exited 2.
// Now the config loads; RestoreTestGaps names the tenant as a problem
// (probes: someone meant it to be tested) and a database tenant without
// probes as a warning; SQLite tenants (scratch_dir) have no gap.
func TestProbesWithoutServer(t *testing.T) {
	probes := "    dsn_file: secrets/praktijk-b.dsn\n    probes:\n      - {name: clients, sql: \"SELECT count(*) FROM clients\", min: 1}\n"
	y := edit(t, validYAML(t), "    dsn_file: secrets/praktijk-b.dsn\n", probes)
	y = strings.Replace(y, "tenants:\n", "tenants:\n  - {id: praktijk-m, engine: mariadb, dsn_file: secrets/praktijk-m.dsn}\n", 1)
	c, err := Parse([]byte(y), t.TempDir())
	if err != nil {
		t.Fatalf("probes without a restore-test server stop the config: %v", err)
	}
	problems, warnings := c.RestoreTestGaps()
	if len(problems) != 1 || problems[0].Path != "tenants[2].probes" || !strings.Contains(problems[0].Message, "praktijk-b") ||
		!strings.Contains(problems[0].Message, "policy.restore_test.server_dsn_file") || !strings.Contains(problems[0].Message, "1 probe") {
		t.Errorf("problems: %+v", problems)
	}
	if len(warnings) != 1 || warnings[0].Path != "tenants[0]" || !strings.Contains(warnings[0].Message, "praktijk-m") ||
		!strings.Contains(warnings[0].Message, "policy.restore_test.mariadb_server_dsn_file") {
		t.Errorf("warnings: %+v", warnings)
	}
	c.Policy.RestoreTest.ServerDSNFile = "secrets/rt.dsn"
	c.Policy.RestoreTest.MariaDBServerDSNFile = "secrets/rt-m.dsn"
	if p, w := c.RestoreTestGaps(); len(p)+len(w) != 0 {
		t.Errorf("with both servers: %+v %+v", p, w)
	}
}
