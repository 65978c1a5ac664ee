package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The transparency log (docs/evidence.md, "The log"; docs/format.md,
// "Evidence log"): report n (counted from 1) is leaf n-1 of an RFC 6962
// Merkle tree whose leaf hash is SHA-256(0x00 ‖ the report's line, without
// its LF). After each append the appliance signs a checkpoint, a C2SP
// tlog-checkpoint signed note:
//
//	kluis-evidence/APPLIANCE
//	SIZE
//	BASE64(ROOT)
//
//	— kluis-evidence/APPLIANCE BASE64(KEYHASH ‖ ED25519 SIGNATURE)
//
// Witnesses add C2SP tlog-cosignature/v1 lines (Cosigner). A chain written
// before the log existed needs no migration: its reports are the first
// leaves, in order.

// Origin is the origin line (and the signature name) of an appliance's
// evidence log.
func Origin(appliance string) string { return "kluis-evidence/" + appliance }

// LeafHash is the Merkle leaf hash of a report (RFC 6962: SHA-256 of 0x00
// and the report's line without its final LF).
func LeafHash(r Record) tlog.Hash {
	return tlog.RecordHash(bytes.TrimSuffix(r.Raw, []byte("\n")))
}

// Tree holds every stored hash of a log, in memory: enough to compute any
// earlier tree head and any inclusion or consistency proof.
type Tree struct {
	n      int64
	stored []tlog.Hash
}

// NewTree returns the tree of the given leaf hashes, in order.
func NewTree(leaves []tlog.Hash) (*Tree, error) {
	t := &Tree{stored: make([]tlog.Hash, 0, 2*len(leaves))}
	for _, h := range leaves {
		if err := t.Add(h); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Add appends a leaf hash.
func (t *Tree) Add(h tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, h, t)
	if err != nil {
		return err
	}
	t.stored = append(t.stored, hs...)
	t.n++
	return nil
}

// Size is the number of leaves.
func (t *Tree) Size() int64 { return t.n }

// ReadHashes implements tlog.HashReader.
func (t *Tree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(t.stored)) {
			return nil, fmt.Errorf("stored hash %d not in a tree of %d leaves", x, t.n)
		}
		out[i] = t.stored[x]
	}
	return out, nil
}

// Root is the tree head of the first n leaves.
func (t *Tree) Root(n int64) (tlog.Hash, error) {
	if n < 0 || n > t.n {
		return tlog.Hash{}, fmt.Errorf("tree of %d leaves has no head at size %d", t.n, n)
	}
	return tlog.TreeHash(n, t)
}

// Leaf is leaf i's hash.
func (t *Tree) Leaf(i int64) (tlog.Hash, error) {
	hs, err := t.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		return tlog.Hash{}, err
	}
	return hs[0], nil
}

// LogCheckpoint is a decoded checkpoint of the log: the tree of Size
// reports of Origin's log has head Root.
type LogCheckpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
	// Extensions are the checkpoint's lines after the root, uninterpreted.
	Extensions []string `json:"extensions,omitempty"`
}

// maxNote bounds a checkpoint note (with up to a few dozen cosignatures).
const maxNote = 16 << 10

// Text is the checkpoint body a note signs.
func (c LogCheckpoint) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
	for _, e := range c.Extensions {
		b.WriteString(e + "\n")
	}
	return b.String()
}

// ParseCheckpointText decodes a checkpoint body (C2SP tlog-checkpoint):
// origin, decimal size without leading zeros, base64 root hash, optional
// extension lines, each ended by a LF. Errors wrap ErrMalformed.
func ParseCheckpointText(text string) (LogCheckpoint, error) {
	if len(text) > maxNote || !strings.HasSuffix(text, "\n") {
		return LogCheckpoint{}, fmt.Errorf("checkpoint: not lines ending in a line feed: %w", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return LogCheckpoint{}, fmt.Errorf("checkpoint: fewer than three lines (origin, size, root): %w", ErrMalformed)
	}
	var c LogCheckpoint
	c.Origin = lines[0]
	if c.Origin == "" || strings.ContainsAny(c.Origin, " \t") {
		return c, fmt.Errorf("checkpoint: bad origin line: %w", ErrMalformed)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint: bad size %.40q: %w", lines[1], ErrMalformed)
	}
	c.Size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return c, fmt.Errorf("checkpoint: bad root hash: %w", ErrMalformed)
	}
	copy(c.Root[:], root)
	for _, e := range lines[3:] {
		if e == "" {
			return c, fmt.Errorf("checkpoint: empty extension line: %w", ErrMalformed)
		}
	}
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	return c, nil
}

