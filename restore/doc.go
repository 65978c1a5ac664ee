// Package restore brings snapshots back: whole snapshots into a directory
// or a database (with every table's fingerprint compared against the
// manifest), and later single dossiers and restore tests. It reads through
// repo, loads through source, and signs nothing itself.
package restore
