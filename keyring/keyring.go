// Package keyring holds the public keys an appliance's signed logs verify
// with: its current signing key and the trusted previous keys of the same
// appliance (a lost appliance's key, which the operator gives from the
// offline recovery kit after a disaster recovery with a new key). Every
// verifier of a log that outlives a key (the erasure register and the
// dossier access log, their anchors in the tenants' repositories) goes
// through a Ring, so a key rotation is handled in one place.
//
// # Vocabulary
//
//   - Key id: the first 16 hex digits of the SHA-256 of the raw 32-byte
//     Ed25519 public key (ID); the same id names an evidence log's
//     location prefix (_evidence/APPLIANCE/key-KEYID/).
//   - Previous key: a key the operator vouched for as this appliance's
//     earlier key (AddPrevious): state_dir/keys/previous/KEYID.pub, the
//     PEM public key, and KEYID.rotation, a rotation statement signed by
//     the current key naming it (docs/format.md, "Key rotation").
//   - Rotation line: a log line whose body is a Rotation, signed by the
//     new key, naming the key that signed the lines before it. A log is
//     segments of lines, each signed by one key; every segment after the
//     first begins with a rotation line naming the previous segment's key
//     (Verify). A key that was rotated away never signs again, so lines
//     the lost key signs after the rotation (a thief holding it) are
//     refused, and lines of a key no rotation names and the ring does not
//     hold are refused everywhere.
//
// The ring is taken from the state directory and from the operator, never
// from a location: a location credential cannot make kluis trust a key.
package keyring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
)

// ID is a key's id: the first 16 lower-case hex digits of the SHA-256 of
// the raw public key.
func ID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// KindRotation is the kind of a rotation line's body.
const KindRotation = "key-rotation"

// Rotation is the body of a rotation line and of a rotation statement:
// Key (the signer) continues the log of PreviousKey. PreviousPublicKey is
// the standard base64 of the raw previous public key, so a later
// appliance verifies the lines before the rotation with nothing but the
// key it trusts now.
type Rotation struct {
	Kind              string `json:"kind"`
	PreviousKey       string `json:"previous_key"`
	PreviousPublicKey string `json:"previous_public_key"`
	Key               string `json:"key"`
}

// NewRotation is the rotation from prev to cur.
func NewRotation(prev, cur ed25519.PublicKey) Rotation {
	return Rotation{Kind: KindRotation, PreviousKey: ID(prev), PreviousPublicKey: base64.StdEncoding.EncodeToString(prev), Key: ID(cur)}
}

// ParseRotation decodes a rotation body strictly. ok is false (and err
// nil) for a body of another kind.
func ParseRotation(body []byte) (Rotation, ed25519.PublicKey, bool, error) {
	var head struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(body, &head) != nil || head.Kind != KindRotation {
		return Rotation{}, nil, false, nil
	}
	var r Rotation
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, nil, true, fmt.Errorf("key rotation: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(r.PreviousPublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return r, nil, true, errors.New("key rotation: previous_public_key is not a base64 Ed25519 public key")
	}
	prev := ed25519.PublicKey(raw)
	if ID(prev) != r.PreviousKey || r.Key == r.PreviousKey {
		return r, nil, true, errors.New("key rotation: previous_key is not the id of previous_public_key, or names the new key itself")
	}
	return r, prev, true, nil
}

// Ring is the set of keys an appliance's logs verify with.
type Ring struct {
	current  ed25519.PublicKey
	previous []ed25519.PublicKey // oldest first
}

// New is the ring of the current key and previous keys (oldest first).
func New(current ed25519.PublicKey, previous ...ed25519.PublicKey) *Ring {
	r := &Ring{current: current}
	for _, p := range previous {
		if !r.has(p) {
			r.previous = append(r.previous, p)
		}
	}
	return r
}

// Current is the key new lines are signed with.
func (r *Ring) Current() ed25519.PublicKey { return r.current }

// Previous are the trusted previous keys, oldest first.
func (r *Ring) Previous() []ed25519.PublicKey { return append([]ed25519.PublicKey(nil), r.previous...) }

func (r *Ring) has(k ed25519.PublicKey) bool {
	if r.current.Equal(k) {
		return true
	}
	for _, p := range r.previous {
		if p.Equal(k) {
			return true
		}
	}
	return false
}

// keys are the ring's keys, current first.
func (r *Ring) keys() []ed25519.PublicKey {
	return append([]ed25519.PublicKey{r.current}, r.previous...)
}

