// Package source reads databases consistently and loads them back.
//
// An Engine opens one consistent, read-only view of a tenant database (a
// Snapshot) and streams its schema and each table's rows in a canonical,
// line-oriented encoding: one row per line, rows of a table with a primary
// key in primary-key order. While a table streams, its Fingerprint (row count
// plus an order-independent keyed sum of per-row MACs) is computed, so a
// restored table can be compared with what was read without trusting row
// order. A Target loads those streams into a fresh database and recomputes
// the fingerprints.
//
// This package knows SQL and database engines; it knows nothing of packs,
// keys or locations. Identifiers from a database are always quoted, never
// interpolated.
package source

import (
	"context"
	"errors"
	"io"
)

// ErrLockTimeout is returned (wrapped) by an engine's Snapshot when a
// table stayed locked by another session longer than the engine's lock
// timeout: the backup gives up instead of waiting behind someone's ALTER
// TABLE or LOCK TABLE for hours, and is retried later.
var ErrLockTimeout = errors.New("a table stayed locked by another session longer than the lock timeout")

// Column describes one column of a table.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable,omitempty"`
}

// ForeignKey is a declared reference from Columns of the owning table to
// RefColumns of RefTable (a qualified table name as in Table.Name).
type ForeignKey struct {
	Name       string   `json:"name,omitempty"`
	Columns    []string `json:"columns"`
	RefTable   string   `json:"ref_table"`
	RefColumns []string `json:"ref_columns"`
}

// Table is the structural metadata of one table, recorded in the snapshot
// manifest so that restores and dossier extraction work the same way on
// every engine.
type Table struct {
	// Name is the engine's qualified name, e.g. "public.clients" for
	// PostgreSQL, "clients" for SQLite. Schema and Table are its parts.
	Name        string       `json:"name"`
	Schema      string       `json:"schema,omitempty"`
	Table       string       `json:"table"`
	Columns     []Column     `json:"columns"`
	PrimaryKey  []string     `json:"primary_key,omitempty"`
	ForeignKeys []ForeignKey `json:"foreign_keys,omitempty"`
	// PhysicalOrder is set for a table without a primary key: its rows are
	// streamed in the engine's physical order, so an increment may be larger.
	PhysicalOrder bool `json:"physical_order,omitempty"`
	// PartitionOf names the parent of a partition; the parent itself has no
	// data stream of its own.
	PartitionOf string `json:"partition_of,omitempty"`
	// Encoding names the canonical row encoding of the stream, e.g.
	// "pg-copy-text" or "kluis-row-v1" (docs/format.md, "Table streams").
	Encoding string `json:"encoding"`
}

// TableResult is what streaming one table measured.
type TableResult struct {
	Rows        int64       `json:"rows"`
	Fingerprint Fingerprint `json:"fingerprint"`
}

// Engine opens consistent snapshots of one tenant database.
type Engine interface {
	// Name is the engine name as in the config: "postgres", "sqlite", …
	Name() string
	// Snapshot starts one consistent read-only view. The caller must Close it.
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is one consistent read-only view of a database.
type Snapshot interface {
	// ServerVersion is a human-readable version of the database server.
	ServerVersion() string
	// Tables lists the tables whose rows are streamed, in a stable order.
	Tables() []Table
	// Schema writes the DDL to apply before the data load (pre) and after it
	// (post: indexes, constraints, triggers, sequence values).
	Schema(ctx context.Context, pre, post io.Writer) error
	// WriteTable streams t's rows in its canonical encoding, one row per line,
	// computing the fingerprint with the key given to the engine. Calls may
	// be serialized by the engine (one snapshot is one connection).
	WriteTable(ctx context.Context, t Table, w io.Writer) (TableResult, error)
	Close() error
}

// TableSizer is a Snapshot that knows each table's size on the server
// (bytes, an estimate; 0 when unknown), so a backup streams the largest
// tables first: a large table started last would stream alone at the end
// while the other connections sit idle.
type TableSizer interface {
	TableSize(name string) int64
}

// Target is a database being restored into.
type Target interface {
	// ApplySchema executes DDL produced by Snapshot.Schema.
	ApplySchema(ctx context.Context, ddl io.Reader) error
	// LoadTable loads a table stream written by Snapshot.WriteTable.
	// LoadTable may be called concurrently for different tables. A failed
	// load leaves the table as it was (the load is one transaction).
	LoadTable(ctx context.Context, t Table, rows io.Reader) error
	// Fingerprint recomputes a loaded table's fingerprint. It is called
	// after every load has finished.
	Fingerprint(ctx context.Context, t Table) (TableResult, error)
	Close() error
}

// ProvingTarget is a Target that proves each table as it loads and builds
// post-data objects in parallel (restore.ToDatabase uses it when the target
// it was given offers it).
type ProvingTarget interface {
	Target
	// LoadAndFingerprint loads t like LoadTable and then, right after the
	// load committed, reads the table back from the server and returns the
	// fingerprint of what the server holds. stale is true when the load
	// changed rows of other tables (code the load ran, e.g. a volatile
	// function in a CHECK constraint): fingerprints read before may no
	// longer hold. May be called concurrently for different tables.
	LoadAndFingerprint(ctx context.Context, t Table, rows io.Reader) (res TableResult, stale bool, err error)
	// ApplyPostData executes post-data DDL, building indexes and
	// constraints on up to parallel connections. stale is true when the
	// DDL changed rows of a table, or the storage of a table read back by
	// LoadAndFingerprint: its fingerprint must then be read again.
	ApplyPostData(ctx context.Context, ddl io.Reader, parallel int) (stale bool, err error)
	// StartPostData begins post-data DDL before the tables are loaded, as
	// pg_restore -j does: an index or a constraint starts as soon as every
	// table it needs is loaded (PostData.Loaded), on up to parallel
	// connections of its own, while other tables still load. load lists
	// the tables that will be loaded. Everything else waits for
	// PostData.Finish.
	StartPostData(ctx context.Context, ddl io.Reader, parallel int, load []Table) (PostData, error)
}

// PostData is post-data DDL started by ProvingTarget.StartPostData,
// running beside the table loads. Its methods may be called concurrently.
type PostData interface {
	// Loaded says t is loaded (and, by LoadAndFingerprint, read back):
	// entries that need only tables loaded so far may start. It returns
	// the error of a post-data entry that already failed, so that the
	// loads can stop.
	Loaded(t Table) error
	// Finish says every table is loaded, runs the remaining entries and
	// waits for all of them; stale is as for ApplyPostData. Finish must be
	// called once, also after a failed load (cancel ctx first).
	Finish() (stale bool, err error)
}

// TableMeta is what a snapshot manifest records for a table stream: the
// table's structure and what streaming it measured.
type TableMeta struct {
	Table
	TableResult
}

// Sampler is a Snapshot that can read a few rows of a table cheaply, in
// the table's stream encoding and in no particular order: material to
// train the tenant's compression dictionary on before the first backup
// streams its tables (docs/format.md, "Zstd dictionary").
type Sampler interface {
	// SampleTable writes up to rows rows of t to w.
	SampleTable(ctx context.Context, t Table, w io.Writer, rows int) error
}
