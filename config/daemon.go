package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Discover is one tenant-discovery block: every database on a server (or
// every SQLite file under a glob) whose name matches Pattern becomes a
// tenant, without editing the YAML.
type Discover struct {
	// Engine is postgres (list databases on a server) or sqlite (a path
	// glob).
	Engine string `yaml:"engine"`
	// DSNFile holds the server's connection string (postgres); the database
	// name in it is replaced by each discovered database.
	DSNFile string `yaml:"dsn_file"`
	// Pattern is a shell glob (path.Match) over database names (postgres),
	// or over file paths (sqlite: filepath.Glob, relative to the config).
	Pattern string `yaml:"pattern"`
	// IDTemplate makes a tenant id from a match: "{db}" is the database
	// name (postgres) or the file name without extension (sqlite). The
	// result is lower-cased and every other character becomes '_'.
	IDTemplate string `yaml:"id_template"`
	// Schedule overrides the backup window for discovered tenants.
	Schedule string `yaml:"schedule"`
}

// Retry says how often a failed job is tried again and how long to wait
// before the first retry (doubling each time).
type Retry struct {
	Attempts int      `yaml:"attempts"`
	Backoff  Duration `yaml:"backoff"`
}

// Duration is a time.Duration written in YAML as "90s", "5m", "26h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration. Its error is a yaml.TypeError with
// the line, so that Parse can name the field path.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q (use e.g. 90s, 5m, 26h)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as "5m0s", which UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Daemon defaults, applied by Load when a field is left out.
const (
	DefaultBackupWindow      = "01:00-05:00"
	DefaultMaxConcurrentJobs = 2
	DefaultRetryAttempts     = 3
	DefaultRetryBackoff      = Duration(5 * time.Minute)
	DefaultRPOTarget         = Duration(26 * time.Hour)
	DefaultShutdownGrace     = Duration(5 * time.Minute)
	// DefaultRetentionShortenDelay is policy.retention_shorten_delay's
	// default; MinRetentionShortenDelay its least value.
	DefaultRetentionShortenDelay = Duration(24 * time.Hour)
	MinRetentionShortenDelay     = Duration(time.Hour)
	DefaultIDTemplate            = "{db}"
	// DefaultLockTimeout is how long a backup waits for a lock on a source
	// table (another session's ALTER TABLE, VACUUM FULL, LOCK TABLE) before
	// it gives up, frees its job slot and is retried later.
	DefaultLockTimeout = Duration(2 * time.Minute)
	// DefaultJobTimeout is the deadline of one job run (a backup, a sync, a
	// restore test): a job stuck on anything is cancelled and retried.
	DefaultJobTimeout = Duration(12 * time.Hour)
	// DefaultLocationTimeout is the deadline of one location operation (a
	// put, a get, a list page): a hung endpoint costs this long, not hours.
	DefaultLocationTimeout = Duration(2 * time.Minute)
)

// TenantLockTimeout is the lock timeout of a tenant: its own
// lock_timeout, else policy.lock_timeout.
func (c *Config) TenantLockTimeout(t *Tenant) time.Duration {
	if t != nil && t.LockTimeout > 0 {
		return t.LockTimeout.D()
	}
	return c.Policy.LockTimeout.D()
}

// CronParser parses tenant schedules: five-field cron specs and the
// descriptors (@daily, @hourly, @every 90m).
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseWindow parses "HH:MM-HH:MM" into offsets from midnight. The end may
// be earlier than the start (a window across midnight).
func ParseWindow(s string) (start, length time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	st, err := ParseClock(a)
	if err != nil {
		return 0, 0, err
	}
	en, err := ParseClock(b)
	if err != nil {
		return 0, 0, err
	}
	length = en - st
	if length <= 0 {
		length += 24 * time.Hour
	}
	return st, length, nil
}

var clockRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

// ParseClock parses "HH:MM" into an offset from midnight.
func ParseClock(s string) (time.Duration, error) {
	m := clockRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q: want HH:MM (00:00 to 23:59)", s)
	}
	var h, mi int
	fmt.Sscan(m[1], &h)
	fmt.Sscan(m[2], &mi)
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute, nil
}

var idTemplateCharsRE = regexp.MustCompile(`^[a-z0-9_{}-]*$`)