// Signer returns the ring key l verifies with.
func (r *Ring) Signer(l chain.Line) (ed25519.PublicKey, bool) {
	for _, k := range r.keys() {
		if l.Verify(k) {
			return k, true
		}
	}
	return nil, false
}

// Vouched returns the ring extended with the keys that rotation lines
// among lines, signed by a key of the ring (or by a key such a line
// vouched for), name as their predecessors: the keys a register record
// may be signed by. Where in a log each key may sign is Verify's to
// check.
func (r *Ring) Vouched(lines []chain.Line) *Ring {
	out := New(r.current, r.previous...)
	for changed := true; changed; {
		changed = false
		for _, l := range lines {
			_, prev, ok, err := ParseRotation(l.Entry.Body)
			if !ok || err != nil || out.has(prev) {
				continue
			}
			if _, ok := out.Signer(l); ok {
				out.previous = append(out.previous, prev)
				changed = true
			}
		}
	}
	return out
}

// ErrUntrusted is wrapped when a line is signed by no key the ring trusts
// where it stands.
var ErrUntrusted = errors.New("signed by a key this appliance does not trust")

// Verify checks every line of the log read from rd: numbering and the
// hash chain as chain.Verify does, and signatures by segment. The last
// segment's key must be in the ring; each rotation line names the key of
// the segment before it, which must sign every line of it; no key signs
// two segments. It returns the head.
func (r *Ring) Verify(rd io.Reader) (chain.Head, error) {
	lines, h, err := ReadLines(rd)
	if err != nil {
		return h, err
	}
	if _, err := r.Signers(lines); err != nil {
		return chain.Head{}, err
	}
	return h, nil
}

// ReadLines reads a whole log from rd and decodes every line strictly,
// checking the numbering and the hash chain but no signature (Signers
// does). It returns the lines and the head.
func ReadLines(rd io.Reader) ([]chain.Line, chain.Head, error) {
	var lines []chain.Line
	h := chain.Head{Hash: chain.ZeroHash}
	data, err := io.ReadAll(io.LimitReader(rd, maxLog+1))
	switch {
	case err != nil:
		return nil, h, err
	case len(data) > maxLog:
		return nil, h, fmt.Errorf("log larger than %d bytes: %w", maxLog, chain.ErrBroken)
	case len(data) == 0:
		return nil, h, nil
	case data[len(data)-1] != '\n':
		return nil, h, fmt.Errorf("last record is cut off (no line feed): %w", chain.ErrBroken)
	}
	for i, raw := range bytes.Split(data[:len(data)-1], []byte("\n")) {
		l, err := chain.ParseLine(raw)
		if err != nil {
			return nil, h, fmt.Errorf("line %d: %w", i+1, err)
		}
		if l.Entry.Seq != h.Count+1 {
			return nil, h, fmt.Errorf("line %d: sequence number %d, expected %d (a record was removed, inserted or reordered): %w", i+1, l.Entry.Seq, h.Count+1, chain.ErrBroken)
		}
		if l.Entry.Prev != h.Hash {
			return nil, h, fmt.Errorf("line %d: does not chain to line %d (a record was removed, inserted, reordered or edited): %w", i+1, i, chain.ErrBroken)
		}
		h = chain.Head{Count: h.Count + 1, Hash: chain.Hash(raw)}
		lines = append(lines, l)
	}
	return lines, h, nil
}

// maxLog bounds a log Verify reads into memory.
const maxLog = 1 << 30

// VerifyFile verifies the log at path (a missing file is an empty log).
func (r *Ring) VerifyFile(path string) (chain.Head, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return chain.Head{Hash: chain.ZeroHash}, nil
	}
	if err != nil {
		return chain.Head{}, err
	}
	defer f.Close()
	return r.Verify(f)
}

// Signers returns the key that signed each of lines (a whole log, line 1
// first), by the rules of Verify, or the first line that breaks them.
func (r *Ring) Signers(lines []chain.Line) ([]ed25519.PublicKey, error) {
	return r.SignersFrom(lines, 0)
}

