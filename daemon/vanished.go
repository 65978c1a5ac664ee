package daemon

import (
	"fmt"
	"sort"
	"time"

	"github.com/kluis-nl/kluis/appliance"
)

// KindRetire is the job-history record `kluis tenants retire` writes: the
// operator acknowledged that a tenant is gone for good.
const KindRetire = "retire"

// GoneTenant is a tenant the appliance backed up that is no longer
// declared or discovered (its database was dropped, or it was removed
// from the config or from discovery's pattern).
type GoneTenant struct {
	Tenant     string    `json:"tenant"`
	LastBackup time.Time `json:"last_backup"`
	// Retired is true once an operator acknowledged it (`kluis tenants
	// retire`) after its last backup; until then it is a problem.
	Retired bool `json:"retired,omitempty"`
}

// GoneTenants returns, sorted by id, the tenants with a successful backup
// in the job history that a (after discovery) no longer has. Their
// snapshots stay at the locations under retention.
func GoneTenants(a *appliance.Appliance, hist []appliance.Record) []GoneTenant {
	lastBackup := map[string]time.Time{}
	lastRetire := map[string]time.Time{}
	for _, r := range hist {
		switch {
		case r.Job == KindBackup && r.OK && r.Tenant != "":
			if r.Time.After(lastBackup[r.Tenant]) {
				lastBackup[r.Tenant] = r.Time
			}
		case r.Job == KindRetire && r.OK:
			if r.Time.After(lastRetire[r.Tenant]) {
				lastRetire[r.Tenant] = r.Time
			}
		}
	}
	var out []GoneTenant
	for id, at := range lastBackup {
		if _, err := a.Cfg.Tenant(id); err == nil {
			continue
		}
		out = append(out, GoneTenant{Tenant: id, LastBackup: at, Retired: !lastRetire[id].Before(at)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}

// goneProblem is the status line of a tenant that vanished unacknowledged.
func goneProblem(g GoneTenant) string {
	return fmt.Sprintf("tenant is no longer declared or discovered (database dropped, or removed from the config?); last backup %s. "+
		"If it is gone for good, acknowledge with `kluis tenants retire %s` (its snapshots stay under retention)",
		g.LastBackup.UTC().Format(time.RFC3339), g.Tenant)
}

// RetireTenant records that an operator acknowledged a gone tenant
// (`kluis tenants retire`): status stops reporting it as a problem, the
// daemon drops its kluis_tenant_gone series at its next discovery or
// reload, and its snapshots stay at the locations under retention. A
// tenant that is still declared or discovered, or was never backed up,
// is refused. a must include discovered tenants (Status does that).
func RetireTenant(a *appliance.Appliance, tenant string) (GoneTenant, error) {
	if _, err := a.Cfg.Tenant(tenant); err == nil {
		return GoneTenant{}, fmt.Errorf("tenant %s is still declared or discovered: remove it from the config (or drop its database) first", tenant)
	}
	hist, err := a.History()
	if err != nil {
		return GoneTenant{}, fmt.Errorf("job history: %w", err)
	}
	for _, g := range GoneTenants(a, hist) {
		if g.Tenant != tenant {
			continue
		}
		rec := appliance.Record{Time: a.Now().UTC(), Tenant: tenant, Job: KindRetire, OK: true}
		if err := a.AppendHistory(rec); err != nil {
			return GoneTenant{}, err
		}
		g.Retired = true
		return g, nil
	}
	return GoneTenant{}, fmt.Errorf("tenant %s was never backed up by this appliance (nothing to retire)", tenant)
}
