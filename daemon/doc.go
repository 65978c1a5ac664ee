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
//   - sync: copies to every location what it lacks (repo.Repo.Sync) for a
//     tenant whose newest snapshot is degraded: triggered right after a
//     degraded backup and retried hourly until complete; a no-op for a
//     healthy tenant.
//   - restore-test: proves that a snapshot restores. It is scheduled only
//     when Options.Hooks.RestoreTest is set (the restore-test issue
//     fills it); until then no such job exists.
//   - discover: re-runs tenant discovery hourly, so a new practice
//     database is backed up without editing the YAML.
//
// The daemon also serves Prometheus metrics and /healthz, reloads its
// config on demand (a bad config keeps the old one), and derives all of
// its state from the job history (appliance.History) and the
// repositories, so a crash loses nothing it needs.
package daemon