// SignersFrom is Signers for a log whose first verified lines are
// already proven to be lines the appliance verified and signed off (a
// checkpoint signed by the ring's current key whose Merkle root they
// hash to): their signatures are not checked again, every other rule
// is (segments, rotation lines, the last segment's key in the ring, no
// key signing twice), and every later line's signature is.
func (r *Ring) SignersFrom(lines []chain.Line, verified int) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, len(lines))
	if len(lines) == 0 {
		return out, nil
	}
	// Segment starts: line 0 and every rotation line.
	starts := []int{0}
	for i, l := range lines {
		_, _, ok, err := ParseRotation(l.Entry.Body)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %w", i+1, err, chain.ErrBroken)
		}
		if ok && i > 0 {
			starts = append(starts, i)
		}
	}
	last := starts[len(starts)-1]
	key, ok := r.Signer(lines[last])
	if !ok {
		return nil, fmt.Errorf("line %d: %w (%s): give the lost appliance's public key (kluis keys recover --signing-public-key, or kluis keys previous --add): %w", last+1, ErrUntrusted, r.describe(), chain.ErrBroken)
	}
	used := map[string]int{}
	for s := len(starts) - 1; s >= 0; s-- {
		from, to := starts[s], len(lines)
		if s+1 < len(starts) {
			to = starts[s+1]
		}
		if seg, dup := used[ID(key)]; dup {
			return nil, fmt.Errorf("line %d: key %s signs again after it was rotated away at line %d: %w", from+1, ID(key), seg+1, chain.ErrBroken)
		}
		used[ID(key)] = to
		for i := from; i < to; i++ {
			if i >= verified && !lines[i].Verify(key) {
				return nil, fmt.Errorf("line %d: signature does not verify with key %s, which signs lines %d to %d (edited, or %w): %w", i+1, ID(key), from+1, to, ErrUntrusted, chain.ErrBroken)
			}
			out[i] = key
		}
		rot, prev, isRot, _ := ParseRotation(lines[from].Entry.Body)
		if !isRot {
			break // segment 0 without a rotation line
		}
		if rot.Key != ID(key) {
			return nil, fmt.Errorf("line %d: a key rotation to key %s signed by key %s: %w", from+1, rot.Key, ID(key), chain.ErrBroken)
		}
		if from == 0 {
			break // the log begins with a rotation: nothing before it
		}
		key = prev
	}
	return out, nil
}

// describe names the ring's keys for an error.
func (r *Ring) describe() string {
	ids := []string{"current " + ID(r.current)}
	for _, p := range r.previous {
		ids = append(ids, "previous "+ID(p))
	}
	return "trusted keys: " + strings.Join(ids, ", ")
}

// NextBodies returns the bodies to append after last (a log's last line,
// nil when empty) so that body is signed by the current key: a rotation
// line first when the log's last line is by a previous key, or when the
// log is empty and the ring holds previous keys (naming the newest: no
// line of it may ever be appended there). A last line signed by a key
// the ring does not hold is an error.
func (r *Ring) NextBodies(last *chain.Line, body any) ([]any, error) {
	switch {
	case last == nil && len(r.previous) == 0:
		return []any{body}, nil
	case last == nil:
		return []any{NewRotation(r.previous[len(r.previous)-1], r.current), body}, nil
	case last.Verify(r.current):
		return []any{body}, nil
	}
	k, ok := r.Signer(*last)
	if !ok {
		// A later rotation line may vouch for it, but a last line is
		// signed by the newest key: one the ring must hold.
		return nil, fmt.Errorf("the log's last line (%d) is %w (%s)", last.Entry.Seq, ErrUntrusted, r.describe())
	}
	return []any{NewRotation(k, r.current), body}, nil
}

// Append appends body to the log at path signed with key (the ring's
// current key), with a rotation line first when NextBodies says so. It
// returns every entry appended (the rotation line first). body nil
// appends only the rotation line, if one is due.
func (r *Ring) Append(path string, key ed25519.PrivateKey, now time.Time, body any) ([]chain.Entry, error) {
	if !key.Public().(ed25519.PublicKey).Equal(r.current) {
		return nil, errors.New("keyring: the signing key is not the ring's current key")
	}
	if body == nil {
		var none bool
		es, err := chain.AppendAfter(path, key, now, func(last *chain.Line) ([]any, error) {
			bs, err := r.NextBodies(last, nil)
			if err != nil {
				return nil, err
			}
			if len(bs) < 2 {
				none = true
				return nil, errNothing
			}
			return bs[:1], nil
		})
		if none {
			return nil, nil
		}
		return es, err
	}
	return chain.AppendAfter(path, key, now, func(last *chain.Line) ([]any, error) { return r.NextBodies(last, body) })
}

