// Package dossier extracts one client's dossier from a database snapshot
// and keeps the AVG (GDPR) art. 17 erasure register and the dossier access
// log (docs/dossier.md).
//
// Vocabulary:
//
//   - A profile (config.Dossier) names the root table and its key column,
//     explicit edges for references the schema does not declare, and
//     excluded tables.
//   - A Plan is a profile applied to a snapshot's tables: which tables are
//     members, in which order (parents before children), and along which
//     edges (foreign keys recorded in the manifest plus explicit edges) a
//     row belongs to the dossier. A partition belongs to its partitioned
//     parent's group: a reference to the parent is a reference to every
//     partition.
//   - A row belongs to the dossier when it is the root row, or when any of
//     its member edges points at a row of the dossier (transitively).
//   - Shared rows are rows outside the dossier that dossier rows refer to
//     (an address, a staff member): not restored, but they must exist in the
//     target.
//
// Extraction reads only the member tables' streams, keeps only the key
// values of dossier rows (never a whole table) and hands each dossier row to
// a Sink: an SQL script, a JSON document, a target database in one
// transaction, or a counter (show).
//
// This package lives under restore because DESIGN.md gives restore the
// dossier extraction and the erasure register; it signs through
// evidence/chain with a key the caller passes in, and never logs dossier
// ids.
package dossier
