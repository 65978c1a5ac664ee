package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// discoveryMetrics announce what discovery found: ids that collide (none
// of their databases is backed up: red until resolved) and tenants seen
// for the first time.
type discoveryMetrics struct {
	collisions prometheus.Gauge
	newTenants prometheus.Counter
}

func newDiscoveryMetrics(reg *prometheus.Registry) *discoveryMetrics {
	m := &discoveryMetrics{
		collisions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kluis_discovery_collisions",
			Help: "Tenant ids that two or more discovered databases map to; none of them is backed up (0 when all is well)."}),
		newTenants: prometheus.NewCounter(prometheus.CounterOpts{Name: "kluis_discovered_tenants_new_total",
			Help: "Tenants discovery found that it had not seen before (each is also logged)."}),
	}
	reg.MustRegister(m.collisions, m.newTenants)
	return m
}

// collided returns the ids of a discovery's collisions.
func collided(res appliance.Discovered) map[string]bool {
	out := map[string]bool{}
	for _, c := range res.Collisions {
		out[c.ID] = true
	}
	return out
}

// noteDiscovery logs and counts a discovery's collisions and the tenants
// in found that prev did not hold.
func (d *Daemon) noteDiscovery(res appliance.Discovered, prev, found []config.Tenant) {
	for _, c := range res.Collisions {
		d.log.Error("tenant discovery: id collision, none of the databases is backed up", "tenant", c.ID, "err", c)
	}
	d.metrics.disc.collisions.Set(float64(len(res.Collisions)))
	old := map[string]bool{}
	for _, t := range prev {
		old[t.ID] = true
	}
	for _, t := range found {
		if !old[t.ID] {
			d.log.Warn("discovered a new tenant: it is backed up from now on", "tenant", t.ID, "engine", t.Engine)
			d.metrics.disc.newTenants.Inc()
		}
	}
}
