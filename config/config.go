package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is a parsed kluis.yaml. Relative paths in it are resolved against
// the directory of the file.
type Config struct {
	Appliance Appliance  `yaml:"appliance"`
	Locations []Location `yaml:"locations"`
	Tenants   []Tenant   `yaml:"tenants"`
	Policy    Policy     `yaml:"policy"`
	// Dossiers are the named dossier profiles (config/dossier.go).
	Dossiers map[string]Dossier `yaml:"dossiers"`
	// Discover finds tenants on database servers (see config/daemon.go).
	Discover []Discover `yaml:"discover"`
	// Evidence names the auditor's recipient and the witnesses of the
	// evidence log (config/evidence.go).
	Evidence Evidence `yaml:"evidence"`
	// Web is the practice and auditor portal (config/web.go).
	Web Web `yaml:"web"`

	// Dir is the directory relative paths are resolved against.
	Dir string `yaml:"-"`
}

// Appliance holds the settings of this kluis installation.
type Appliance struct {
	ID             string `yaml:"id"`
	StateDir       string `yaml:"state_dir"`
	MasterKeyFile  string `yaml:"master_key_file"`
	SigningKeyFile string `yaml:"signing_key_file"`
	// RecoveryRecipient is an age X25519 public key ("age1…"). When set,
	// every tenant key is also wrapped to it, so the data survives the loss
	// of the appliance and its master key.
	RecoveryRecipient string `yaml:"recovery_recipient"`
	MetricsListen     string `yaml:"metrics_listen"`
	TimeZone          string `yaml:"time_zone"`
}

// Location is one place where every tenant repository is stored.
type Location struct {
	Name     string `yaml:"name"`
	Type     string `yaml:"type"`
	Path     string `yaml:"path"`
	Country  string `yaml:"country"`
	Site     string `yaml:"site"`
	Provider string `yaml:"provider"`
	// S3 settings of a location of type s3 (config/locations.go).
	Endpoint            string      `yaml:"endpoint"`
	Region              string      `yaml:"region"`
	Bucket              string      `yaml:"bucket"`
	Prefix              string      `yaml:"prefix"`
	PathStyle           bool        `yaml:"path_style"`
	AccessKeyIDFile     string      `yaml:"access_key_id_file"`
	SecretAccessKeyFile string      `yaml:"secret_access_key_file"`
	CAFile              string      `yaml:"ca_file"`
	ObjectLock          *ObjectLock `yaml:"object_lock"`
}

// Tenant is one practice database.
type Tenant struct {
	ID     string `yaml:"id"`
	Engine string `yaml:"engine"`
	// Path is the database file of a sqlite tenant.
	Path string `yaml:"path"`
	// DSNFile names a file holding the connection string (with any
	// password) of a postgres tenant.
	DSNFile  string `yaml:"dsn_file"`
	Schedule string `yaml:"schedule"`
	// LockTimeout overrides policy.lock_timeout for this tenant.
	LockTimeout Duration `yaml:"lock_timeout"`
	// Dossier names the tenant's dossier profile under dossiers:.
	Dossier string `yaml:"dossier"`
	// Probes are SQL checks run on every restore test (config/restoretest.go).
	Probes []Probe `yaml:"probes"`
	// DSN is set by tenant discovery (never from YAML): the server DSN with
	// the database name replaced. It is a secret and never logged.
	DSN string `yaml:"-"`
	// Discovered is true for a tenant found by a discover block.
	Discovered bool `yaml:"-"`
}

// Policy holds defaults for every tenant.
type Policy struct {
	Retention    Retention `yaml:"retention"`
	PackSize     ByteSize  `yaml:"pack_size"`
	ChunkAverage ByteSize  `yaml:"chunk_average"`
	// DeltaMaxSteps bounds how many nights in a row a PostgreSQL table
	// with a primary key is stored as a row delta before it is stored
	// whole again (docs/format.md, "Row deltas"): 0 (absent) is the
	// default, 6; -1 never stores a delta.
	DeltaMaxSteps int `yaml:"delta_max_steps"`
	// Reseal: a backup that stored at least this much (a first night, a
	// night of fresh bases) seals its packs again at zstd's best level
	// once committed (repo.Backup.Reseal); "off" never does. Absent:
	// DefaultResealAbove.
	Reseal         string    `yaml:"reseal"`
	RequiredCopies int       `yaml:"required_copies"`
	Residency      Residency `yaml:"residency"`
	// Daemon settings (config/daemon.go).
	BackupWindow      string   `yaml:"backup_window"`
	RetentionTime     string   `yaml:"retention_time"`
	MaxConcurrentJobs int      `yaml:"max_concurrent_jobs"`
	Retry             Retry    `yaml:"retry"`
	RPOTarget         Duration `yaml:"rpo_target"`
	ShutdownGrace     Duration `yaml:"shutdown_grace"`
	// RetentionShortenDelay is how long an approved retention change
	// that shortens a tenant's retention waits before it takes effect
	// (an admin can cancel it meanwhile: kluis retention cancel).
	RetentionShortenDelay Duration `yaml:"retention_shorten_delay"`
	// Time limits that keep one tenant's trouble from stalling the others
	// (config/daemon.go): how long a backup waits for a table lock on the
	// source, how long one job may run, and how long one location
	// operation may take.
	LockTimeout     Duration `yaml:"lock_timeout"`
	JobTimeout      Duration `yaml:"job_timeout"`
	LocationTimeout Duration `yaml:"location_timeout"`
	// RestoreTest schedules and targets restore tests (config/restoretest.go).
	RestoreTest RestoreTest `yaml:"restore_test"`
	// PgDump is the pg_dump binary for PostgreSQL tenants (relative to the
	// config file's directory); it must be at least each server's major
	// version. Default: the server's major version's under
	// /usr/lib/postgresql, else a newer one there, else pg_dump on PATH.
	PgDump string `yaml:"pg_dump"`
	// Verify is the daemon's nightly verify job (config/verify.go).
	Verify Verify `yaml:"verify"`
}

