// Package evidence keeps the appliance's restore-test reports: signed,
// hash-chained records an auditor verifies with nothing but the
// appliance's Ed25519 public key. It writes reports to the state directory
// and, write-once, to every location; lists, exports and verifies them;
// and renders the self-contained HTML summary. It never needs a tenant key.
//
// # Vocabulary
//
//   - Report: one restore test's result (Report, schema Schema). It holds no
//     personal data.
//   - Record: a report as stored, a report file: one line of the
//     evidence/chain format, {"entry":{"seq","prev","time","body":REPORT},
//     "sig"}, and its LF. The signed bytes are the bytes on disk; nothing is
//     re-serialised to verify (docs/format.md, "Evidence").
//   - Chain: an appliance's records numbered 1, 2, 3, … without gaps, each
//     holding the hash of the one before. One chain per appliance.
//   - Store: the chain in STATE/evidence/NNNNNNNN.json; sealed copies
//     (age) at every location under _evidence/APPLIANCE/leaf/LEAFHASH,
//     write-once (Append, Sync); each location audited for overwritten
//     versions and contradicted checkpoints (Sync, CheckLocations).
//   - Log: the reports as leaves of an RFC 6962 Merkle tree (Tree). After
//     each Append the appliance signs a checkpoint note (C2SP
//     tlog-checkpoint: origin, size, root hash; LogCheckpoint), stored
//     write-once in STATE/evidence/checkpoints/ and at every location
//     under _evidence/APPLIANCE/checkpoint/SHA256.
//   - Witness: a program elsewhere that cosigns a checkpoint only when a
//     consistency proof shows it extends the last one it cosigned (C2SP
//     tlog-witness; Witness, WitnessClient, Cosigner, Store.Cosign).
//   - Checkpoint (checkpoint.json): a signed statement "this export holds
//     reports F to N, which hashed to G and H, of a log of S reports". An
//     export carries one and the log's checkpoint.note, so reports removed
//     from either end are caught; an auditor keeps checkpoint.note to prove
//     at the next audit, with a consistency proof, that nothing up to it
//     changed (Verify).
//   - Proof: one report with its inclusion proof and the checkpoint note
//     (Prove, VerifyProof).
//   - Export: reports, public key, checkpoints, tree.txt, index.html and
//     README.txt in one directory, for an auditor (Export).
//   - Problem: one sign of tampering Verify found (edited, forged, removed,
//     reordered, inserted, truncated, rewritten, malformed, unknown schema),
//     naming the report and the reason.
//
// What the evidence proves and does not prove is in docs/evidence.md.
package evidence
