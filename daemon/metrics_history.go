package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kluis-nl/kluis/repo"
)

// historyMetrics are the gauges derived from the locations' listings and
// the ledger (repo.Presence) and from the verify job: the same facts
// `kluis status` and `kluis snapshots` show.
type historyMetrics struct {
	underCopies *prometheus.GaugeVec
	lost        *prometheus.GaugeVec
	atLocation  *prometheus.GaugeVec
	missing     *prometheus.GaugeVec
	reachable   *prometheus.GaugeVec
	verifyOK    *prometheus.GaugeVec
	verifyRead  *prometheus.GaugeVec
}

func newHistoryMetrics(reg *prometheus.Registry) *historyMetrics {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	return &historyMetrics{
		underCopies: g("kluis_snapshots_under_copies", "Snapshots (any, not only the newest) at fewer than policy.required_copies of the locations that could be listed.", "tenant"),
		lost:        g("kluis_snapshots_lost", "Snapshots the appliance's ledger records as committed that no location that could be listed holds (history erased).", "tenant"),
		atLocation:  g("kluis_snapshots_at_location", "Snapshots listed at the location; absent while the location cannot be listed (see kluis_location_listed).", "tenant", "location"),
		missing:     g("kluis_snapshots_missing", "Snapshots another location or the ledger has that the location lacks; absent while it cannot be listed.", "tenant", "location"),
		reachable:   g("kluis_location_listed", "1 when the tenant's snapshots at the location could be listed, 0 when the location is unreachable.", "tenant", "location"),
		verifyOK:    g("kluis_verify_ok", "Result of the tenant's last verify job: 1 every location passed, 0 a location failed or the job could not run.", "tenant"),
		verifyRead:  g("kluis_verify_packs_read", "Packs read back in full by the tenant's last verify job (its rolling slice).", "tenant"),
	}
}

// presence publishes a tenant's listings compared with the ledger.
func (m *Metrics) presence(tenant string, p *repo.Presence, required int) {
	h := m.hist
	h.underCopies.WithLabelValues(tenant).Set(float64(len(p.UnderCopies(required))))
	h.lost.WithLabelValues(tenant).Set(float64(len(p.Lost())))
	missing := p.Missing()
	for _, loc := range p.Locations {
		if set, ok := p.At[loc]; ok {
			h.reachable.WithLabelValues(tenant, loc).Set(1)
			h.atLocation.WithLabelValues(tenant, loc).Set(float64(len(set)))
			h.missing.WithLabelValues(tenant, loc).Set(float64(len(missing[loc])))
		} else {
			// Unreachable is not "no snapshots": drop the counts.
			h.reachable.WithLabelValues(tenant, loc).Set(0)
			h.atLocation.DeleteLabelValues(tenant, loc)
			h.missing.DeleteLabelValues(tenant, loc)
		}
	}
	d := 0.0
	if degradedPresence(p, required) {
		d = 1
	}
	m.degraded.WithLabelValues(tenant).Set(d)
}

// verify records a verify job's verdict.
func (m *Metrics) verify(tenant string, ok bool, packsRead int) {
	v := 0.0
	if ok {
		v = 1
	}
	m.hist.verifyOK.WithLabelValues(tenant).Set(v)
	m.hist.verifyRead.WithLabelValues(tenant).Set(float64(packsRead))
}
