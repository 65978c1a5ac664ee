package restoretest

import (
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
)

// PickLocation returns the location a tenant's next restore test reads
// from: the one least recently proven (its newest PASS for the tenant is
// the oldest, or it has none), then the one least recently tested, then
// the first in the config. Scheduled tests so alternate between
// locations, and a location whose test failed is tested again (and the
// failure stays visible) until it passes. previous are earlier reports
// of any tenant, in any order.
func PickLocation(c *config.Config, tenant string, previous []evidence.Report) string {
	if len(c.Locations) == 0 {
		return ""
	}
	proven := map[string]time.Time{}
	tested := map[string]time.Time{}
	for _, r := range previous {
		if r.Tenant != tenant {
			continue
		}
		name := r.Location.Name
		if r.Started.After(tested[name]) {
			tested[name] = r.Started
		}
		if r.Verdict == evidence.Pass && r.Started.After(proven[name]) {
			proven[name] = r.Started
		}
	}
	best := c.Locations[0].Name
	for _, l := range c.Locations[1:] {
		n := l.Name
		switch {
		case proven[n].Before(proven[best]):
			best = n
		case proven[n].Equal(proven[best]) && tested[n].Before(tested[best]):
			best = n
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