func (c *Config) applyDaemonDefaults() {
	p := &c.Policy
	if p.BackupWindow == "" {
		p.BackupWindow = DefaultBackupWindow
	}
	if p.MaxConcurrentJobs == 0 {
		p.MaxConcurrentJobs = DefaultMaxConcurrentJobs
	}
	if p.Retry.Attempts == 0 {
		p.Retry.Attempts = DefaultRetryAttempts
	}
	if p.Retry.Backoff == 0 {
		p.Retry.Backoff = DefaultRetryBackoff
	}
	if p.RPOTarget == 0 {
		p.RPOTarget = DefaultRPOTarget
	}
	if p.ShutdownGrace == 0 {
		p.ShutdownGrace = DefaultShutdownGrace
	}
	if p.RetentionShortenDelay == 0 {
		p.RetentionShortenDelay = DefaultRetentionShortenDelay
	}
	if p.LockTimeout == 0 {
		p.LockTimeout = DefaultLockTimeout
	}
	if p.JobTimeout == 0 {
		p.JobTimeout = DefaultJobTimeout
	}
	if p.LocationTimeout == 0 {
		p.LocationTimeout = DefaultLocationTimeout
	}
	for i := range c.Discover {
		if c.Discover[i].IDTemplate == "" {
			c.Discover[i].IDTemplate = DefaultIDTemplate
		}
	}
}

// validateDaemon checks the daemon's settings: schedules, window, retry,
// durations and discovery blocks. It opens no connection.
func (c *Config) validateDaemon(p *Problems) {
	c.applyDaemonDefaults()
	pol := c.Policy
	if _, _, err := ParseWindow(pol.BackupWindow); err != nil {
		p.addf("policy.backup_window", "%v", err)
	}
	if pol.RetentionTime != "" {
		if _, err := ParseClock(pol.RetentionTime); err != nil {
			p.addf("policy.retention_time", "%v", err)
		}
	}
	if pol.MaxConcurrentJobs < 1 || pol.MaxConcurrentJobs > 64 {
		p.addf("policy.max_concurrent_jobs", "%d: must be between 1 and 64", pol.MaxConcurrentJobs)
	}
	if pol.Retry.Attempts < 1 || pol.Retry.Attempts > 20 {
		p.addf("policy.retry.attempts", "%d: must be between 1 and 20 (1 = no retry)", pol.Retry.Attempts)
	}
	if pol.RPOTarget.D() < time.Hour {
		p.addf("policy.rpo_target", "%s: must be at least 1h", pol.RPOTarget.D())
	}
	if pol.RetentionShortenDelay < MinRetentionShortenDelay {
		p.addf("policy.retention_shorten_delay", "%s: must be at least %s", pol.RetentionShortenDelay.D(), MinRetentionShortenDelay.D())
	}
	if d := pol.LockTimeout.D(); d < time.Second || d > 24*time.Hour {
		p.addf("policy.lock_timeout", "%s: must be between 1s and 24h", d)
	}
	if d := pol.JobTimeout.D(); d < time.Minute {
		p.addf("policy.job_timeout", "%s: must be at least 1m", d)
	}
	if d := pol.LocationTimeout.D(); d < time.Second || d > time.Hour {
		p.addf("policy.location_timeout", "%s: must be between 1s and 1h", d)
	}
	for i, t := range c.Tenants {
		if d := t.LockTimeout.D(); d != 0 && (d < time.Second || d > 24*time.Hour) {
			p.addf(fmt.Sprintf("tenants[%d].lock_timeout", i), "%s: must be between 1s and 24h", d)
		}
		if t.Schedule != "" {
			if _, err := CronParser.Parse(t.Schedule); err != nil {
				p.addf(fmt.Sprintf("tenants[%d].schedule", i), "%q: %v (use a cron spec like \"30 2 * * *\" or \"@every 6h\")", t.Schedule, err)
			}
		}
	}
	for i, d := range c.Discover {
		fp := fmt.Sprintf("discover[%d]", i)
		switch d.Engine {
		case "postgres":
			if d.DSNFile == "" {
				p.addf(fp+".dsn_file", "required for engine postgres (a file holding the server's connection string)")
			} else {
				c.checkSecretFile(p, fp+".dsn_file", d.DSNFile)
			}
			if _, err := path.Match(d.Pattern, ""); err != nil {
				p.addf(fp+".pattern", "%q: %v", d.Pattern, err)
			}
		case "sqlite":
			if d.DSNFile != "" {
				p.addf(fp+".dsn_file", "not used by engine sqlite (pattern is a path glob)")
			}
			if _, err := path.Match(d.Pattern, ""); err != nil {
				p.addf(fp+".pattern", "%q: %v", d.Pattern, err)
			}
		default:
			p.addf(fp+".engine", "%q: want postgres or sqlite", d.Engine)
		}
		if d.Pattern == "" {
			p.addf(fp+".pattern", "required (a glob such as \"praktijk_*\")")
		}
		if !strings.Contains(d.IDTemplate, "{db}") {
			p.addf(fp+".id_template", "%q must contain {db}", d.IDTemplate)
		} else if !idTemplateCharsRE.MatchString(d.IDTemplate) {
			p.addf(fp+".id_template", "%q: use lower-case letters, digits, '_', '-' and {db}", d.IDTemplate)
		}
		if d.Schedule != "" {
			if _, err := CronParser.Parse(d.Schedule); err != nil {
				p.addf(fp+".schedule", "%q: %v", d.Schedule, err)
			}
		}
	}
}
