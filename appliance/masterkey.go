package appliance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/repo"
)

// TenantRepositories says, for each of the tenant ids, at which locations a
// repository (its config object) exists. A location that cannot be asked
// is an error naming it: nobody can then tell whether a repository is
// there. `kluis keys init --master-only` uses it before it makes a master
// key that would open none of them.
func (a *Appliance) TenantRepositories(ctx context.Context, tenants []string) (map[string][]string, error) {
	locs, err := a.Locations()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	var unreachable []string
	for _, l := range locs {
		for _, t := range tenants {
			_, err := l.Stat(ctx, t+"/config")
			switch {
			case err == nil:
				out[t] = append(out[t], l.Name())
			case errors.Is(err, repo.ErrNotFound):
			default:
				msg := err.Error()
				if !strings.HasPrefix(msg, "location "+l.Name()+":") {
					msg = "location " + l.Name() + ": " + msg
				}
				unreachable = append(unreachable, msg)
			}
			if err != nil && !errors.Is(err, repo.ErrNotFound) {
				break // one error per location is enough
			}
		}
	}
	if len(unreachable) > 0 {
		return out, fmt.Errorf("cannot tell which tenants have a repository: %s", strings.Join(unreachable, "; "))
	}
	for t := range out {
		sort.Strings(out[t])
	}
	return out, nil
}

// missingMasterKeyAdvice is KeyAdvice for an appliance that lost only its
// master key (the signing key is there) and has backups: `kluis keys init`
// refuses (the signing key exists) and `kluis keys recover` needs a master
// key to wrap under.
func (a *Appliance) missingMasterKeyAdvice() string {
	why := a.hasHistory()
	if why == "" {
		return ""
	}
	if _, err := os.Stat(a.Cfg.Resolve(a.Cfg.Appliance.SigningKeyFile)); errors.Is(err, fs.ErrNotExist) || a.Cfg.Appliance.SigningKeyFile == "" {
		return ""
	}
	return fmt.Sprintf("this appliance already has backups (%s): do NOT run `kluis keys init`; put back the master key from its offline copy, or make a new one and re-wrap every tenant key with the offline recovery identity: `kluis keys init --master-only --identity FILE` (as `kluis keys recover` does, for every tenant; docs/ops.md, \"Keys and recovery\")", why)
}
