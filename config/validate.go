package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/secretfile"
)

// Engines lists the tenant engines this build supports.
var Engines = []string{"files", "sqlite", "postgres", "mariadb", "mysql"}

// LocationTypes lists the location backends this build supports.
var LocationTypes = []string{"dir", "s3"}

// tenantIDRE keeps tenant ids safe as path components, object prefixes and
// parts of database names.
var tenantIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Problems collects validation errors, each prefixed by its field path.
type Problems []string

func (p *Problems) addf(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

// Err returns nil when there are no problems, else a *ValidationError
// listing every one.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	ve := &ValidationError{}
	for _, s := range p {
		path, msg, ok := strings.Cut(s, ": ")
		if !ok {
			path, msg = "", s
		}
		ve.Problems = append(ve.Problems, Problem{Path: path, Message: msg})
	}
	return ve
}

// Problem is one thing wrong with a config: the field path and what is
// wrong with it.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError is every problem Validate found (errors.As it to list
// them, e.g. as JSON); its text is one "path: message" line each.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Message
		if p.Path != "" {
			lines[i] = p.Path + ": " + p.Message
		}
	}
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// plural is "1 site", "2 sites".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Validate checks the config without side effects. Every problem is
// reported, each naming its field path.
func (c *Config) Validate() error {
	var p Problems
	a := c.Appliance
	if a.ID == "" {
		p.addf("appliance.id", "required")
	} else if !nameRE.MatchString(a.ID) {
		p.addf("appliance.id", "%q: use letters, digits, '.', '_' and '-' (at most 63)", a.ID)
	}
	if a.MasterKeyFile == "" {
		p.addf("appliance.master_key_file", "required (create one with `kluis keys init`)")
	}
	if a.SigningKeyFile == "" {
		p.addf("appliance.signing_key_file", "required (create one with `kluis keys init`)")
	}
	if a.RecoveryRecipient != "" {
		if _, err := age.ParseX25519Recipient(a.RecoveryRecipient); err != nil {
			p.addf("appliance.recovery_recipient", "not an age X25519 recipient (age1…): %v", err)
		}
	}
	if _, err := time.LoadLocation(a.TimeZone); err != nil {
		p.addf("appliance.time_zone", "%v", err)
	}

	if len(c.Locations) == 0 {
		p.addf("locations", "at least one location is required")
	}
	names := map[string]int{}
	for i, l := range c.Locations {
		path := fmt.Sprintf("locations[%d]", i)
		switch {
		case l.Name == "":
			p.addf(path+".name", "required")
		case !nameRE.MatchString(l.Name):
			p.addf(path+".name", "%q: use letters, digits, '.', '_' and '-'", l.Name)
		default:
			if j, dup := names[l.Name]; dup {
				p.addf(path+".name", "%q is also the name of locations[%d]", l.Name, j)
			}
			names[l.Name] = i
		}
		if !contains(LocationTypes, l.Type) {
			p.addf(path+".type", "%q: want one of %s", l.Type, strings.Join(LocationTypes, ", "))
		}
		if l.Type == "dir" && l.Path == "" {
			p.addf(path+".path", "required for a dir location")
		}
		if l.Country == "" {
			p.addf(path+".country", "required (ISO 3166 code, e.g. NL)")
		}
		if l.Site == "" {
			p.addf(path+".site", "required (the data centre or city)")
		}
		if l.Provider == "" {
			p.addf(path+".provider", "required")
		}
	}
	c.checkResidency(&p)
	c.validateLocations(&p)

	ids := map[string]int{}
	for i, t := range c.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		if !tenantIDRE.MatchString(t.ID) {
			p.addf(path+".id", "%q: use lower-case letters, digits, '_' and '-' (at most 63)", t.ID)
		} else if j, dup := ids[t.ID]; dup {
			p.addf(path+".id", "%q is also the id of tenants[%d]", t.ID, j)
		} else {
			ids[t.ID] = i
		}
		switch t.Engine {
		case "files":
		case "sqlite":
			if t.Path == "" {
				p.addf(path+".path", "required for engine sqlite")
			}
		case "postgres", "mariadb", "mysql":
			if t.DSNFile == "" {
				p.addf(path+".dsn_file", "required for engine %s (a file holding the connection string)", t.Engine)
			}
		default:
			p.addf(path+".engine", "%q: want one of %s", t.Engine, strings.Join(Engines, ", "))
		}
		// The dsn_file's mode and type are the tenant's own problem
		// (TenantProblems), not the config's.
	}

	pol := c.Policy
	if pol.PackSize < 1<<20 || pol.PackSize > 1<<30 {
		p.addf("policy.pack_size", "%d bytes: must be between 1MiB and 1GiB", pol.PackSize)
	}
	if pol.ChunkAverage != 0 && (pol.ChunkAverage&(pol.ChunkAverage-1) != 0 || pol.ChunkAverage < 4<<10 || pol.ChunkAverage > 1<<20) {
		p.addf("policy.chunk_average", "%d bytes: must be a power of two between 4KiB and 1MiB", pol.ChunkAverage)
	}
	if pol.DeltaMaxSteps < -1 || pol.DeltaMaxSteps > 63 {
		p.addf("policy.delta_max_steps", "%d: must be -1 (never), 0 (the default, 6) or 1 to 63", pol.DeltaMaxSteps)
	}
	if v := strings.TrimSpace(pol.Reseal); v != "" && v != "off" {
		if n, err := ParseByteSize(v); err != nil || n < 1 {
			p.addf("policy.reseal", "%q: must be \"off\" or a size such as 16MiB (a backup that stores at least that much is re-sealed at zstd's best level)", pol.Reseal)
		}
	}
	if pol.RequiredCopies < 1 {
		p.addf("policy.required_copies", "must be at least 1")
	} else if pol.RequiredCopies > len(c.Locations) && len(c.Locations) > 0 {
		p.addf("policy.required_copies", "%d copies required but only %s configured", pol.RequiredCopies, plural(len(c.Locations), "location", "locations"))
	}
	if pol.Retention.negative() {
		p.addf("policy.retention", "keep counts cannot be negative")
	}

	c.validateDaemon(&p)
	c.checkSecretFile(&p, "appliance.master_key_file", a.MasterKeyFile)
	c.checkSecretFile(&p, "appliance.signing_key_file", a.SigningKeyFile)
	c.validateDossiers(&p)
	c.validateRestoreTest(&p)
	c.validateVerify(&p)
	c.validateEvidence(&p)
	c.validateWeb(&p)
	return p.Err()
}

