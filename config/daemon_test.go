package config

import (
	"strings"
	"testing"
	"time"
)

// TestDaemonSettings: each bad daemon setting is refused with one message
// naming its field path; a good one parses with defaults filled in.
func TestDaemonSettings(t *testing.T) {
	pol := "  chunk_average: 64KiB\n"
	cases := []struct {
		name, add, want string
	}{
		{"bad tenant cron", "", "tenants[0].schedule"},
		{"bad backup window", pol + "  backup_window: \"01:00-25:00\"\n", "policy.backup_window"},
		{"window without dash", pol + "  backup_window: \"01:00\"\n", "policy.backup_window"},
		{"bad retention time", pol + "  retention_time: \"5am\"\n", "policy.retention_time"},
		{"zero concurrency", pol + "  max_concurrent_jobs: -1\n", "policy.max_concurrent_jobs"},
		{"too many retries", pol + "  retry: {attempts: 50, backoff: 1m}\n", "policy.retry.attempts"},
		{"bad backoff duration", pol + "  retry: {attempts: 3, backoff: soon}\n", "policy.retry.backoff"},
		{"bad rpo duration", pol + "  rpo_target: 26 hours\n", "policy.rpo_target"},
		{"rpo too small", pol + "  rpo_target: 10m\n", "policy.rpo_target"},
		{"bad shutdown grace", pol + "  shutdown_grace: -5m\n", "policy.shutdown_grace"},
		{"retention shorten delay below 1h", pol + "  retention_shorten_delay: 30m\n", "policy.retention_shorten_delay"},
		{"unknown retry key", pol + "  retry: {tries: 3}\n", "policy.retry"},
		{"discover unknown engine", "discover:\n  - {engine: oracle, pattern: \"p_*\"}\n", "discover[0].engine"},
		{"discover without dsn file", "discover:\n  - {engine: postgres, pattern: \"p_*\"}\n", "discover[0].dsn_file"},
		{"discover without pattern", "discover:\n  - {engine: sqlite}\n", "discover[0].pattern"},
		{"discover bad glob", "discover:\n  - {engine: sqlite, pattern: \"db/[*.db\"}\n", "discover[0].pattern"},
		{"discover template without {db}", "discover:\n  - {engine: sqlite, pattern: \"*.db\", id_template: \"praktijk\"}\n", "discover[0].id_template"},
		{"discover template bad chars", "discover:\n  - {engine: sqlite, pattern: \"*.db\", id_template: \"P/{db}\"}\n", "discover[0].id_template"},
		{"discover bad schedule", "discover:\n  - {engine: sqlite, pattern: \"*.db\", schedule: \"@sometimes\"}\n", "discover[0].schedule"},
		{"discover unknown key", "discover:\n  - {engine: sqlite, pattern: \"*.db\", dsn: x}\n", "discover[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validYAML(t)
			if c.add == "" {
				s = edit(t, s, "id: praktijk-a\n", "id: praktijk-a\n    schedule: \"99 * * * *\"\n")
			} else if strings.HasPrefix(c.add, pol) {
				s = edit(t, s, pol, c.add)
			} else {
				s += c.add
			}
			_, err := Parse([]byte(s), t.TempDir())
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not name %s:\n%v", c.want, err)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("want one message, got %d:\n%v", n, err)
			}
		})
	}

	s := edit(t, validYAML(t), pol, pol+"  rpo_target: 30h\n  retry: {attempts: 2, backoff: 90s}\n") +
		"discover:\n  - {engine: sqlite, pattern: \"db/*.sqlite\"}\n"
	c, err := Parse([]byte(s), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	if p.BackupWindow != DefaultBackupWindow || p.MaxConcurrentJobs != 2 || p.RPOTarget.D() != 30*time.Hour ||
		p.Retry.Backoff.D() != 90*time.Second || p.ShutdownGrace.D() != 5*time.Minute || p.RetentionShortenDelay.D() != 24*time.Hour || c.Discover[0].IDTemplate != "{db}" {
		t.Errorf("defaults: %+v %+v", p, c.Discover)
	}
	if st, l, err := ParseWindow("23:00-03:00"); err != nil || st != 23*time.Hour || l != 4*time.Hour {
		t.Errorf("a window across midnight: %v %v %v", st, l, err)
	}
}
