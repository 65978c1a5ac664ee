// Package daemon is what `kluis daemon` runs: it turns a config into
// scheduled jobs (schedule.Job) and knows what each job kind does.
//
// Job kinds:
//
//   - backup: one snapshot of one tenant database (backup.Database), under
//     the tenant's shared lock; the repository and keys of a newly
//     discovered tenant are created at its first backup.
//   - retention: forget by policy.retention, then prune, under the
//     tenant's exclusive lock, daily after the backup window (or at
//     policy.retention_time).
//   - sync: copies to every location what it lacks (repo.Repo.Sync) when
//     the locations' snapshot listings differ (repo.Presence: every
//     snapshot, compared with the ledger — never the daemon's memory):
//     at start, hourly, and right after a degraded backup; retried until
//     complete; a listing and nothing more for a converged tenant.
//   - reconcile: nightly full sync of every tenant regardless of the
//     listings (reconcile.go); fails while a snapshot is at too few
//     locations or a committed one is at none.
//   - verify: nightly `check` of every location plus a rolling slice of
//     packs read back, so every pack is read within
//     policy.verify.read_data_period (verify.go); a failure sets
//     kluis_verify_ok to 0 and fails `status` until a verify passes.
//   - restore-test: proves that a snapshot restores. It is scheduled only
//     when Options.Hooks.RestoreTest is set (the restore-test issue
//     fills it); until then no such job exists.
//   - discover: re-runs tenant discovery hourly, so a new practice
//     database is backed up without editing the YAML.
//
// The daemon also serves Prometheus metrics and /healthz, reloads its
// config on demand (a bad config keeps the old one), and derives all of
// its state from the job history (appliance.History), the ledger of
// committed snapshots (repo.FileLedger) and the repositories' listings, so
// a crash loses nothing it needs. Status, metrics and `kluis snapshots`
// derive "degraded", "missing" and "unreachable" from the same listings.
package daemon
