package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// RestoreTest is policy.restore_test: when and where restore tests run and
// the targets they are held to.
type RestoreTest struct {
	// Schedule is a cron spec (default weekly, "0 6 * * 0"); the daemon
	// spreads tenants over the hour after it, as it spreads backups.
	Schedule string `yaml:"schedule"`
	// ServerDSNFile holds the connection string of the PostgreSQL server
	// scratch databases are created on. It must not be a tenant's server.
	ServerDSNFile string `yaml:"server_dsn_file"`
	// MariaDBServerDSNFile is the same for mariadb/mysql tenants.
	MariaDBServerDSNFile string `yaml:"mariadb_server_dsn_file"`
	// ScratchDir holds the scratch files of sqlite tenants (default
	// STATE_DIR/restore-test).
	ScratchDir string `yaml:"scratch_dir"`
	// RTOTarget is the longest acceptable restore (default 4h).
	RTOTarget Duration `yaml:"rto_target"`
	// RPOWindow is how far back the largest gap between consecutive
	// snapshots is measured (default 30 days, shortened to the days
	// retention keeps a snapshot of every day when it also keeps weekly or
	// monthly ones: see Retention.DailyHorizon). The RPO target itself is
	// policy.rpo_target.
	RPOWindow Duration `yaml:"rpo_window"`
}

// Probe is one SQL check run on a tenant's restored scratch database. The
// query must return one row with one column; its value is compared with
// Expect (exact text) or with Min/Max (numbers). The value itself is
// written into evidence only when RecordResult is set, and then only a
// number or a boolean: a single value can be personal data (a BSN is a
// number).
type Probe struct {
	Name   string   `yaml:"name"`
	SQL    string   `yaml:"sql"`
	Expect *string  `yaml:"expect"`
	Min    *float64 `yaml:"min"`
	Max    *float64 `yaml:"max"`
	// RecordResult (record_result) writes the probe's result into the
	// report — only for aggregates such as counts: the value is written
	// into evidence. Otherwise the report shows "withheld".
	RecordResult bool `yaml:"record_result"`
}

// Restore-test defaults, applied by Load when a field is left out.
const (
	DefaultRestoreTestSchedule = "0 6 * * 0"
	DefaultRTOTarget           = Duration(4 * time.Hour)
	DefaultRPOWindow           = Duration(30 * 24 * time.Hour)
)

func (c *Config) applyRestoreTestDefaults() {
	rt := &c.Policy.RestoreTest
	if rt.Schedule == "" {
		rt.Schedule = DefaultRestoreTestSchedule
	}
	if rt.RTOTarget == 0 {
		rt.RTOTarget = DefaultRTOTarget
	}
	if rt.RPOWindow == 0 {
		rt.RPOWindow = DefaultRPOWindow
		if h := c.Policy.Retention.DailyHorizon(); h > 0 && h < rt.RPOWindow {
			rt.RPOWindow = h
		}
	}
	if rt.ScratchDir == "" {
		rt.ScratchDir = filepath.Join(c.Appliance.StateDir, "restore-test")
	}
}

// DailyHorizon is how far back retention keeps a snapshot of every day
// when it also keeps sparser ones (keep_weekly, keep_monthly): keep_daily
// minus one days, at least one day. Beyond it, gaps between snapshots
// measure retention, not backups. Zero when retention thins nothing out.
func (r Retention) DailyHorizon() Duration {
	if r.KeepWeekly <= 0 && r.KeepMonthly <= 0 {
		return 0
	}
	return Duration(time.Duration(max(r.KeepDaily-1, 1)) * 24 * time.Hour)
}

func (r Retention) negative() bool {
	return r.KeepLast < 0 || r.KeepDaily < 0 || r.KeepWeekly < 0 || r.KeepMonthly < 0
}

// rpoWithin checks that the restore tests' RPO window stays within the
// days r keeps a snapshot of every day.
func (c *Config) rpoWithin(r Retention) error {
	if h := r.DailyHorizon(); h > 0 && c.Policy.RestoreTest.RPOWindow > h {
		return fmt.Errorf("rpo_window %s reaches past the %s in which retention keeps a snapshot of every day (keep_daily: %d, with weekly or monthly snapshots beyond): the largest gap would measure retention, not backups",
			c.Policy.RestoreTest.RPOWindow.D(), h.D(), r.KeepDaily)
	}
	return nil
}

// CheckRetention checks a tenant's retention (an approved change in
// place of policy.retention) as config check checks policy.retention.
func (c *Config) CheckRetention(r Retention) error {
	if r.negative() {
		return fmt.Errorf("keep counts cannot be negative")
	}
	return c.rpoWithin(r)
}

