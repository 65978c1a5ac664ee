package appliance

import (
	"os"
	"strings"

	"github.com/kluis-nl/kluis/dsn"
)

// KnownDSNs returns every connection string the config refers to: each
// tenant's (a dsn_file, or the DSN discovery set), each discovery server's
// and each restore-test server's. The files are read as they are, without
// the checks ReadDSN makes: the point is to know what must never be
// printed, even from a file that is refused for its mode.
func (a *Appliance) KnownDSNs() []string {
	var files []string
	var out []string
	for _, t := range a.Cfg.Tenants {
		if t.DSN != "" {
			out = append(out, t.DSN)
		}
		if t.DSNFile != "" {
			files = append(files, t.DSNFile)
		}
	}
	for _, d := range a.Cfg.Discover {
		files = append(files, d.DSNFile)
	}
	rt := a.Cfg.Policy.RestoreTest
	files = append(files, rt.ServerDSNFile, rt.MariaDBServerDSNFile)
	for _, f := range files {
		if f == "" {
			continue
		}
		if b, err := os.ReadFile(a.Cfg.Resolve(f)); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// Redact removes from s the secrets of every DSN the config refers to
// (package dsn): for text about to be printed or logged.
func (a *Appliance) Redact(s string) string { return dsn.Redact(s, a.KnownDSNs()...) }
