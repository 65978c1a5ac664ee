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
//   - Store: the chain in STATE/evidence/NNNNNNNN.json, copied write-once to
//     _evidence/APPLIANCE/NNNNNNNN.json at every location (Append, Sync).
//   - Checkpoint: a signed statement "the chain had N reports and report N
//     hashed to H; this export starts at report F, which hashed to G". An
//     export carries one, so reports removed from either end of it are
//     caught; an auditor keeps it to prove at the next audit that nothing
//     up to report N changed (Verify).
//   - Export: reports, public key, checkpoint, index.html and README.txt in
//     one directory, for an auditor (Export).
//   - Problem: one sign of tampering Verify found (edited, forged, removed,
//     reordered, inserted, truncated, rewritten, malformed, unknown schema),
//     naming the report and the reason.
//
// What the evidence proves and does not prove is in docs/evidence.md.
package evidence