func (c *Config) validateRestoreTest(p *Problems) {
	rt := c.Policy.RestoreTest
	if _, err := CronParser.Parse(rt.Schedule); err != nil {
		p.addf("policy.restore_test.schedule", "%q: %v", rt.Schedule, err)
	}
	if rt.RTOTarget.D() < time.Minute {
		p.addf("policy.restore_test.rto_target", "%s: must be at least 1m", rt.RTOTarget.D())
	}
	if rt.RPOWindow.D() < time.Hour {
		p.addf("policy.restore_test.rpo_window", "%s: must be at least 1h", rt.RPOWindow.D())
	}
	if err := c.rpoWithin(c.Policy.Retention); err != nil {
		p.addf("policy.restore_test.rpo_window", "%v; set rpo_window to at most %s or raise keep_daily", err, c.Policy.Retention.DailyHorizon().D())
	}
	if rt.ServerDSNFile != "" && rt.ServerDSNFile == rt.MariaDBServerDSNFile {
		p.addf("policy.restore_test.mariadb_server_dsn_file", "is the same file as server_dsn_file: a PostgreSQL and a MariaDB server need a connection string each")
	}
	if rt.ServerDSNFile != "" {
		c.checkSecretFile(p, "policy.restore_test.server_dsn_file", rt.ServerDSNFile)
	}
	if rt.MariaDBServerDSNFile != "" {
		c.checkSecretFile(p, "policy.restore_test.mariadb_server_dsn_file", rt.MariaDBServerDSNFile)
	}
	servers := map[string]string{}
	for _, f := range []struct{ file, field string }{{rt.ServerDSNFile, "server_dsn_file"}, {rt.MariaDBServerDSNFile, "mariadb_server_dsn_file"}} {
		if f.file != "" {
			servers[filepath.Clean(c.Resolve(f.file))] = f.field
		}
	}
	for i, d := range c.Discover {
		if field, ok := servers[filepath.Clean(c.Resolve(d.DSNFile))]; ok && d.DSNFile != "" {
			p.addf(fmt.Sprintf("discover[%d].dsn_file", i), "is policy.restore_test.%s: the restore-test server must never be a tenant's own", field)
		}
	}
	for i, t := range c.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		if field, ok := servers[filepath.Clean(c.Resolve(t.DSNFile))]; ok && t.DSNFile != "" {
			p.addf(path+".dsn_file", "is policy.restore_test.%s: the restore-test server must never be a tenant's own", field)
		}
		// Probes without a restore-test server make that tenant's restore
		// tests impossible, not the config invalid: RestoreTestGaps.
		if t.Engine == "files" && len(t.Probes) > 0 {
			p.addf(path+".probes", "a files tenant has no database to probe")
		}
		names := map[string]bool{}
		for j, pr := range t.Probes {
			pp := fmt.Sprintf("%s.probes[%d]", path, j)
			switch {
			case pr.Name == "":
				p.addf(pp+".name", "required")
			case !nameRE.MatchString(pr.Name):
				p.addf(pp+".name", "%q: use letters, digits, '.', '_' and '-'", pr.Name)
			case names[pr.Name]:
				p.addf(pp+".name", "%q is used twice", pr.Name)
			}
			names[pr.Name] = true
			if pr.SQL == "" {
				p.addf(pp+".sql", "required (a query returning one value)")
			}
			if pr.Expect == nil && pr.Min == nil && pr.Max == nil {
				p.addf(pp, "give expect, or min and/or max")
			}
			if pr.Expect != nil && (pr.Min != nil || pr.Max != nil) {
				p.addf(pp, "give either expect or min/max, not both")
			}
			if pr.Min != nil && pr.Max != nil && *pr.Min > *pr.Max {
				p.addf(pp, "min %v is above max %v", *pr.Min, *pr.Max)
			}
		}
	}
}

// RestoreTestGap says why the scheduled restore test of tenant t cannot
// run for want of configuration, or "" when it can: a PostgreSQL or
// MariaDB/MySQL tenant whose engine has no restore-test server (SQLite
// tenants restore into scratch_dir; files tenants are not tested).
func (c *Config) RestoreTestGap(t *Tenant) string {
	field := ""
	switch t.Engine {
	case "postgres":
		if c.Policy.RestoreTest.ServerDSNFile == "" {
			field = "server_dsn_file"
		}
	case "mariadb", "mysql":
		if c.Policy.RestoreTest.MariaDBServerDSNFile == "" {
			field = "mariadb_server_dsn_file"
		}
	}
	if field == "" {
		return ""
	}
	if len(t.Probes) > 0 {
		return fmt.Sprintf("its restore tests (and their %s) cannot run: no restore-test server for %s; set policy.restore_test.%s (a dedicated server)",
			plural(len(t.Probes), "probe", "probes"), t.Engine, field)
	}
	return fmt.Sprintf("its scheduled restore test cannot run: no restore-test server for %s; set policy.restore_test.%s (a dedicated server)", t.Engine, field)
}

// RestoreTestGaps lists the declared tenants whose restore tests cannot run
// (RestoreTestGap). Those with probes are problems (someone meant them to
// be tested: `kluis config check` fails); the others are warnings. Neither
// stops any command or another tenant's jobs: backups run, `kluis status`
// warns (a problem for a tenant with probes), and the daemon logs them and
// sets kluis_restore_test_runnable to 0.
func (c *Config) RestoreTestGaps() (problems, warnings []Problem) {
	for i := range c.Tenants {
		t := &c.Tenants[i]
		gap := c.RestoreTestGap(t)
		switch {
		case gap == "":
		case len(t.Probes) > 0:
			problems = append(problems, Problem{Path: fmt.Sprintf("tenants[%d].probes", i), Message: "tenant " + t.ID + ": " + gap})
		default:
			warnings = append(warnings, Problem{Path: fmt.Sprintf("tenants[%d]", i), Message: "tenant " + t.ID + ": " + gap})
		}
	}
	return problems, warnings
}
