package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CheckpointSchema names the version of the checkpoint format this kluis
// writes: v2 names the first and the last report of an export.
// CheckpointSchemaV1 is the earlier format, which named only the last;
// it is still read.
// CheckpointSchemaV2 is v3 without log_size: written before the
// transparency log; still read.
const (
	CheckpointSchema   = "kluis-evidence-checkpoint/v3"
	CheckpointSchemaV2 = "kluis-evidence-checkpoint/v2"
	CheckpointSchemaV1 = "kluis-evidence-checkpoint/v1"
)

// CheckpointFile is the name of the checkpoint in an export.
const CheckpointFile = "checkpoint.json"

// maxCheckpointSize bounds a checkpoint file.
const maxCheckpointSize = 4 << 10

// Checkpoint is a signed statement of an appliance's chain at one moment:
// it had Count reports and report Count's hash was Hash. A chain only
// grows, so a later chain still holds the same report Count with the same
// hash; an auditor who kept a checkpoint can prove that nothing up to it
// was rewritten or cut off (docs/evidence.md, "The checkpoint"). First and
// FirstHash name the first report of the export the checkpoint was made
// for (report 1 for a complete export), so reports removed from its start
// are caught as well (v2; zero in a v1 checkpoint).
type Checkpoint struct {
	Schema    string    `json:"schema"`
	Appliance string    `json:"appliance"`
	First     uint64    `json:"first,omitempty"`
	FirstHash string    `json:"first_hash,omitempty"`
	Count     uint64    `json:"count"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	// LogSize (v3) is the size of the log whose checkpoint note
	// (checkpoint.note) and leaf hashes (tree.txt) accompany the export:
	// an export without them, or with a smaller log, was tampered with.
	LogSize uint64 `json:"log_size,omitempty"`
}

// NamesFirst reports whether the checkpoint names the first report of its
// export (v2).
func (c Checkpoint) NamesFirst() bool { return c.First > 0 }

// SignedCheckpoint is a decoded checkpoint file.
type SignedCheckpoint struct {
	Checkpoint
	body, sig []byte
}

// Verify reports whether the checkpoint's signature verifies with pub.
func (c SignedCheckpoint) Verify(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, c.body, c.sig)
}

// SignCheckpoint returns a checkpoint file (docs/format.md, "Evidence").
func SignCheckpoint(key ed25519.PrivateKey, c Checkpoint) ([]byte, error) {
	c.Schema = CheckpointSchema
	if c.LogSize == 0 {
		c.Schema = CheckpointSchemaV2
	}
	c.Time = c.Time.UTC()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append(canonicalCheckpoint(body, ed25519.Sign(key, body)), '\n'), nil
}

func canonicalCheckpoint(body, sig []byte) []byte {
	b := append([]byte(`{"checkpoint":`), body...)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, `"}`...)
}

// ParseCheckpoint decodes a checkpoint file strictly (docs/format.md,
// "Evidence"): one canonical line and its LF. It does not check the
// signature. Errors wrap ErrMalformed or ErrUnknownSchema.
func ParseCheckpoint(data []byte) (SignedCheckpoint, error) {
	if len(data) > maxCheckpointSize {
		return SignedCheckpoint{}, fmt.Errorf("larger than %d bytes: %w", maxCheckpointSize, ErrMalformed)
	}
	raw, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok || bytes.IndexByte(raw, '\n') >= 0 {
		return SignedCheckpoint{}, fmt.Errorf("not one line ending in a line feed: %w", ErrMalformed)
	}
	var f struct {
		Checkpoint json.RawMessage `json:"checkpoint"`
		Sig        string          `json:"sig"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || len(f.Checkpoint) == 0 {
		return SignedCheckpoint{}, fmt.Errorf("not a kluis evidence checkpoint: %w", ErrMalformed)
	}
	sig, err := base64.StdEncoding.DecodeString(f.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return SignedCheckpoint{}, fmt.Errorf("bad signature encoding: %w", ErrMalformed)
	}
	if !bytes.Equal(raw, canonicalCheckpoint(f.Checkpoint, sig)) {
		return SignedCheckpoint{}, fmt.Errorf("not in canonical form: %w", ErrMalformed)
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(f.Checkpoint, &head); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("not a JSON object: %w", ErrMalformed)
	}
	if head.Schema != CheckpointSchema && head.Schema != CheckpointSchemaV2 && head.Schema != CheckpointSchemaV1 {
		return SignedCheckpoint{}, fmt.Errorf("checkpoint schema %.80q, this kluis reads %q, %q and %q: %w", head.Schema, CheckpointSchema, CheckpointSchemaV2, CheckpointSchemaV1, ErrUnknownSchema)
	}
	var c Checkpoint
	dec = json.NewDecoder(bytes.NewReader(f.Checkpoint))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("checkpoint: %s: %w", clip(err.Error()), ErrMalformed)
	}
	if err := c.check(); err != nil {
		return SignedCheckpoint{}, fmt.Errorf("%w: %w", err, ErrMalformed)
	}
	return SignedCheckpoint{Checkpoint: c, body: f.Checkpoint, sig: sig}, nil
}

// check checks the fields of a checkpoint of its schema.
func (c Checkpoint) check() error {
	if c.Appliance == "" || c.Count == 0 || !isHexHash(c.Hash) {
		return errors.New("checkpoint lacks its appliance, count or hash")
	}
	switch {
	case c.Schema == CheckpointSchema && c.LogSize < c.Count:
		return errors.New("checkpoint names a log smaller than its last report")
	case c.Schema != CheckpointSchema && c.LogSize != 0:
		return errors.New("a v1 or v2 checkpoint names a log")
	}
	switch c.Schema {
	case CheckpointSchemaV1:
		if c.First != 0 || c.FirstHash != "" {
			return errors.New("a v1 checkpoint names a first report")
		}
	default:
		if c.First == 0 || c.First > c.Count || !isHexHash(c.FirstHash) || c.First == c.Count && c.FirstHash != c.Hash {
			return errors.New("checkpoint lacks its first report (first, first_hash) or names one after its last")
		}
	}
	return nil
}