// signer signs notes with an Ed25519 key under a name (note's format).
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s signer) Name() string                    { return s.name }
func (s signer) KeyHash() uint32                 { return s.hash }
func (s signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// LogVerifier is the note verifier of an appliance's log key.
func LogVerifier(appliance string, pub ed25519.PublicKey) (note.Verifier, error) {
	return NoteVerifier(Origin(appliance), pub)
}

// NoteVerifier is the note verifier of the checkpoints of the log named
// origin, signed with pub (the signature name is the origin).
func NoteVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// SignLogCheckpoint signs c with the appliance's key as a note.
func SignLogCheckpoint(key ed25519.PrivateKey, c LogCheckpoint) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoint: no signing key")
	}
	v, err := note.NewEd25519VerifierKey(c.Origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	vv, err := note.NewVerifier(v)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: c.Text()}, signer{name: c.Origin, hash: vv.KeyHash(), key: key})
}

// ErrCheckpoint is wrapped by OpenLogCheckpoint's errors for a note that
// is well formed but not signed as required.
var ErrCheckpoint = errors.New("checkpoint not signed as required")

// OpenLogCheckpoint decodes a checkpoint note and checks the appliance's
// signature: the origin must be appliance's and the note signed by pub.
// Cosignatures of witnesses are checked and returned (names of the
// witnesses whose cosignature verifies); unknown signatures are ignored.
// Errors wrap ErrMalformed or ErrCheckpoint.
func OpenLogCheckpoint(data []byte, appliance string, pub ed25519.PublicKey, witnesses ...note.Verifier) (LogCheckpoint, []string, error) {
	return openCheckpoint(data, Origin(appliance), "appliance "+appliance+"'s", "appliance", pub, witnesses)
}

// OpenCheckpoint is OpenLogCheckpoint of any log: the note's origin must
// be origin and the note signed by pub under that name (SignLogCheckpoint).
// The dossier access log and the erasure register use it with their own
// origins (package dossier).
func OpenCheckpoint(data []byte, origin string, pub ed25519.PublicKey, witnesses ...note.Verifier) (LogCheckpoint, []string, error) {
	return openCheckpoint(data, origin, origin, "log's", pub, witnesses)
}

// openCheckpoint is OpenCheckpoint; its errors name the log (owner) and
// the key (whose) as the caller's reader knows them.
func openCheckpoint(data []byte, origin, owner, whose string, pub ed25519.PublicKey, witnesses []note.Verifier) (LogCheckpoint, []string, error) {
	if len(data) > maxNote {
		return LogCheckpoint{}, nil, fmt.Errorf("checkpoint: larger than %d bytes: %w", maxNote, ErrMalformed)
	}
	lv, err := NoteVerifier(origin, pub)
	if err != nil {
		return LogCheckpoint{}, nil, fmt.Errorf("checkpoint: %v: %w", err, ErrCheckpoint)
	}
	n, err := note.Open(data, note.VerifierList(append([]note.Verifier{lv}, witnesses...)...))
	var unverified *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unverified):
		c, perr := ParseCheckpointText(unverified.Note.Text)
		if perr == nil && c.Origin != origin {
			return c, nil, fmt.Errorf("checkpoint of another log (%.80q), not %s: %w", c.Origin, owner, ErrCheckpoint)
		}
		return c, nil, fmt.Errorf("checkpoint not signed by the %s key given: %w", whose, ErrCheckpoint)
	case err != nil && strings.Contains(err.Error(), "invalid signature"):
		return LogCheckpoint{}, nil, fmt.Errorf("checkpoint: a signature does not verify (%v): edited or forged: %w", err, ErrCheckpoint)
	case err != nil:
		return LogCheckpoint{}, nil, fmt.Errorf("checkpoint: %v: %w", err, ErrMalformed)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return c, nil, err
	}
	if c.Origin != origin {
		return c, nil, fmt.Errorf("checkpoint of log %.80q, not %s: %w", c.Origin, owner, ErrCheckpoint)
	}
	own := false
	var cosigned []string
	for _, s := range n.Sigs {
		if s.Name == lv.Name() && s.Hash == lv.KeyHash() {
			own = true
			continue
		}
		cosigned = append(cosigned, s.Name)
	}
	if !own {
		return c, nil, fmt.Errorf("checkpoint not signed by the %s key given: %w", whose, ErrCheckpoint)
	}
	return c, cosigned, nil
}

