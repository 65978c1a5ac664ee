// Package chunk turns a byte stream into sealed, content-addressed blobs.
//
// Vocabulary:
//
//   - A chunk is a content-defined piece of a stream, between Params.Min
//     and Params.Max bytes long, cut by a Rabin fingerprint
//     (github.com/restic/chunker) under a per-tenant secret polynomial, or
//     (Params.Cut CutRows, PostgreSQL tenants) at row ends chosen by a
//     keyed hash of each row (rows.go; docs/format.md "Chunk boundaries").
//   - A blob ID is the keyed MAC of a chunk's plaintext under the tenant's ID
//     key (never a bare hash: whoever holds a repository cannot test whether a
//     known plaintext is stored without that key).
//   - A sealed blob is the chunk compressed with zstd when that pays (with
//     the tenant's dictionary when one is given: Dict, SealDict), padded
//     (Padmé) so its length does not reveal the chunk length, and encrypted
//     with XChaCha20-Poly1305 under the tenant's data key with a random nonce
//     and the blob ID as associated data.
//
// The byte layout is specified in docs/format.md, section "Sealed blob".
// This package does no I/O beyond reading the stream it is given; it knows
// nothing of packs, indexes or locations.
package chunk
