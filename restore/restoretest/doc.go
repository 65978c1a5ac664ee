// Package restoretest runs restore tests: it proves that one tenant's
// snapshot, read from one location only, restores into a scratch database
// and is what was backed up, and returns the result as an evidence.Report
// (evidence/report.go) for the caller to sign and store.
//
// Vocabulary:
//
//   - The tested location is the one location every byte is read from:
//     the repository is opened with that location alone, so nothing falls
//     back to the other copy. By default it is the location least recently
//     tested (PickLocation), so scheduled tests alternate and keep
//     proving both, whatever the verdicts.
//   - A check is one step with a result, a duration and a detail. The
//     checks run in the order of the evidence.Check* constants: snapshot,
//     fetch (every blob of the snapshot read and verified), restore (into
//     the scratch database), fingerprints (every table against the
//     manifest), probes (the tenant's SQL probes, read-only), rto, rpo and
//     drop-scratch. A check whose input failed is recorded as failed with
//     the detail "skipped: <check> failed"; rpo runs whenever the
//     snapshot check passed; drop-scratch always runs, also after a panic
//     or a cancelled context, and a scratch database that could not be
//     removed fails the test (personal data would remain).
//   - The scratch database is created by the test and only ever dropped
//     by it: a new file under policy.restore_test.scratch_dir (sqlite), or
//     a new database kluis_rt_<tenant>_<yyyymmddhhmmss>_<6 hex> on the
//     restore-test server (policy.restore_test.server_dsn_file for
//     postgres, mariadb_server_dsn_file for mariadb), owned by a
//     throwaway role (user) made for the test: the restored schema's code
//     runs as that role alone (role_pg.go, role_mariadb.go). The
//     configured restore-test role is the admin: it creates and drops
//     throwaway roles and scratch databases and never runs tenant SQL. A
//     server that is any tenant's own, by address or by identity, or whose
//     role is too strong, is refused before anything runs; the check fails
//     closed when a server does not answer (checkServer, CheckServers).
//   - The scratch ledger (ledger.go) records every scratch database
//     before it is created and is the proof that it is the appliance's
//     own; SweepStale removes what a killed test left, at once, and never
//     anything the ledger and the database's marker do not prove ours.
//
// A report carries no personal data: table names, counts, sizes,
// timings, keyed fingerprints, and a probe's result only when the probe
// asks for it (record_result) and it is a number or a boolean. Errors from
// a database server are reduced to their error code (a unique violation's
// detail, or MariaDB's "Duplicate entry", would quote row values).
//
// This package reads through repo, restores through restore.ToDatabase and
// signs nothing: callers write the report with evidence.Store.
package restoretest
