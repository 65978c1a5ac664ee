package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/repo"
)

// CheckpointDir is the directory of the log's checkpoints under the
// evidence directory: NNNNNNNN.note, the checkpoint the appliance signed
// when the log had NNNNNNNN reports, written once.
const CheckpointDir = "checkpoints"

// CheckpointNoteFile and TreeFile are the log's files in an export: the
// newest checkpoint note (with any witness cosignatures) and the leaf hash
// of every report of the log up to it, one lower-case hex hash a line.
const (
	CheckpointNoteFile = "checkpoint.note"
	TreeFile           = "tree.txt"
)

// CheckpointObject is the content-addressed name of a checkpoint at a
// location: _evidence/APPLIANCE/key-KEYID/checkpoint/SHA256. A name nobody can
// squat: it is the hash of what it holds.
func CheckpointObject(appliance string, pub ed25519.PublicKey, note []byte) string {
	sum := sha256.Sum256(note)
	return LogPrefix(appliance, pub) + "checkpoint/" + hex.EncodeToString(sum[:])
}

// treeOf returns the log's tree over records (report 1 first).
func treeOf(recs []Record) (*Tree, error) {
	leaves := make([]tlog.Hash, len(recs))
	for i, r := range recs {
		if r.Seq != uint64(i)+1 {
			return nil, fmt.Errorf("evidence: the chain does not start at report 1 or has a gap at report %d", i+1)
		}
		leaves[i] = LeafHash(r)
	}
	return NewTree(leaves)
}

func (s *Store) checkpointPath(n int64) string {
	return filepath.Join(s.dir, CheckpointDir, fmt.Sprintf("%08d.note", n))
}

// signCheckpoint signs (once) the checkpoint of the first n leaves of t and
// returns it. An existing checkpoint of that size is kept; one that does
// not open with this key, or names another root, is an error: the state
// directory was tampered with.
func (s *Store) signCheckpoint(t *Tree, n int64) ([]byte, error) {
	root, err := t.Root(n)
	if err != nil {
		return nil, err
	}
	path := s.checkpointPath(n)
	if old, err := readCapped(path, maxNote); err == nil {
		c, _, err := OpenLogCheckpoint(old, s.appliance, s.pub)
		if err != nil || c.Size != n || c.Root != root {
			return nil, fmt.Errorf("evidence: %s does not match the reports (signed for another tree, or edited): investigate (kluis evidence verify)", path)
		}
		return old, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	data, err := SignLogCheckpoint(s.key, LogCheckpoint{Origin: Origin(s.appliance), Size: n, Root: root})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if err := writeOnce(filepath.Dir(path), filepath.Base(path), data); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	return data, nil
}

// Checkpoint returns the log's tree and the signed checkpoint of its
// current size, signing it first if it is missing (a chain written before
// the log existed: its reports become the first leaves).
func (s *Store) Checkpoint() (*Tree, []byte, error) {
	if err := s.usable(); err != nil {
		return nil, nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	recs, err := s.Records()
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, errors.New("evidence: no reports yet, so no checkpoint")
	}
	t, err := treeOf(recs)
	if err != nil {
		return nil, nil, err
	}
	cp, err := s.signCheckpoint(t, t.Size())
	if err != nil {
		return nil, nil, err
	}
	if cos, err := readCapped(s.cosignedPath(t.Size()), maxNote); err == nil {
		if c, _, err := OpenLogCheckpoint(cos, s.appliance, s.pub); err == nil && bytes.Equal([]byte(c.Text()), noteText(cp)) {
			cp = cos
		}
	}
	return t, cp, nil
}

func (s *Store) cosignedPath(n int64) string {
	return filepath.Join(s.dir, CheckpointDir, fmt.Sprintf("%08d.cosigned", n))
}

// noteText is the signed text of a note (up to the blank line).
func noteText(n []byte) []byte {
	i := bytes.Index(n, []byte("\n\n"))
	if i < 0 {
		return nil
	}
	return n[:i+1]
}

// treeText is the export's tree.txt: every leaf hash, hex, one a line.
func treeText(t *Tree) ([]byte, error) {
	var b bytes.Buffer
	for i := int64(0); i < t.Size(); i++ {
		h, err := t.Leaf(i)
		if err != nil {
			return nil, err
		}
		b.WriteString(hex.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// ParseTreeText decodes tree.txt (at most MaxReports lines of 64 hex
// digits). Errors wrap ErrMalformed.
func ParseTreeText(data []byte) ([]tlog.Hash, error) {
	if len(data)%65 != 0 || len(data)/65 > MaxReports {
		return nil, fmt.Errorf("%s: not lines of 64 hex digits: %w", TreeFile, ErrMalformed)
	}
	out := make([]tlog.Hash, len(data)/65)
	for i := range out {
		line := data[i*65 : i*65+65]
		if line[64] != '\n' || !isHexHash(string(line[:64])) {
			return nil, fmt.Errorf("%s line %d: not 64 lower-case hex digits: %w", TreeFile, i+1, ErrMalformed)
		}
		hex.Decode(out[i][:], line[:64])
	}
	return out, nil
}

// uploadCheckpoint puts the newest checkpoint note (cosigned if it is) at
// every location that took the reports, under its content address, and
// reads it back: a squatted or replaced object is an error in res.
func (s *Store) uploadCheckpoint(ctx context.Context, res []repo.LocationResult) {
	unlock, err := s.lock()
	if err != nil {
		return
	}
	n := int64(0)
	if names, err := s.names(); err == nil {
		n = int64(len(names))
	}
	var cp []byte
	for _, p := range []string{s.cosignedPath(n), s.checkpointPath(n)} {
		if b, err := readCapped(p, maxNote); err == nil {
			cp = b
			break
		}
	}
	unlock()
	if cp == nil {
		return
	}
	name := CheckpointObject(s.appliance, s.pub, cp)
	for i, l := range s.locs {
		if !res[i].OK {
			continue
		}
		err := l.Put(ctx, name, cp)
		if err == nil {
			var got []byte
			got, err = repo.ReadAll(ctx, l, name, maxNote)
			if err == nil && !bytes.Equal(got, cp) {
				err = fmt.Errorf("%s holds other bytes than its name's hash says: squatted or replaced (investigate)", name)
			}
		}
		if err != nil {
			res[i].OK = false
			res[i].Error = fmt.Sprintf("location %s: checkpoint: %v", l.Name(), err)
		}
	}
	if err := s.recordVersions(ctx, n, res); err != nil {
		slog.Warn("evidence: recording the version ids written", "err", err)
	}
}

// writeAtomic replaces dir/name with data durably: temp file, fsync,
// rename, fsync of the directory (derived state that may be rewritten).
func writeAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, durable.Options{TempPrefix: tmpPrefix})
}
