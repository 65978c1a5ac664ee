package dossier

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/keyring"
)

// The register logs as transparency logs (docs/format.md, "Register
// log"): line n of the erasure register or of the access log (counted
// from 1, without its LF) is leaf n-1 of an RFC 6962 Merkle tree, hashed
// as the evidence log hashes its reports (evidence.Tree). After each
// append the appliance signs a C2SP checkpoint of the tree (a signed note,
// evidence.SignLogCheckpoint) under the log's own origin:
//
//	kluis-erasure-register/APPLIANCE
//	kluis-access-log/APPLIANCE
//
// with the key that signed the checkpoint's last line. The newest
// checkpoint is kept in the state directory (CheckpointFileOf) and goes
// into every register record (Record.Checkpoint), so each location holds
// signed tree heads the local log must stay consistent with. A chain
// written before needs no migration: its lines are the first leaves.

// ErrInconsistent is wrapped when a log is not consistent with a signed
// checkpoint of it: the log holds fewer lines than the checkpoint signs
// (cut off, rolled back) or other ones (rewritten).
var ErrInconsistent = errors.New("log is not consistent with its signed checkpoint")

// Origin is the checkpoint origin (and note signature name) of a
// register log of an appliance.
func Origin(log, appliance string) string { return originPrefix(log) + appliance }

func originPrefix(log string) string {
	if log == LogNameAccess {
		return "kluis-access-log/"
	}
	return "kluis-erasure-register/"
}

// CheckpointFileOf is the state_dir file of a log's newest checkpoint
// note (with any witness cosignatures).
func CheckpointFileOf(log string) string {
	return strings.TrimSuffix(FileOf(log), ".jsonl") + ".checkpoint"
}

// LeafHash is the Merkle leaf hash of a log line (without its LF).
func LeafHash(line []byte) tlog.Hash { return tlog.RecordHash(line) }

// Tree is the Merkle tree of the lines of a log, line 1 first.
func Tree(lines [][]byte) (*evidence.Tree, error) {
	leaves := make([]tlog.Hash, len(lines))
	for i, l := range lines {
		leaves[i] = LeafHash(l)
	}
	return evidence.NewTree(leaves)
}

// LogLines verifies the log at path with ring (every line's signature,
// number and link: keyring.Ring.Verify) and returns its lines (without
// LF) and the key that signed each. It is the full check (VerifyLog);
// LoadLog is the cheap one every append and anchor check runs.
func LogLines(path string, ring *keyring.Ring) ([][]byte, []ed25519.PublicKey, error) {
	lines, err := readLog(path)
	if err != nil {
		return nil, nil, err
	}
	signers, err := ring.Signers(lines)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return raws(lines), signers, nil
}

// readLog reads and decodes the log at path (a missing file is an empty
// log), checking numbering and hash chain but no signature.
func readLog(path string) ([]chain.Line, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines, _, err := keyring.ReadLines(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, nil
}

func raws(lines []chain.Line) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = l.Raw
	}
	return out
}

// LocalLog is a register log in the state directory as LoadLog proved it.
type LocalLog struct {
	// Lines are the decoded lines, Signers the key that signed each,
	// Tree their Merkle tree.
	Lines   []chain.Line
	Signers []ed25519.PublicKey
	Tree    *evidence.Tree
	// Checkpoint is the newest checkpoint kept beside the log (nil:
	// none); Proven the number of lines it proved (0: it proved none,
	// and every line's signature was checked).
	Checkpoint []byte
	Proven     int64
}

// Raw returns the lines without their LF.
func (l *LocalLog) Raw() [][]byte { return raws(l.Lines) }

