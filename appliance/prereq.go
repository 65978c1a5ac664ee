package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis-nl/kluis/config"
)

// KeyAdvice says how to get a missing appliance key file back. A fresh
// appliance creates its keys with `kluis keys init`; one that already has
// history (a state directory with entries, or a tenant repository at a
// local location) must not: keys init makes a new master key that opens
// none of its repositories. It is told to put back the offline copy, or to
// recover the tenant keys with `kluis keys recover`.
func (a *Appliance) KeyAdvice() string {
	if why := a.hasHistory(); why != "" {
		return fmt.Sprintf("this appliance already has backups (%s): do NOT run `kluis keys init`, which would create a new master key that opens none of them; put back the key file from its offline copy, or re-wrap each tenant key with `kluis keys recover` (docs/ops.md, \"Keys and recovery\")", why)
	}
	return "a new appliance: create the keys with `kluis keys init`"
}

// hasHistory says why the appliance has history, or "" when nothing
// shows it (read offline: the state directory and local locations).
func (a *Appliance) hasHistory() string {
	// Locks and the daemon's lock file are no history: any command makes
	// them, before the keys exist too.
	if entries, err := os.ReadDir(a.StateDir()); err == nil {
		for _, e := range entries {
			if n := e.Name(); n != "locks" && !strings.HasSuffix(n, ".lock") && !strings.HasPrefix(n, ".") {
				return fmt.Sprintf("state directory %s holds %s", a.Cfg.Appliance.StateDir, n)
			}
		}
	}
	for _, l := range a.Cfg.Locations {
		if l.Type != "dir" {
			continue
		}
		dirs, err := os.ReadDir(a.Cfg.Resolve(l.Path))
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if _, err := os.Lstat(filepath.Join(a.Cfg.Resolve(l.Path), d.Name(), "config")); err == nil {
				return fmt.Sprintf("location %s holds tenant %s's repository", l.Name, d.Name())
			}
		}
	}
	return ""
}

// MissingFiles lists the files the config names that do not exist: the
// master and signing key files and each tenant's and discover block's
// DSN file. Config validation cannot refuse them (keys init creates the
// keys after the config is written); `kluis config check` reports them.
func (a *Appliance) MissingFiles() []config.Problem {
	var out []config.Problem
	missing := func(path, file string) bool {
		if file == "" {
			return false
		}
		_, err := os.Stat(a.Cfg.Resolve(file))
		return errors.Is(err, fs.ErrNotExist)
	}
	keyAdvice := ""
	for _, k := range []struct{ path, file string }{
		{"appliance.master_key_file", a.Cfg.Appliance.MasterKeyFile},
		{"appliance.signing_key_file", a.Cfg.Appliance.SigningKeyFile},
	} {
		if missing(k.path, k.file) {
			if keyAdvice == "" {
				keyAdvice = a.KeyAdvice()
			}
			advice := keyAdvice
			if k.path == "appliance.master_key_file" {
				if m := a.missingMasterKeyAdvice(); m != "" {
					advice = m
				}
			}
			out = append(out, config.Problem{Path: k.path, Message: fmt.Sprintf("%s does not exist; %s", k.file, advice)})
		}
	}
	for i, t := range a.Cfg.Tenants {
		if t.Discovered || t.DSNFile == "" {
			continue
		}
		if missing("", t.DSNFile) {
			out = append(out, config.Problem{Path: fmt.Sprintf("tenants[%d].dsn_file", i),
				Message: fmt.Sprintf("%s (tenant %s) does not exist: create it (mode 0600) with the tenant's connection string", t.DSNFile, t.ID)})
		}
	}
	for i, d := range a.Cfg.Discover {
		if missing("", d.DSNFile) {
			out = append(out, config.Problem{Path: fmt.Sprintf("discover[%d].dsn_file", i),
				Message: fmt.Sprintf("%s does not exist: create it (mode 0600) with the server's connection string", d.DSNFile)})
		}
	}
	rt := a.Cfg.Policy.RestoreTest
	for _, f := range []struct{ path, file string }{
		{"policy.restore_test.server_dsn_file", rt.ServerDSNFile},
		{"policy.restore_test.mariadb_server_dsn_file", rt.MariaDBServerDSNFile},
	} {
		if missing(f.path, f.file) {
			out = append(out, config.Problem{Path: f.path,
				Message: fmt.Sprintf("%s does not exist: create it (mode 0600) with the restore-test server's connection string", f.file)})
		}
	}
	return out
}

// KeyFileError adds KeyAdvice to the error of loading a key file that
// does not exist.
func (a *Appliance) KeyFileError(err error) error {
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("%w; %s", err, a.KeyAdvice())
}