var errNothing = errors.New("nothing to append")

// Directory of the previous keys under the state directory.
const PreviousDir = "keys/previous"

// Load returns the ring of current and the previous keys in
// stateDir/keys/previous: each KEYID.pub must come with KEYID.rotation,
// a rotation statement signed by current naming exactly that key. One
// that does not verify is an error (never skipped: a refusal must not
// rest on a ring someone edited).
func Load(stateDir string, current ed25519.PublicKey) (*Ring, error) {
	dir := filepath.Join(stateDir, PreviousDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return New(current), nil
	}
	if err != nil {
		return nil, err
	}
	type dated struct {
		key ed25519.PublicKey
		t   time.Time
	}
	var prev []dated
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".pub")
		if !ok {
			continue
		}
		pub, t, err := loadPrevious(dir, id, current)
		if err != nil {
			return nil, err
		}
		prev = append(prev, dated{pub, t})
	}
	sort.Slice(prev, func(i, j int) bool { return prev[i].t.Before(prev[j].t) })
	r := New(current)
	for _, p := range prev {
		r.previous = append(r.previous, p.key)
	}
	return r, nil
}

func loadPrevious(dir, id string, current ed25519.PublicKey) (ed25519.PublicKey, time.Time, error) {
	pubPath := filepath.Join(dir, id+".pub")
	b, err := readSmall(pubPath)
	if err != nil {
		return nil, time.Time{}, err
	}
	pub, err := repo.ParsePublicKey(b)
	if err != nil || ID(pub) != id {
		return nil, time.Time{}, fmt.Errorf("%s: not the Ed25519 public key with id %s", pubPath, id)
	}
	rotPath := filepath.Join(dir, id+".rotation")
	b, err = readSmall(rotPath)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("previous key %s has no rotation statement: %w", id, err)
	}
	l, err := chain.ParseLine(bytes.TrimSuffix(b, []byte("\n")))
	if err == nil && !l.Verify(current) {
		err = fmt.Errorf("not signed by this appliance's signing key %s (the key changed since: run kluis keys previous --add again for each previous key)", ID(current))
	}
	var rot Rotation
	var named ed25519.PublicKey
	if err == nil {
		var ok bool
		rot, named, ok, err = ParseRotation(l.Entry.Body)
		if err == nil && (!ok || !named.Equal(pub) || rot.Key != ID(current)) {
			err = errors.New("it does not name this key as the previous key of this appliance's key")
		}
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %v", rotPath, err)
	}
	return pub, l.Entry.Time, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err == nil && len(b) > 64<<10 {
		err = fmt.Errorf("%s: too large", path)
	}
	return b, err
}

// AddPrevious records prev as a trusted previous key of the appliance
// whose current signing key is key: stateDir/keys/previous/KEYID.pub and
// KEYID.rotation (written once, fsynced). It reports false when prev is
// already there or is the current key itself (nothing to do).
func AddPrevious(stateDir string, key ed25519.PrivateKey, prev ed25519.PublicKey, now time.Time) (bool, error) {
	cur := key.Public().(ed25519.PublicKey)
	if len(prev) != ed25519.PublicKeySize {
		return false, errors.New("keyring: not an Ed25519 public key")
	}
	if prev.Equal(cur) {
		return false, nil
	}
	ring, err := Load(stateDir, cur)
	if err != nil {
		return false, err
	}
	if ring.has(prev) {
		return false, nil
	}
	dir := filepath.Join(stateDir, PreviousDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	pemKey, err := repo.EncodePublicKey(prev)
	if err != nil {
		return false, err
	}
	b, err := json.Marshal(NewRotation(prev, cur))
	if err != nil {
		return false, err
	}
	line, err := chain.Sign(key, chain.Entry{Seq: 1, Prev: chain.ZeroHash, Time: now.UTC(), Body: b})
	if err != nil {
		return false, err
	}
	id := ID(prev)
	// The statement first: a .pub without it makes Load fail, a
	// statement without its .pub is ignored.
	for _, f := range []struct {
		name string
		data []byte
	}{{id + ".rotation", append(line, '\n')}, {id + ".pub", pemKey}} {
		if err := durable.WriteFile(filepath.Join(dir, f.name), f.data, durable.Options{TempPrefix: ".tmp-keyring-"}); err != nil {
			return false, err
		}
	}
	return true, durable.SyncDir(dir)
}