// LoadLog reads the register log (LogNameErasures or LogNameAccess) of
// appliance in stateDir and verifies it with ring as LogLines does, but
// in time that grows with the log by hashing only: when the checkpoint
// kept beside it (CheckpointFileOf) opens under the log's origin with
// the ring's current key, the Merkle root of the log's first lines must
// be the one it signs, which proves them to be the lines the appliance
// verified before it signed that checkpoint (it signs one only of lines
// so verified: the lines it proved, plus later lines whose signatures
// it checked); their signatures are not checked again. Numbering, hash
// chain and key rotation rules are checked for every line, and the
// signature of every line after the checkpoint. A checkpoint of the
// current key that signs more lines than the log holds, or another
// root, is an error (ErrInconsistent: the log was cut off, rolled back
// or edited). A missing checkpoint, one of another key (a rebuilt log
// before its next append) or one that does not open falls back to
// checking every line's signature, never to trusting the lines; whether
// the checkpoint itself is sound is CheckAnchored's to say. The full
// check of every signature is VerifyLog's (kluis access-log verify,
// erasure verify).
func LoadLog(stateDir, log, appliance string, ring *keyring.Ring) (*LocalLog, error) {
	// The checkpoint first: a concurrent append grows the log before it
	// replaces the checkpoint, so the log read after it holds every line
	// it signs.
	cp, err := ReadCheckpoint(stateDir, log)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, FileOf(log))
	lines, err := readLog(path)
	if err != nil {
		return nil, err
	}
	t, err := Tree(raws(lines))
	if err != nil {
		return nil, err
	}
	l := &LocalLog{Lines: lines, Tree: t, Checkpoint: cp}
	if cp != nil && appliance != "" {
		if c, _, err := evidence.OpenCheckpoint(cp, Origin(log, appliance), ring.Current()); err == nil && c.Size > 0 {
			label := filepath.Join(stateDir, CheckpointFileOf(log))
			if c.Size > t.Size() {
				return nil, fmt.Errorf("%s signs a log of %d lines, but %s holds %d: lines %d to %d were removed (the log was deleted, truncated or rolled back to an older state: run kluis erasure recover to rebuild it from its anchors in the tenants' repositories): %w", label, c.Size, path, t.Size(), t.Size()+1, c.Size, ErrInconsistent)
			}
			root, err := t.Root(c.Size)
			if err != nil {
				return nil, err
			}
			if root != c.Root {
				return nil, fmt.Errorf("%s, signed by this appliance's key, signs other lines than the first %d of %s: a line up to %d was edited, removed, inserted or reordered, or the log was replaced: %w", label, c.Size, path, c.Size, ErrInconsistent)
			}
			l.Proven = c.Size
		}
	}
	if l.Signers, err = ring.SignersFrom(lines, int(l.Proven)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// SignCheckpoint signs the checkpoint of the first size leaves of t, the
// tree of appliance's log, with key.
func SignCheckpoint(key ed25519.PrivateKey, log, appliance string, t *evidence.Tree, size int64) ([]byte, error) {
	if appliance == "" {
		return nil, errors.New("register checkpoint: no appliance id")
	}
	root, err := t.Root(size)
	if err != nil {
		return nil, err
	}
	return evidence.SignLogCheckpoint(key, evidence.LogCheckpoint{Origin: Origin(log, appliance), Size: size, Root: root})
}

// WriteCheckpoint keeps cp as the newest checkpoint of log in stateDir.
func WriteCheckpoint(stateDir, log string, cp []byte) error {
	return writeFileDurable(filepath.Join(stateDir, CheckpointFileOf(log)), cp)
}

// ReadCheckpoint returns the newest checkpoint of log kept in stateDir
// (nil: none, a log written before checkpoints).
func ReadCheckpoint(stateDir, log string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, CheckpointFileOf(log)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// CheckCheckpoint proves that cp, a checkpoint of log named label in
// errors, describes a prefix of the log whose lines, signers and tree are
// given: it must be signed under origin (another appliance's log or
// another log is refused) by the key that signed its last line (by a key
// of ring when the log is shorter than cp), sign no more lines than the
// log holds, and a consistency proof from it to the log's tree must
// verify. It returns the opened checkpoint and the names of the
// cosigners among witnesses. Errors wrap ErrInconsistent or
// evidence.ErrCheckpoint / evidence.ErrMalformed.
func CheckCheckpoint(cp []byte, label, origin string, ring *keyring.Ring, signers []ed25519.PublicKey, t *evidence.Tree, witnesses ...note.Verifier) (evidence.LogCheckpoint, []string, error) {
	text, _, ok := bytes.Cut(cp, []byte("\n\n"))
	if !ok {
		return evidence.LogCheckpoint{}, nil, fmt.Errorf("%s: not a signed note: %w", label, evidence.ErrMalformed)
	}
	head, err := evidence.ParseCheckpointText(string(text) + "\n")
	if err != nil {
		return head, nil, fmt.Errorf("%s: %w", label, err)
	}
	keys := append([]ed25519.PublicKey{ring.Current()}, ring.Previous()...)
	bySigner := head.Size > 0 && head.Size <= int64(len(signers))
	if bySigner {
		keys = []ed25519.PublicKey{signers[head.Size-1]}
	}
	var c evidence.LogCheckpoint
	var cosigned []string
	for _, k := range keys {
		if c, cosigned, err = evidence.OpenCheckpoint(cp, origin, k, witnesses...); err == nil {
			break
		}
	}
	if err != nil {
		if head.Origin == origin && bySigner && !errors.Is(err, evidence.ErrMalformed) && !strings.Contains(err.Error(), "edited or forged") {
			return c, nil, fmt.Errorf("%s: not signed by key %s, which signed line %d of the log: forged, or the log was rewritten: %w", label, keyring.ID(keys[0]), head.Size, evidence.ErrCheckpoint)
		}
		return c, nil, fmt.Errorf("%s: %w", label, err)
	}
	if c.Size > t.Size() {
		return c, cosigned, fmt.Errorf("%s signs a log of %d lines, but the log holds %d: lines %d to %d were removed (the log was truncated, or rolled back to an older state): %w", label, c.Size, t.Size(), t.Size()+1, c.Size, ErrInconsistent)
	}
	if c.Size == 0 {
		return c, cosigned, nil
	}
	root, err := t.Root(t.Size())
	if err != nil {
		return c, cosigned, err
	}
	p, err := tlog.ProveTree(t.Size(), c.Size, t)
	if err == nil {
		err = tlog.CheckTree(p, t.Size(), root, c.Size, c.Root)
	}
	if err != nil {
		return c, cosigned, fmt.Errorf("%s (a log of %d lines) is not a prefix of the log of %d lines (no consistency proof): lines up to %d were edited, removed, inserted or reordered since, or the log was replaced: %w", label, c.Size, t.Size(), c.Size, ErrInconsistent)
	}
	return c, cosigned, nil
}

// LogVerification is what VerifyLog proved of a register log.
type LogVerification struct {
	File  string `json:"file"`
	Log   string `json:"log"`
	Lines int64  `json:"records"`
	// Head is the hash of the last line (the hash chain's head); Root
	// the Merkle tree head of every line (base64, as in a checkpoint).
	Head string `json:"head"`
	Root string `json:"root"`
	// Origin is the origin the checkpoints were checked under.
	Origin string `json:"origin,omitempty"`
	// CheckpointSize is the size of the newest checkpoint kept beside
	// the log (0: none), Cosigned its witnesses' names.
	CheckpointSize int64    `json:"checkpoint_size"`
	Cosigned       []string `json:"cosigned,omitempty"`
	// HeldSize is the size of the checkpoint the caller kept (0: none
	// given, or empty).
	HeldSize int64    `json:"held_checkpoint_size,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// VerifyOptions are what VerifyLog checks a log against besides its own
// lines.
type VerifyOptions struct {
	// Appliance is the appliance id the checkpoints' origin must name;
	// "" takes it from the first checkpoint (whose key must still be one
	// of the ring's).
	Appliance string
	// Checkpoint is the newest checkpoint kept beside the log (nil: none);
	// Held a checkpoint the caller kept from earlier (nil: none), named
	// HeldName in messages.
	Checkpoint, Held []byte
	HeldName         string
	// Witnesses are the witnesses whose cosignature the newest
	// checkpoint must carry.
	Witnesses []note.Verifier
	// ChainOnly verifies a log in the chain format that keeps no
	// checkpoints (the portal log): its lines only.
	ChainOnly bool
}

// VerifyLog verifies the register log (log: LogNameErasures or
// LogNameAccess) at path with ring: every line's signature, number and
// link (keyring.Ring.Verify), and a consistency proof from each
// checkpoint given to the log's Merkle tree (CheckCheckpoint): a log cut
// off at either end, with a line removed, inserted, reordered or edited,
// rolled back behind a checkpoint, or replaced fails, naming the reason.
func VerifyLog(path, log string, ring *keyring.Ring, o VerifyOptions) (*LogVerification, error) {
	lines, signers, err := LogLines(path, ring)
	if err != nil {
		return nil, err
	}
	t, err := Tree(lines)
	if err != nil {
		return nil, err
	}
	v := &LogVerification{File: path, Log: log, Lines: t.Size(), Head: chain.ZeroHash}
	if len(lines) > 0 {
		v.Head = chain.Hash(lines[len(lines)-1])
	}
	root, err := t.Root(t.Size())
	if err != nil {
		return nil, err
	}
	v.Root = root.String()
	if o.Appliance != "" {
		v.Origin = Origin(log, o.Appliance)
	}
	origin := func(cp []byte, label string) (string, error) {
		if v.Origin != "" {
			return v.Origin, nil
		}
		text, _, _ := bytes.Cut(cp, []byte("\n\n"))
		c, err := evidence.ParseCheckpointText(string(text) + "\n")
		if err != nil {
			return "", fmt.Errorf("%s: %w", label, err)
		}
		if !strings.HasPrefix(c.Origin, originPrefix(log)) {
			return "", fmt.Errorf("%s: a checkpoint of log %.80q, not of a %s log: %w", label, c.Origin, log, evidence.ErrCheckpoint)
		}
		v.Origin = c.Origin
		return c.Origin, nil
	}
	switch {
	case o.Checkpoint != nil:
		label := filepath.Join(filepath.Dir(path), CheckpointFileOf(log))
		org, err := origin(o.Checkpoint, label)
		if err != nil {
			return v, err
		}
		c, cosigned, err := CheckCheckpoint(o.Checkpoint, label, org, ring, signers, t, o.Witnesses...)
		if err != nil {
			return v, err
		}
		v.CheckpointSize, v.Cosigned = c.Size, cosigned
		if c.Size < t.Size() {
			v.Notes = append(v.Notes, fmt.Sprintf("the newest checkpoint signs %d of the %d lines (an append was interrupted before its checkpoint; the next append signs one)", c.Size, t.Size()))
		}
		for _, w := range o.Witnesses {
			found := false
			for _, n := range cosigned {
				found = found || n == w.Name()
			}
			if !found {
				return v, fmt.Errorf("%s: not cosigned by witness %s: the witness never accepted this state of the log: %w", label, w.Name(), evidence.ErrCheckpoint)
			}
		}
	case o.ChainOnly && (o.Held != nil || len(o.Witnesses) > 0):
		return v, fmt.Errorf("%s keeps no checkpoints (not a register log): --checkpoint and --witness-key do not apply", path)
	case o.ChainOnly:
		return v, nil
	case t.Size() > 0:
		v.Notes = append(v.Notes, "no checkpoint beside the log (a log written before kluis signed register checkpoints: the next append signs one)")
	}
	if o.Held != nil {
		label := "checkpoint " + o.HeldName
		org, err := origin(o.Held, label)
		if err != nil {
			return v, err
		}
		c, _, err := CheckCheckpoint(o.Held, label, org, ring, signers, t)
		if err != nil {
			return v, err
		}
		v.HeldSize = c.Size
		v.Notes = append(v.Notes, fmt.Sprintf("%s: the log of %d lines it signs is a prefix of this one (consistency proof verified): nothing up to line %d changed since", label, c.Size, c.Size))
	}
	return v, nil
}
