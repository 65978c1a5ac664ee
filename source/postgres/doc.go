// Package postgres is the PostgreSQL source engine: consistent snapshots of a
// tenant database and restores into a fresh one.
//
// # Snapshot
//
// A Snapshot is one connection holding a REPEATABLE READ READ ONLY
// transaction whose snapshot is exported (pg_export_snapshot), in this order:
//
//  1. Session settings that make COPY text output deterministic (see
//     sessionSettings): the same on the source and on a Target, so that a
//     restored table prints byte for byte what was backed up.
//  2. BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; pg_export_snapshot().
//  3. The large objects (oid and comment), the table list, columns, keys,
//     sequence values and materialized views, and the owners and privileges
//     of every user object with the roles they name (readPrivileges) are
//     read in the snapshot.
//  4. pg_dump --schema-only --snapshot=<exported>, once for --section=pre-data
//     and once for post-data, concurrently, buffered in memory; started
//     right after the export, so that they connect and read while step 3
//     does, and waited for before step 5.
//  5. LOCK TABLE ONLY … IN ACCESS SHARE MODE on every table (partitioned
//     parents included), then a check that every table still has the OID
//     and relfilenode the snapshot saw.
//
// pg_dump runs before our own locks on purpose. pg_dump takes ACCESS SHARE
// locks of its own; were ours already held, a concurrent DROP or ALTER TABLE
// would queue behind ours and pg_dump's lock request behind that DDL: a
// three-party wait the server cannot see as a deadlock (our session is idle,
// waiting for pg_dump). In this order such DDL either waits for pg_dump and
// then makes our LOCK fail, or is waited for by pg_dump and then fails it —
// an error, never a hang. Once our locks are held, DROP, TRUNCATE and
// table-rewriting ALTER TABLE wait until the Snapshot is closed.
//
// Between the exported snapshot and our locks a TRUNCATE or a table rewrite
// (neither is MVCC-safe) would make the snapshot see an empty or different
// table; a rename and re-create would make a name point at another table.
// Step 5 compares each table's current OID (to_regclass) and relfilenode
// (pg_relation_filenode) with the snapshot's catalog and fails with
// ErrConcurrentDDL, so the race is an error to retry, never a silently wrong
// backup. (VACUUM FULL or CLUSTER in that window fail the snapshot too.) A
// table dropped in that window makes pg_dump fail; that failure is reported
// as ErrConcurrentDDL as well.
//
// The locks count against max_locks_per_transaction, as pg_dump's do: a
// database with thousands of tables may need it raised.
//
// WriteTable calls are serialised on the snapshot's one connection. After an
// error (a cancelled context included) the transaction is gone: Close the
// snapshot and take a new one.
//
// Tables lists leaf tables only: ordinary tables and leaf partitions, each
// streamed with COPY (SELECT … FROM ONLY …), so every row is streamed
// exactly once. A partition's PartitionOf names its immediate parent; a
// partitioned parent has no stream and is not listed (a foreign key may still
// name it as RefTable). Stored generated columns are not streamed and not in
// Columns: the server recomputes them on load. Extension member tables are
// left to CREATE EXTENSION.
//
// Schema writes pg_dump's pre-data section, and its post-data section
// followed by SELECT pg_catalog.setval(…) for every sequence (read in the
// snapshot; pg_dump --schema-only omits them), REFRESH MATERIALIZED VIEW
// for every populated materialized view and COMMENT ON LARGE OBJECT for
// every commented large object. Tablespaces, security labels and
// subscriptions are left out (--no-tablespaces --no-security-labels
// --no-subscriptions): the restore server need not have the tenant's
// tablespaces or label providers, and a restored copy must never start
// replicating. Owners and privileges are left out of the schema too
// (--no-owner --no-privileges) and written apart by Privileges (a
// source.PrivilegeSnapshot): ALTER … OWNER TO for every object, each
// non-default ACL replayed item by item (grantor included), column ACLs and
// default privileges, with the roles they name (never a password). A Target
// applies them after the post-data section (ApplyPrivileges), all or none:
// source.RolesApply refuses a target lacking any of the roles,
// source.RolesSkip skips them and reports which. ReadPrivileges reads them
// back from a restored database for the schema check.
//
// Large objects stream after the tables (WriteLargeObjects, a
// source.LargeObjectSnapshot): each read with lo_open/loread 1 MiB at a
// time in the snapshot, fingerprinted as one row "oid<TAB>sha256", and
// loaded by LoadLargeObjects with lo_create/lo_put in one transaction.
//
// The pg_dump invocation
// never carries a password on its command line: the password goes in
// PGPASSWORD in its environment.
//
// # Target
//
// A Target executes DDL through pgx's simple protocol, not psql: the whole
// section is one multi-statement query, so it applies atomically and needs
// no psql binary, and psql meta-commands are never interpreted — a hostile
// object definition cannot smuggle in a `\!` shell escape. The only
// meta-commands pg_dump writes, its leading \restrict and trailing
// \unrestrict lines, are removed; anything else is left for the server to
// reject. Tables load with COPY FROM STDIN (FREEZE), each in one
// transaction that first truncates the table, on a connection of its own
// (up to TargetOptions.Parallel at once), and fingerprints are recomputed
// with the same COPY TO statement and session settings as at backup.
// ApplySchema runs under those settings too, so DDL must qualify names, as
// pg_dump's does (it sets search_path itself). Applying a whole section in
// one transaction holds a lock per object created: a very large schema may
// need max_locks_per_transaction raised on the restore server.
//
// A full restore (restore.ToDatabase on a Target) goes faster, as
// pg_restore -j does, without proving less. LoadAndFingerprint reads each
// table back on its own connection right after its load commits, while the
// other connections load the next tables: the fingerprint is of what the
// server holds (a value its input function changes shows as a mismatch),
// not of the stream sent to it. The post-data section is split into
// pg_dump's entries by a lexer that knows every quoting form
// (postdata.go), and StartPostData runs it beside the loads (postrun.go):
// an index, a primary key, unique, check or foreign key constraint, a
// trigger or an index attachment starts once every table it locks (for a
// table in an inheritance or partition tree: the whole tree) is loaded and
// read back, on a connection the loads no longer use, and once every
// earlier entry it shares a table with finished (index builds on one table
// run side by side); an index build may also start as soon as its table's
// load committed, beside the read-back, and before an earlier key or check
// constraint of its table (never beside one). Everything else (rules,
// policies, comments, kluis's sequence values and materialized view
// refreshes) and every entry after it waits until every table is loaded
// and runs alone, in order; text the lexer cannot split runs whole and
// makes the restore read every table back. An entry that starts while
// tables still load waits at most 200 ms for a lock (its code reading a
// table a load holds): it then rolls back and runs after the loads, rather
// than deadlock with a load that waits on it. ApplyPostData runs a section
// after the loads, the same way. Each entry is a transaction whose row
// writes to user tables are counted (pg_stat_xact_all_tables, before and
// after), wherever they land (a table proven, or one still to load); a write,
// a table with a new storage file (TRUNCATE, a rewrite) or an event trigger
// in the section makes the load-time fingerprints stale, and the restore
// then reads every table back at the end, as it always did. What is not
// seen: writes made through another session (dblink, a background worker)
// by code the restore runs. Restore tests keep reading back at the end
// (their RTO and fingerprint checks are timed apart); their post-data runs
// beside the loads too.
//
// # Secrets
//
// Every error leaving this package has the connection password masked
// (redactError), including pgx's and pg_dump's messages.
package postgres
