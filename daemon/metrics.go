package daemon

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/repo/deadline"
)

// Metrics are the daemon's Prometheus metrics. Labels carry tenant ids,
// job kinds and location names only: never a DSN, path or personal data.
type Metrics struct {
	reg *prometheus.Registry

	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	bytesRead   *prometheus.GaugeVec
	bytesStored *prometheus.GaugeVec
	copies      *prometheus.GaugeVec
	atLocation  *prometheus.GaugeVec
	degraded    *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	restoreTest *prometheus.GaugeVec
	rtRunnable  *prometheus.GaugeVec
	gone        *prometheus.GaugeVec
	retPending  *prometheus.GaugeVec
	tenants     prometheus.Gauge
	hist        *historyMetrics // metrics_history.go
	disc        *discoveryMetrics

	mu     sync.Mutex
	newest map[string]time.Time // tenant → newest snapshot, for the age gauge
	now    func() time.Time
}

var ageDesc = prometheus.NewDesc("kluis_snapshot_age_seconds",
	"Age of the tenant's newest snapshot (time since its backup finished).", []string{"tenant"}, nil)

var hungDesc = prometheus.NewDesc("kluis_location_hung",
	"1 while a location is skipped because its last operation got no answer within policy.location_timeout.", []string{"location"}, nil)

func newMetrics(now func() time.Time, running func() float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), newest: map[string]time.Time{}, now: now}
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(v)
		return v
	}
	m.lastSuccess = g("kluis_backup_last_success_timestamp_seconds", "Unix time the tenant's last successful backup finished.", "tenant")
	m.duration = g("kluis_backup_duration_seconds", "Duration of the tenant's last backup.", "tenant")
	m.bytesRead = g("kluis_backup_bytes_read", "Bytes read from the source by the tenant's last backup.", "tenant")
	m.bytesStored = g("kluis_backup_bytes_stored", "Sealed bytes written per location by the tenant's last backup (new packs).", "tenant")
	m.copies = g("kluis_snapshot_copies", "Locations holding the tenant's newest snapshot.", "tenant")
	m.atLocation = g("kluis_snapshot_at_location", "1 when the tenant's newest snapshot is committed at the location.", "tenant", "location")
	m.degraded = g("kluis_snapshot_degraded", "1 when any of the tenant's snapshots is at fewer than policy.required_copies locations, or a location cannot be listed (from the listings and the ledger).", "tenant")
	m.restoreTest = g("kluis_restore_test_ok", "Result of the tenant's last restore test: 1 passed, 0 failed.", "tenant")
	m.rtRunnable = g("kluis_restore_test_runnable", "1 when the config lets the tenant's scheduled restore test run, 0 when it cannot (no restore-test server for its engine; the log says which field to set).", "tenant")
	m.gone = g("kluis_tenant_gone", "1 for a tenant that was backed up and is no longer declared or discovered, until `kluis tenants retire` acknowledges it. Its other series are removed.", "tenant")
	m.retPending = g("kluis_retention_change_pending_effective_timestamp_seconds", "Unix time a pending retention change that shortens the tenant's retention takes effect (policy.retention_shorten_delay); cancel it with `kluis retention cancel`. Refreshed when the jobs are rebuilt and at each retention run.", "tenant")
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kluis_job_failures_total", Help: "Failed job attempts."}, []string{"tenant", "job"})
	m.hist = newHistoryMetrics(m.reg)
	m.tenants = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kluis_tenants", Help: "Tenants the daemon schedules (declared and discovered)."})
	// The Go runtime and process collectors (go_goroutines, go_memstats_*,
	// process_resident_memory_bytes, process_open_fds): a daemon that runs
	// for months must show it does not leak.
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.disc = newDiscoveryMetrics(m.reg)
	m.reg.MustRegister(m.failures, m.tenants, m,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kluis_jobs_running", Help: "Jobs running now."}, running))
	return m
}

// Describe implements prometheus.Collector (the age gauge).
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- ageDesc; ch <- hungDesc }

// Collect implements prometheus.Collector: the age is computed at scrape
// time from the newest snapshot's time.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for t, at := range m.newest {
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), t)
	}
	for name, hung := range deadline.HungLocations() {
		v := 0.0
		if hung {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(hungDesc, prometheus.GaugeValue, v, name)
	}
}

// snapshot records a tenant's newest snapshot.
func (m *Metrics) snapshot(tenant string, finished time.Time, locations, allLocations []string, required int) {
	m.mu.Lock()
	if finished.After(m.newest[tenant]) {
		m.newest[tenant] = finished
	}
	m.mu.Unlock()
	m.lastSuccess.WithLabelValues(tenant).Set(float64(finished.UnixMilli()) / 1e3)
	m.copies.WithLabelValues(tenant).Set(float64(len(locations)))
	at := map[string]bool{}
	for _, l := range locations {
		at[l] = true
	}
	for _, l := range allLocations {
		v := 0.0
		if at[l] {
			v = 1
		}
		m.atLocation.WithLabelValues(tenant, l).Set(v)
	}
	if len(locations) < required {
		// A degraded commit; the listings (presence) clear it, never a
		// newer snapshot alone.
		m.degraded.WithLabelValues(tenant).Set(1)
	}
}

// forget removes every series of a tenant that is no longer scheduled, so
// that nothing shows frozen values of a tenant that is gone.
func (m *Metrics) forget(tenant string) {
	m.mu.Lock()
	delete(m.newest, tenant)
	m.mu.Unlock()
	for _, v := range []*prometheus.GaugeVec{m.lastSuccess, m.duration, m.bytesRead, m.bytesStored, m.copies, m.atLocation, m.degraded, m.restoreTest, m.rtRunnable} {
		v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	}
	m.failures.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
}

// setRetentionPending shows the pending (delayed) retention changes.
func (m *Metrics) setRetentionPending(pending map[string]*appliance.RetentionChange) {
	m.retPending.Reset()
	for t, c := range pending {
		m.retPending.WithLabelValues(t).Set(float64(c.Effective.UnixMilli()) / 1e3)
	}
}

// setRestoreTestRunnable records whether the config lets the tenant's
// restore test run (config.RestoreTestGap).
func (m *Metrics) setRestoreTestRunnable(tenant string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.rtRunnable.WithLabelValues(tenant).Set(v)
}

// SetRestoreTest records a restore-test verdict (for the restore-test hook).
func (m *Metrics) SetRestoreTest(tenant string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.restoreTest.WithLabelValues(tenant).Set(v)
}

// Handler serves /metrics and /healthz.
func (m *Metrics) handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
