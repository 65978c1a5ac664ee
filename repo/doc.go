// Package repo owns a tenant's repository at every location: keys, packs,
// indexes, snapshot manifests, check, forget and prune, and the Location
// interface its backends implement (repo/local, repo/s3).
//
// Vocabulary:
//
//   - A location is one storage place (a directory, a bucket); every
//     tenant has its own repository under its id at every location.
//   - A pack is an object of many sealed blobs plus a sealed header; an
//     index object maps blob IDs to packs; a manifest (snapshot) lists the
//     streams of one backup and their blobs.
//   - Objects are content-addressed (name = SHA-256 of the bytes) and never
//     overwritten. At each location a backup writes packs, then its index,
//     then its manifest: a snapshot exists at a location exactly when its
//     manifest does, so a crash leaves at most unreferenced packs.
//   - Locations are written in parallel and commit independently; reads
//     take the first location whose copy verifies (name, size cap,
//     authentication, decoding) and fall back to the next. Damage at one
//     location is damage at that location: a copy that does not open is
//     recorded (Repo.Damage) and read around, an object that opens nowhere
//     is skipped by listings, and check names it. Sync copies to each
//     location what another holds and it lacks (a set difference of
//     content addresses), only after opening it, verified after the copy.
//   - The in-memory index keeps every candidate place of a blob. Prune
//     writes one compacted index that supersedes (sealed, cumulatively)
//     every index object before it, so a replayed old index is ignored.
//   - The ledger (Ledger, FileLedger) is the appliance's own record of
//     every snapshot it committed and forgot, kept outside the locations;
//     Presence compares the locations' listings with it and with each
//     other, and check reports a snapshot missing at a location there.
//   - Register records (register.go) are sealed, write-once objects the
//     restore package puts next to the snapshots: copies and anchors of
//     the appliance's erasure register and access log lines.
//   - A Delete that Object Lock refuses returns ErrRetained; prune skips
//     such objects and removes them once their retention has ended.
//   - A versioned location (VersionedLocation: S3 with versioning) may hold
//     versions and delete markers kluis never wrote; reads take the newest
//     version that matches the name, and check reports the others.
//   - Key files are signed by the appliance's signing key; Recover compares
//     every key file at every location and refuses when they disagree. A
//     config under the tenant's prefix that no key file of this appliance
//     opens is foreign (ErrForeign): that location is skipped, reported,
//     and the tenant lives at the others.
//
// The byte formats are specified in docs/format.md; each decoder names the
// section it implements. This package knows nothing of SQL.
package repo
