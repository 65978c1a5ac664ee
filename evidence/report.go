package evidence

import "time"

// Schema names the version of the report format. A reader refuses a
// report of a schema it does not know.
const Schema = "kluis-restore-test/v1"

// Verdicts.
const (
	Pass = "PASS"
	Fail = "FAIL"
	// Error: the test could not run because of the test rig (the tested
	// location or the restore-test server failed, not the backup); Cause
	// says which. It is not evidence that the snapshot does not restore.
	Error = "ERROR"
)

// Check names, in the order a restore test runs them.
const (
	CheckSnapshot     = "snapshot"     // the snapshot exists at the tested location and its manifest opens
	CheckFetch        = "fetch"        // every blob of the snapshot fetched from the tested location and verified
	CheckRestore      = "restore"      // schema and rows loaded into the scratch database
	CheckFingerprints = "fingerprints" // every table's restored fingerprint equals the manifest's
	CheckProbes       = "probes"       // every SQL probe returned its expected result
	CheckRTO          = "rto"          // restore duration within the RTO target
	CheckRPO          = "rpo"          // snapshot age and largest gap within the RPO target
	CheckStale        = "stale"        // the tested location holds the newest snapshot the appliance committed
	CheckDropScratch  = "drop-scratch" // the scratch database was removed
)

// Report is one restore test's result: what was tested, where, every
// check with its result and timing, and the verdict. It holds no personal
// data: table names, row counts, sizes, timings, fingerprints, and probe
// results only where a probe's configuration asks for them. Its JSON form
// (field order as declared here) is the body of a signed chain entry (see
// doc.go and docs/evidence.md).
type Report struct {
	Schema    string `json:"schema"`
	Appliance string `json:"appliance"`
	Tenant    string `json:"tenant"`
	// Engine is sqlite, postgres, mariadb or mysql.
	Engine string `json:"engine"`
	// Verdict is PASS when every check passed, ERROR when the test rig
	// failed (Cause), else FAIL.
	Verdict string `json:"verdict"`
	// Cause names, for an ERROR, the part of the test rig that failed (the
	// location by its name, or the restore-test server) and how. Reports
	// before it existed have none.
	Cause string `json:"cause,omitempty"`
	// FailedChecks names the checks that failed, in run order.
	FailedChecks []string  `json:"failed_checks"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Snapshot     Snapshot  `json:"snapshot"`
	// Location is the one location every byte was read from: the copy this
	// report proves.
	Location Location `json:"location"`
	Checks   []Check  `json:"checks"`
	Tables   []Table  `json:"tables"`
	Probes   []Probe  `json:"probes"`
	RTO      RTO      `json:"rto"`
	RPO      RPO      `json:"rpo"`
	// Kluis is the version of kluis that ran the test.
	Kluis string `json:"kluis"`
}

// Snapshot identifies the tested snapshot.
type Snapshot struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Tables int       `json:"tables"`
	Rows   int64     `json:"rows"`
	Bytes  int64     `json:"bytes"`
}

// Location describes the tested location as declared in the config.
type Location struct {
	Name     string `json:"name"`
	Country  string `json:"country"`
	Site     string `json:"site"`
	Provider string `json:"provider"`
}

// Check is one step of a restore test.
type Check struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
	// Detail says what was checked or, on failure, why it failed, in words
	// that carry no row data (error messages from a database are reduced to
	// their error code).
	Detail string `json:"detail"`
}

// Table is one restored table compared with the manifest.
type Table struct {
	Name                string `json:"name"`
	Rows                int64  `json:"rows"`
	RowsRestored        int64  `json:"rows_restored"`
	Bytes               int64  `json:"bytes"`
	Fingerprint         string `json:"fingerprint"`
	RestoredFingerprint string `json:"restored_fingerprint"`
	Match               bool   `json:"match"`
}

// Probe is one SQL probe's result. Got is "withheld" unless the probe
// sets record_result: true in the configuration and the result is a
// number or a boolean (a result could be personal data); empty when the
// query failed.
type Probe struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Expected string `json:"expected"`
	Got      string `json:"got"`
	Detail   string `json:"detail,omitempty"`
}

// RTO is the measured restore time against its target.
type RTO struct {
	TargetSeconds   float64 `json:"target_seconds"`
	MeasuredSeconds float64 `json:"measured_seconds"`
	OK              bool    `json:"ok"`
}

// RPO is the measured recovery point against its target: the tested
// snapshot's age when the test ran, and the largest gap between
// consecutive snapshots at the tested location over the window.
type RPO struct {
	TargetSeconds      float64 `json:"target_seconds"`
	SnapshotAgeSeconds float64 `json:"snapshot_age_seconds"`
	WindowDays         float64 `json:"window_days"`
	SnapshotsInWindow  int     `json:"snapshots_in_window"`
	LargestGapSeconds  float64 `json:"largest_gap_seconds"`
	// LargestGapFrom and LargestGapTo bound the largest gap (zero when
	// fewer than two snapshots fall in the window).
	LargestGapFrom time.Time `json:"largest_gap_from"`
	LargestGapTo   time.Time `json:"largest_gap_to"`
	OK             bool      `json:"ok"`
}
