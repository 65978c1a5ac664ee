package restoretest

import (
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
)

// PickLocation returns the location a tenant's next restore test reads
// from: the one least recently tested (never tested first, then the first
// in the config), whatever the verdicts. Scheduled tests so alternate
// between locations and keep proving every copy: a location whose test
// failed does not keep the others from being tested, and is retried in
// its turn (every other run with two locations) while the failure stays
// visible. previous are earlier reports of any tenant, in any order.
func PickLocation(c *config.Config, tenant string, previous []evidence.Report) string {
	if len(c.Locations) == 0 {
		return ""
	}
	tested := map[string]time.Time{}
	for _, r := range previous {
		if r.Tenant == tenant && r.Started.After(tested[r.Location.Name]) {
			tested[r.Location.Name] = r.Started
		}
	}
	best := c.Locations[0].Name
	for _, l := range c.Locations[1:] {
		if tested[l.Name].Before(tested[best]) {
			best = l.Name
		}
	}
	return best
}

// EvidenceLocation is a configured location as a report names it.
func EvidenceLocation(l config.Location) evidence.Location {
	return evidence.Location{Name: l.Name, Country: l.Country, Site: l.Site, Provider: l.Provider}
}

// EvidenceLocations are every configured location as reports name them,
// for an export's summary (a location no report proves shows "never").
func EvidenceLocations(c *config.Config) []evidence.Location {
	out := make([]evidence.Location, 0, len(c.Locations))
	for _, l := range c.Locations {
		out = append(out, EvidenceLocation(l))
	}
	return out
}