// Retention says which snapshots forget keeps.
type Retention struct {
	KeepLast    int `yaml:"keep_last" json:"keep_last"`
	KeepDaily   int `yaml:"keep_daily" json:"keep_daily"`
	KeepWeekly  int `yaml:"keep_weekly" json:"keep_weekly"`
	KeepMonthly int `yaml:"keep_monthly" json:"keep_monthly"`
}

// Residency constrains where locations may be.
type Residency struct {
	Country string `yaml:"country"`
}

// DefaultResealAbove is policy.reseal's default: 16 MiB stored, which a
// first night or a night of fresh bases reaches and an increment of a
// working day does not.
const DefaultResealAbove = 16 << 20

// ResealAbove is policy.reseal in bytes (repo.BackupOptions.ResealAbove):
// 0 when "off". Validate has refused anything else that does not parse.
func (p *Policy) ResealAbove() int64 {
	switch strings.TrimSpace(p.Reseal) {
	case "":
		return DefaultResealAbove
	case "off":
		return 0
	}
	n, err := ParseByteSize(p.Reseal)
	if err != nil || n < 1 {
		return DefaultResealAbove
	}
	return n
}

// ByteSize is a size in bytes, written in YAML as a number or with a unit
// ("16MiB", "64KiB", "1GB").
type ByteSize int64

// UnmarshalYAML parses a size with an optional unit. Its error is a
// yaml.TypeError with the line, so that Parse can name the field path.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*b = ByteSize(v)
	return nil
}

var units = []struct {
	suffix string
	mul    int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseByteSize parses "16MiB", "500KB", "4096".
func ParseByteSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mul {
		return 0, fmt.Errorf("invalid size %q (use e.g. 16MiB)", orig)
	}
	return n * mul, nil
}

// Defaults applied by Load when a field is left out.
const (
	DefaultPackSize       = 16 << 20
	DefaultRequiredCopies = 2
	DefaultCountry        = "NL"
	DefaultTimeZone       = "Europe/Amsterdam"
)

// MaxFileSize bounds the config file; anything larger is not a config.
const MaxFileSize = 4 << 20

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config; dir resolves relative paths.
func Parse(data []byte, dir string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, cleanYAMLError(err, nil)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("empty config")
	}
	var c Config
	if err := decodeStrict(data, &c); err != nil {
		return nil, cleanYAMLError(err, &root)
	}
	c.Dir = dir
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeStrict decodes data into c, refusing unknown fields. yaml.v3
// panics on some hostile input (a merge key whose value is a mapping used
// as a key, found by FuzzConfigParse): that is an invalid config, not a
// crash.
func decodeStrict(data []byte, c *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot decode: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(c)
}

func (c *Config) applyDefaults() {
	if c.Policy.PackSize == 0 {
		c.Policy.PackSize = DefaultPackSize
	}
	if c.Policy.RequiredCopies == 0 {
		c.Policy.RequiredCopies = DefaultRequiredCopies
	}
	if c.Policy.Residency.Country == "" {
		c.Policy.Residency.Country = DefaultCountry
	}
	if c.Appliance.TimeZone == "" {
		c.Appliance.TimeZone = DefaultTimeZone
	}
	if c.Appliance.StateDir == "" {
		c.Appliance.StateDir = "state"
	}
	c.applyRestoreTestDefaults()
	c.applyVerifyDefaults()
}

// Resolve returns p made absolute against the config's directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Tenant returns the tenant with the given id.
func (c *Config) Tenant(id string) (*Tenant, error) {
	for i := range c.Tenants {
		if c.Tenants[i].ID == id {
			return &c.Tenants[i], nil
		}
	}
	return nil, fmt.Errorf("no tenant %q in the config", id)
}

// Location returns the location with the given name.
func (c *Config) Location(name string) (*Location, error) {
	for i := range c.Locations {
		if c.Locations[i].Name == name {
			return &c.Locations[i], nil
		}
	}
	return nil, fmt.Errorf("no location %q in the config", name)
}

var (
	lineRE         = regexp.MustCompile(`line (\d+): `)
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found`)
)

// cleanYAMLError turns yaml.v3's messages into ones that name the field
// path: "line 7: locations[1]: field pth not found".
func cleanYAMLError(err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if sub := lineRE.FindStringSubmatch(m); sub != nil && root != nil {
			line, _ := strconv.Atoi(sub[1])
			key := ""
			if f := unknownFieldRE.FindStringSubmatch(m); f != nil {
				key = f[1]
			}
			if p := pathAtLine(root, line, key); p != "" {
				m = strings.Replace(m, sub[0], sub[0]+p+": ", 1)
			}
		}
		m = strings.ReplaceAll(m, " in type config.", " in ")
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// pathAtLine returns the field path of the deepest mapping key on line;
// when key is set, only a key of that name (a flow mapping holds several
// keys on one line).
func pathAtLine(n *yaml.Node, line int, key string) string {
	var best string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line && (key == "" || k.Value == key) {
					best = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind != yaml.MappingNode {
					best = p
				}
				walk(c, p)
			}
		}
	}
	walk(n, "")
	return best
}