// NoteText is the signed text of a note (up to and with the line feed
// before the blank line), nil when it has none.
func NoteText(n []byte) []byte { return noteText(n) }

// Cosignatures (C2SP tlog-cosignature/v1): a witness signs
// "cosignature/v1\ntime T\n" followed by the checkpoint body with Ed25519;
// the signature line holds the key hash (SHA-256 of name, LF, 0x04 and
// the public key; first 4 bytes), T as 8 big-endian bytes, and the
// signature.
const cosigAlg = 0x04

func cosigKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{cosigAlg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func cosigMessage(t uint64, text []byte) []byte {
	return append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), text...)
}

// Cosigner signs checkpoints as a witness.
type Cosigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	// Now is the clock of the cosignature timestamps (default time.Now).
	Now func() time.Time
}

// NewCosigner returns the cosigner of a witness named name.
func NewCosigner(name string, key ed25519.PrivateKey) (*Cosigner, error) {
	if !validKeyName(name) || len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("witness: name %q or key not usable", name)
	}
	return &Cosigner{name: name, hash: cosigKeyHash(name, key.Public().(ed25519.PublicKey)), key: key, Now: time.Now}, nil
}

func (c *Cosigner) Name() string    { return c.name }
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// Sign returns the timestamp and the signature (note adds the key hash).
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	t := uint64(c.Now().Unix())
	out := binary.BigEndian.AppendUint64(nil, t)
	return append(out, ed25519.Sign(c.key, cosigMessage(t, msg))...), nil
}

// Line is the cosignature line of a checkpoint body: "— NAME BASE64\n".
func (c *Cosigner) Line(text []byte) (string, error) {
	sig, err := c.Sign(text)
	if err != nil {
		return "", err
	}
	b := binary.BigEndian.AppendUint32(nil, c.hash)
	return "— " + c.name + " " + base64.StdEncoding.EncodeToString(append(b, sig...)) + "\n", nil
}

// cosigVerifier verifies a witness's cosignatures.
type cosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

func (v cosigVerifier) Name() string    { return v.name }
func (v cosigVerifier) KeyHash() uint32 { return v.hash }
func (v cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(v.pub, cosigMessage(binary.BigEndian.Uint64(sig[:8]), msg), sig[8:])
}

// WitnessVerifier is the verifier of a witness's cosignatures.
func WitnessVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	if !validKeyName(name) || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("witness %q: bad name or key", name)
	}
	return cosigVerifier{name: name, hash: cosigKeyHash(name, pub), pub: pub}, nil
}

// WitnessKey is the text form of a witness public key, as C2SP vkeys are
// written: NAME+HEXKEYHASH+BASE64(0x04 ‖ KEY).
func WitnessKey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, cosigKeyHash(name, pub), base64.StdEncoding.EncodeToString(append([]byte{cosigAlg}, pub...)))
}

// ParseWitnessKey decodes WitnessKey's form. Errors wrap ErrMalformed.
func ParseWitnessKey(s string) (note.Verifier, error) {
	s = strings.TrimSpace(s)
	name, rest, ok1 := strings.Cut(s, "+")
	hh, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || len(s) > 1024 {
		return nil, fmt.Errorf("witness key: want NAME+KEYHASH+BASE64: %w", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	hb, herr := hex.DecodeString(hh)
	// Only the canonical spelling (lower-case hex, canonical base64): a
	// key has one text, so configs and witness state compare as strings.
	if err != nil || herr != nil || len(hb) != 4 || len(raw) != 1+ed25519.PublicKeySize || raw[0] != cosigAlg ||
		hh != hex.EncodeToString(hb) || b64 != base64.StdEncoding.EncodeToString(raw) {
		return nil, fmt.Errorf("witness key: not an Ed25519 cosignature key: %w", ErrMalformed)
	}
	v, err := WitnessVerifier(name, ed25519.PublicKey(raw[1:]))
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if v.KeyHash() != binary.BigEndian.Uint32(hb) {
		return nil, fmt.Errorf("witness key: key hash does not match the key: %w", ErrMalformed)
	}
	return v, nil
}

func validKeyName(name string) bool {
	return name != "" && len(name) <= 200 && !strings.ContainsAny(name, " +\n\t") && strings.ToValidUTF8(name, "") == name
}
