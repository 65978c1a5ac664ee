// Package rowindex is the dossier index of table streams (docs/format.md,
// "Row index"): at backup time, for each chunk of a table stream, a Bloom
// filter over keyed hashes of the values its rows hold in the column lists
// a dossier profile selects rows by (the root key, every member
// reference). A dossier extraction (restore/dossier) reads only the chunks
// whose filter may hold one of its keys, so its cost follows the dossier,
// not the tenant.
//
// The package also holds what the backup and the extraction must agree on
// byte for byte: the comparable key form of a value (ValueKey, TupleKey)
// and the row decoders of the stream encodings (NewDecoder,
// ParseCopyLine).
//
// Guarantees: a filter has no false negatives, so a chunk left out holds
// no matching row; a false positive costs one chunk read. A row whose line
// spans chunks is in every such chunk's filter and is read only when the
// whole run is read. An index is bound to its stream (the chunks' blob IDs,
// the rows beginning in each chunk): one that does not fit is refused
// (Verify, ReadRun), and the caller reads the stream whole or fails; it
// never yields fewer rows. The hashes are HMAC-SHA256 under a per-tenant
// key (repo.Repo.RowIndexKey), so a filter reveals nothing about key
// values to whoever lacks the key.
package rowindex
