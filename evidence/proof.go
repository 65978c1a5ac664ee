package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ProofSchema names the format of a report proof (evidence prove).
const ProofSchema = "kluis-evidence-proof/v1"

// maxProof bounds a proof file: a report, a checkpoint, 64 hashes.
const maxProof = MaxRecordSize + maxNote + 8<<10

// Proof is one report with its inclusion proof in a signed checkpoint:
// small enough to attach to an audit finding, and verifiable with the
// appliance's public key alone (docs/auditor.md, "One report").
type Proof struct {
	Schema string `json:"schema"`
	// Report is the report's line exactly as signed (without its LF).
	Report string `json:"report"`
	// Leaf is the report's leaf index (its number - 1); Hashes the
	// inclusion proof (RFC 6962 audit path) to the checkpoint's root.
	Leaf   int64       `json:"leaf"`
	Hashes []tlog.Hash `json:"hashes"`
	// Checkpoint is the signed checkpoint note (with any cosignatures).
	Checkpoint string `json:"checkpoint"`
}

// Prove returns the proof file of report seq in tree t under the signed
// checkpoint cp (of t's size).
func Prove(rec Record, t *Tree, cp []byte) ([]byte, error) {
	if rec.Seq == 0 || int64(rec.Seq) > t.Size() {
		return nil, fmt.Errorf("evidence: report %d is not in the log of %d reports", rec.Seq, t.Size())
	}
	p, err := tlog.ProveRecord(t.Size(), int64(rec.Seq-1), t)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(Proof{Schema: ProofSchema, Report: string(bytes.TrimSuffix(rec.Raw, []byte("\n"))), Leaf: int64(rec.Seq - 1), Hashes: p, Checkpoint: string(cp)}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseProof decodes a proof file strictly (bounded, no unknown fields,
// the proof no longer than a tree of 2^63 leaves needs). Errors wrap
// ErrMalformed or ErrUnknownSchema.
func ParseProof(data []byte) (Proof, error) {
	var p Proof
	if len(data) > maxProof {
		return p, fmt.Errorf("proof: larger than %d bytes: %w", maxProof, ErrMalformed)
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return p, fmt.Errorf("proof: not a JSON object: %w", ErrMalformed)
	}
	if head.Schema != ProofSchema {
		return p, fmt.Errorf("proof schema %.80q, this kluis reads %q: %w", head.Schema, ProofSchema, ErrUnknownSchema)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("proof: %s: %w", clip(err.Error()), ErrMalformed)
	}
	if dec.More() {
		return p, fmt.Errorf("proof: trailing data: %w", ErrMalformed)
	}
	if p.Leaf < 0 || len(p.Hashes) > 63 || p.Report == "" || p.Checkpoint == "" {
		return p, fmt.Errorf("proof: leaf, hashes, report or checkpoint out of range: %w", ErrMalformed)
	}
	return p, nil
}

// ProofResult is what VerifyProof established.
type ProofResult struct {
	Record     Record        `json:"record"`
	Checkpoint LogCheckpoint `json:"checkpoint"`
	Cosigned   []string      `json:"cosigned"`
}

// VerifyProof checks a proof file with the appliance's public key: the
// report's signature, the checkpoint's signature (and the cosignature of
// every witness given), and that the report is leaf Leaf of the tree the
// checkpoint signs.
func VerifyProof(data []byte, pub ed25519.PublicKey, witnesses ...note.Verifier) (*ProofResult, error) {
	p, err := ParseProof(data)
	if err != nil {
		return nil, err
	}
	l, err := parseLine([]byte(p.Report + "\n"))
	if err != nil {
		return nil, fmt.Errorf("proof: the report: %w", err)
	}
	if !l.Verify(pub) {
		return nil, errors.New("proof: the report's signature does not verify with the given public key")
	}
	rec := recordOf(l)
	if err := decodeReport(l.Entry.Body, &rec.Report); err != nil {
		return nil, fmt.Errorf("proof: the report: %w", err)
	}
	if int64(rec.Seq-1) != p.Leaf {
		return nil, fmt.Errorf("proof: report %d is given as leaf %d: %w", rec.Seq, p.Leaf, ErrMalformed)
	}
	c, cosigned, err := OpenLogCheckpoint([]byte(p.Checkpoint), rec.Report.Appliance, pub, witnesses...)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	for _, w := range witnesses {
		found := false
		for _, n := range cosigned {
			found = found || n == w.Name()
		}
		if !found {
			return nil, fmt.Errorf("proof: the checkpoint is not cosigned by witness %s", w.Name())
		}
	}
	if p.Leaf >= c.Size {
		return nil, fmt.Errorf("proof: report %d is not in the checkpoint's log of %d reports", rec.Seq, c.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.Leaf, LeafHash(rec)); err != nil {
		return nil, fmt.Errorf("proof: report %d is not included in the signed log of %d reports (the inclusion proof fails): %v", rec.Seq, c.Size, err)
	}
	return &ProofResult{Record: rec, Checkpoint: c, Cosigned: cosigned}, nil
}
