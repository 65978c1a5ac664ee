// Package mariadb is the MariaDB (and MySQL) source engine: consistent
// snapshots of a tenant database and restores into a fresh one. It talks to
// the server through github.com/go-sql-driver/mysql and needs no client
// binaries.
//
// # Snapshot
//
// A Snapshot is one dedicated connection, in this order:
//
//  1. Session settings that make what the server prints a function of the
//     data alone (sessionSQL: utf8mb4, time_zone '+00:00', a fixed
//     sql_mode, long network timeouts), the same on every Target
//     connection. The driver is forced to return temporal values as text
//     (parseTime off), not to rename columns, and never to interpolate
//     arguments client-side, whatever the DSN says.
//  2. SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, and the list
//     of base tables and sequences (information_schema.TABLES). A
//     system-versioned table is refused (ErrUnsupported: its history would
//     be lost), and so is a table of an engine other than InnoDB
//     (ErrNonTransactional) unless Options.AllowNonTransactional.
//  3. START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY.
//  4. One row of every listed table and sequence is read in the
//     transaction. That takes a metadata lock on each, held until Close,
//     so DROP, ALTER, TRUNCATE and RENAME of them wait for the snapshot to
//     end; and InnoDB refuses that read (ER_TABLE_DEF_CHANGED) for a table
//     created or rebuilt since step 3. The list is then read again; any
//     difference, or such a refusal, fails the snapshot with
//     ErrConcurrentDDL, a race to retry — never a silently incomplete
//     backup.
//  5. Columns, primary keys and foreign keys from information_schema, and
//     SHOW CREATE for every table, sequence, view, routine and trigger.
//     information_schema and SHOW CREATE read the live data dictionary,
//     not the snapshot; the locks of step 4 keep the tables' definitions
//     those of the snapshot (views, routines and triggers are read as they
//     are at this moment).
//
// WriteTable calls are serialised on the snapshot's connection. After an
// error the connection is gone: Close the snapshot and take a new one.
//
// Tables lists base tables only, by name in byte order. A table with a
// primary key streams in primary-key order; one without streams with no
// ORDER BY (PhysicalOrder), which for InnoDB is the order of its clustered
// index — its first UNIQUE NOT NULL index, else the hidden row id, i.e.
// insertion order — stable between backups, so deduplication still works.
// Generated columns (VIRTUAL, STORED) are not streamed and not in Columns:
// the server computes them again on load. Invisible columns are streamed.
// Foreign keys to another database are left out of the manifest (they stay
// in the DDL).
//
// # Values
//
// Rows are kluis-row-v1 (source.RowEncoding), read through the text
// protocol, typed by the column's DATA_TYPE:
//
//   - TINYINT … BIGINT and YEAR: i<int>. A BIGINT UNSIGNED above
//     9223372036854775807 is t<decimal digits> (the only values that do not
//     fit int64; every smaller one, in any integer column, is i, so keys of
//     signed and unsigned columns compare equal). YEAR is a number, so the
//     zero year is i0 and loads back as 0000.
//   - BIT(n): the value as an unsigned number, i<int> or, above int64,
//     t<decimal digits>; it loads as a number (a string would be taken as
//     the BIT's bytes).
//   - FLOAT: read as CAST(… AS DOUBLE) — the server prints a FLOAT with six
//     significant digits, which loses precision, while the widening is
//     exact — and written r<shortest double>; DOUBLE: r<shortest double>.
//     Loading the double into a FLOAT column gives back the same float.
//   - DECIMAL: t<text as the server prints it>, exact.
//   - BINARY, VARBINARY, the BLOBs and the spatial types (their internal
//     WKB-with-SRID bytes): b<hex>.
//   - Everything else — CHAR, VARCHAR, the TEXTs, JSON (a LONGTEXT in
//     MariaDB), ENUM, SET, DATE, DATETIME, TIMESTAMP (in UTC), TIME, INET4,
//     INET6, UUID: t<text>, the utf8mb4 bytes the server sends, including
//     zero dates ('0000-00-00', '0000-00-00 00:00:00') and the empty ENUM
//     error value.
//
// NULL is \N in every column. A restored table's fingerprint is computed
// with the same query, session and conversions as at backup.
//
// # Schema streams
//
// Both streams are kluis-mariadb-ddl-v1 (DDLFormat), statements framed by
// length, because trigger and routine bodies hold ";".
//
// pre: ALTER DATABASE with the database's default character set and
// collation; CREATE SEQUENCE for every sequence (before the tables, whose
// DEFAULT NEXT VALUE FOR needs them); SHOW CREATE TABLE for every base
// table, by name, with secondary indexes, foreign keys, CHECK constraints,
// partitioning and the AUTO_INCREMENT counter inline. SHOW CREATE TABLE
// prints a sequence default as nextval(`db`.`seq`): the database qualifier
// is removed (rewriteSeqRefs), so the restored table draws from the restored
// sequence.
//
// post: stored procedures and functions; views — first a stand-in for each
// (a view of constants with its column names), then each real definition
// in its place, so that views can refer to views in any order; triggers,
// table by table in their order of execution; then every sequence's
// position (DO SETVAL(seq, next_not_cached_value, 0, round): the next value
// handed out after a restore is one no client has seen). Each routine and
// trigger is created under the creation context it was created with, as
// mariadb-dump does: a SET SESSION sql_mode statement and, for routines,
// triggers and views, SET SESSION character_set_client, collation_connection
// (from its SHOW CREATE row) before it; the stream ends by restoring the
// session's own. The character set is set as it was for the UTF-8 family
// (utf8mb3, utf8mb4) and ascii, in which the statement travels unchanged;
// an object created under another client character set (latin1, …) is
// recreated under the restoring session's utf8mb4. DEFINER clauses are
// removed (stripDefiner): a restored view, routine or trigger belongs to the
// restoring user, since the tenant's accounts need not exist on a restore
// server; SQL SECURITY DEFINER objects then run with that user's privileges.
//
// Not backed up: events (a restored copy must not start running scheduled
// jobs), users and grants (they are server-wide), and a view, routine or
// trigger body that names the original database explicitly keeps pointing
// at it.
//
// # Target
//
// NewTarget creates the target database (utf8mb4) when absent, uses it when
// empty, and refuses one holding tables, views, sequences, routines or
// events (ErrTargetNotEmpty) unless TargetOptions.Force, which drops and
// recreates it (never mysql, information_schema, performance_schema or
// sys). Every Target connection runs sessionSQL plus foreign_key_checks=0
// and unique_checks=0.
//
// ApplySchema runs a stream's statements in order on a connection of its
// own, discarded afterwards. MariaDB commits DDL statement by statement, so
// a failed schema leaves the statements before the failing one applied;
// the error names the statement's number and first line.
//
// # Loading
//
// LoadTable loads a table in one transaction on its own connection (up to
// TargetOptions.Parallel at once), so a failed load leaves the table empty.
// With unique and foreign key checks off and an empty table, InnoDB takes
// its bulk-insert path (MariaDB 10.7+: indexes built by sorting at commit).
//
// Rows go with LOAD DATA LOCAL INFILE from a reader registered with the
// driver under a random name (loadInfile; no file is ever opened: the DSN's
// allowAllFiles is forced off) when the server's local_infile is ON, else
// with prepared multi-row INSERTs of up to 1000 rows (fewer for wide tables:
// at most 65535 placeholders) or a quarter of max_allowed_packet (at most 4
// MiB) (loadInsert). LOAD DATA LOCAL skips a row with a duplicate key with
// only a warning; a load that inserted fewer rows than the stream holds
// fails. Neither method stops at a conversion warning (in this sql_mode the
// empty ENUM value warns, yet loads exactly): a changed value shows as a
// fingerprint mismatch, which fails a restore. A row must fit the target's
// max_allowed_packet.
//
// Measured on a synthetic practice database (synth.MariaDB, 100 MB plain
// size, 12 tables, 108 MB of kluis-row-v1; MariaDB 10.11, 2 vCPUs, 4
// connections, three rounds, TestMeasureLoad with
// KLUIS_BENCH_MARIADB_LOAD_MB=100), the whole restore (schema, load,
// post-data) took, as median (range):
//
//	                 indexes inline    indexes added after the load
//	LOAD DATA LOCAL  3.4 s (2.0–3.7)   3.5 s (2.3–3.7)
//	prepared INSERT  4.4 s (4.2–4.8)   3.1 s (2.6–3.9)
//	literal INSERT   5.8 s (5.0–8.2)   5.6 s (4.3–6.8)  (hex literals; dropped)
//
// LOAD DATA is the fastest way with indexes inline, and moving the indexes
// out gains nothing for it; the pre-data stream therefore keeps SHOW CREATE
// TABLE verbatim, which also keeps the index order and the indexes InnoDB
// creates for foreign keys exactly as they were. INSERT stays as the
// fallback for a server with local_infile off (a common hardening).
//
// # Secrets
//
// Every error leaving this package has the DSN's password masked
// (redactError); a DSN that does not parse is reported without any of its
// content; the driver's own logging is off.
package mariadb
