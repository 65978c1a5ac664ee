// Package sqlite is the source engine for SQLite database files.
//
// A Snapshot holds one read transaction (BEGIN … ROLLBACK) on one
// dedicated read-only connection for its whole life, so the schema and every
// table it streams come from the same committed state of the file. In WAL
// mode writers carry on meanwhile; in rollback-journal mode they wait until
// the snapshot is closed (SQLite's shared lock), so WAL is what to run a live
// database in. A checkpoint cannot pass an open snapshot, so the WAL file
// grows by what is written while a backup runs.
//
// Rows stream in the canonical kluis-row-v1 encoding (source.RowEncoding),
// which keeps SQLite's per-value types (storage classes): an integer stored
// in a TEXT column comes back an integer, a BLOB stays a BLOB. Values are
// read without any conversion by the driver (no DATETIME parsing).
//
// Schema streams are SQL statements in a length-prefixed framing (see
// DDLFormat), because trigger bodies, identifiers and string literals may
// contain ";" and newlines.
//
// What a restore cannot reproduce, by design of SQLite: the rowid of a table
// that has neither an INTEGER PRIMARY KEY nor WITHOUT ROWID (rows are loaded
// in rowid order and get fresh rowids 1, 2, …; VACUUM renumbers such rowids
// too, so applications cannot rely on them); sqlite_stat* tables (run
// ANALYZE after a restore). Generated columns are not streamed; SQLite
// recomputes them.
//
// This package must not know about packs, keys or locations; identifiers
// are always quoted, never interpolated.
package sqlite