// TenantProblems reports, per tenant id, the problems that concern that
// tenant alone: a dsn_file that group or others can read, or that is a
// directory. They fail that tenant's jobs (appliance.ReadDSN refuses the
// file) and show in `kluis status`, but do not make the config invalid:
// one careless chmod must not stop every other tenant's backup (issue 18
// point 7). `kluis config check` reports them with the rest and fails.
func (c *Config) TenantProblems() map[string]Problems {
	out := map[string]Problems{}
	for i, t := range c.Tenants {
		if t.DSNFile == "" {
			continue
		}
		var p Problems
		c.checkSecretFile(&p, fmt.Sprintf("tenants[%d].dsn_file", i), t.DSNFile)
		if len(p) > 0 {
			out[t.ID] = p
		}
	}
	return out
}

// checkResidency enforces the data-residency policy: the required number
// of copies at distinct sites in the required country.
func (c *Config) checkResidency(p *Problems) {
	country := c.Policy.Residency.Country
	sites := map[string]bool{}
	firstAt := map[string]int{}
	for i, l := range c.Locations {
		if l.Country != "" && !strings.EqualFold(l.Country, country) {
			p.addf(fmt.Sprintf("locations[%d].country", i), "%q is outside the required country %s (policy.residency.country)", l.Country, country)
			continue
		}
		if l.Site != "" {
			site := strings.ToLower(l.Site)
			if j, dup := firstAt[site]; dup {
				p.addf(fmt.Sprintf("locations[%d].site", i), "%q is the same site as locations[%d] (%s): the copies must be at distinct sites", l.Site, j, c.Locations[j].Name)
			} else {
				firstAt[site] = i
			}
			sites[site] = true
		}
	}
	if need := c.Policy.RequiredCopies; len(c.Locations) > 0 && len(sites) < need {
		p.addf("locations", "%s in %s, but policy.required_copies is %d", plural(len(sites), "distinct site", "distinct sites"), country, need)
	}
}

// checkSecretFile reports a secret file that others could read. A missing
// file is not a problem here: `kluis keys init` creates the key files, and
// the commands that need a file say so when it is absent.
func (c *Config) checkSecretFile(p *Problems, path, file string) {
	if file == "" {
		return
	}
	fi, err := os.Stat(c.Resolve(file))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		p.addf(path, "%v", err)
		return
	}
	if fi.IsDir() {
		p.addf(path, "%s is a directory", file)
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		p.addf(path, "%s is readable by group or others (mode %04o): run chmod 600 %s", file, fi.Mode().Perm(), file)
		return
	}
	// The checks every reader makes: no symbolic link, the kluis user's
	// own file in a directory nobody else can write.
	if _, err := secretfile.Read(c.Resolve(file), 64<<10); err != nil {
		p.addf(path, "%v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
