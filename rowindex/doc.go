// Package rowindex is the dossier index of table streams (docs/format.md,
// "Row index"): at backup time, the keyed hashes of the values a table
// stream's rows hold in the column lists a dossier profile selects rows by
// (the root key, every member reference), with the chunks that hold each.
// A dossier extraction (restore/dossier) reads only the chunks that can
// hold one of its keys, so its cost follows the dossier, not the tenant.
//
// kluis writes a paged index (version 3, Builder.Finish): a head bound to
// the stream and pages, each its own blob, holding the hashes whose top
// bits are the page's number with their postings, so a reader reads the
// head and one page per key (PagedIndex). It still reads the filter
// indexes written before (versions 1 and 2, Index: a Bloom filter per
// chunk, read whole). Open reads either as a Lookup.
//
// The package also holds what the backup and the extraction must agree on
// byte for byte: the comparable key form of a value (ValueKey, TupleKey)
// and the row decoders of the stream encodings (NewDecoder,
// ParseCopyLine).
//
// Guarantees: an index has no false negatives, so a chunk left out holds
// no matching row; a filter's false positive costs one chunk read (a
// posting has none). A row whose line spans chunks is in every such
// chunk's filter or posting and is read only when the whole run is read.
// An index is bound to its stream (the chunks' blob IDs, the rows
// beginning in each chunk), a page to its head: one that does not fit is
// refused (Open, Select, ReadRun), and the caller reads the stream whole
// or fails; it never yields fewer rows. The hashes are HMAC-SHA256 under a
// per-tenant key (repo.Repo.RowIndexKey), so an index reveals nothing
// about key values to whoever lacks the key.
package rowindex
