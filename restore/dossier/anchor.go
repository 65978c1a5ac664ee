package dossier

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/evidence/chain"
)

// Log names a register record refers to.
const (
	LogNameErasures = "erasures"
	LogNameAccess   = "access"
)

// FileOf returns the state_dir file name of a log.
func FileOf(log string) string {
	if log == LogNameAccess {
		return AccessLogFileName
	}
	return ErasureFileName
}

// ErrUnanchored is wrapped when a local log is missing, shorter than, or
// different from what its anchors in a repository say it held.
var ErrUnanchored = errors.New("log does not match its anchor in the repository")

// Record is one register record, sealed into the repository of the tenant
// a log line concerns (repo.PutRegisterRecord) at every location at each
// append (docs/format.md, "Register records"). It is at once the encrypted
// replica of the line and an anchor of the whole log: Count is the log's
// length and Head the hash of its last line right after the append. A
// later log shape (a Merkle tree, with Head its root) keeps the same
// record: Line stays the leaf, Count the tree size.
type Record struct {
	Version int    `json:"v"`
	Log     string `json:"log"`
	Count   uint64 `json:"count"`
	Head    string `json:"head"`
	Line    string `json:"line"`
}

// NewRecord is the record of e, just appended to log with key.
func NewRecord(log string, key ed25519.PrivateKey, e chain.Entry) (Record, []byte, error) {
	raw, err := chain.Sign(key, e)
	if err != nil {
		return Record{}, nil, err
	}
	r := Record{Version: 1, Log: log, Count: e.Seq, Head: chain.Hash(raw), Line: string(raw)}
	b, err := json.Marshal(r)
	return r, b, err
}

// ParseRecord decodes a record strictly and checks that it is consistent:
// a known log, its line signed by pub, the line's seq equal to Count and
// its hash equal to Head.
func ParseRecord(b []byte, pub ed25519.PublicKey) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("register record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("register record: trailing data")
	}
	if r.Version != 1 || (r.Log != LogNameErasures && r.Log != LogNameAccess) {
		return Record{}, fmt.Errorf("register record: version %d log %q unknown", r.Version, r.Log)
	}
	l, err := chain.ParseLine([]byte(r.Line))
	if err != nil {
		return Record{}, fmt.Errorf("register record: %w", err)
	}
	if !l.Verify(pub) {
		return Record{}, errors.New("register record: the line is not signed by this appliance's key")
	}
	if l.Entry.Seq != r.Count || chain.Hash(l.Raw) != r.Head {
		return Record{}, errors.New("register record: count or head does not match its line")
	}
	return r, nil
}

// CheckAnchored verifies both logs in stateDir with pub and checks them
// against records: each log must hold, at position Count, exactly the line
// a record anchored. A deleted, truncated, rolled back or replaced log
// fails with ErrUnanchored, naming what is missing; `kluis erasure
// recover` rebuilds it from the repositories.
func CheckAnchored(stateDir string, pub ed25519.PublicKey, recs []Record) error {
	byLog := map[string][]Record{}
	for _, r := range recs {
		byLog[r.Log] = append(byLog[r.Log], r)
	}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		path := filepath.Join(stateDir, FileOf(log))
		head, err := chain.VerifyFile(path, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rs := byLog[log]
		if len(rs) == 0 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Count < rs[j].Count })
		if last := rs[len(rs)-1]; last.Count > head.Count {
			return fmt.Errorf("%s holds %d records but the repository anchored record %d of it: the log was deleted, truncated or rolled back (run kluis erasure recover): %w", path, head.Count, last.Count, ErrUnanchored)
		}
		lines, err := rawLines(path)
		if err != nil {
			return err
		}
		if uint64(len(lines)) < rs[len(rs)-1].Count {
			return fmt.Errorf("%s changed while it was checked: %w", path, ErrUnanchored)
		}
		for _, r := range rs {
			if chain.Hash(lines[r.Count-1]) != r.Head {
				return fmt.Errorf("%s: record %d differs from the one the repository anchored (the log was replaced): %w", path, r.Count, ErrUnanchored)
			}
		}
	}
	return nil
}

// rawLines returns the lines of a verified log without their LF.
func rawLines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) == 0 {
		return nil, nil
	}
	return bytes.Split(b, []byte("\n")), nil
}

// Rebuild writes the logs in stateDir back from records gathered from the
// repositories of every tenant: the records of a log must hold every line
// from 1 to the highest count, and the result must verify with pub. A log
// that exists locally is only replaced when it is a prefix of the rebuilt
// one (never shortened, never forked). It returns the number of lines per
// log written.
func Rebuild(stateDir string, pub ed25519.PublicKey, recs []Record) (map[string]uint64, error) {
	out := map[string]uint64{}
	byLog := map[string]map[uint64]string{}
	for _, r := range recs {
		if byLog[r.Log] == nil {
			byLog[r.Log] = map[uint64]string{}
		}
		if prev, ok := byLog[r.Log][r.Count]; ok && prev != r.Line {
			return nil, fmt.Errorf("%s: two different records numbered %d: %w", r.Log, r.Count, ErrUnanchored)
		}
		byLog[r.Log][r.Count] = r.Line
	}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		m := byLog[log]
		if len(m) == 0 {
			continue
		}
		var n uint64
		for c := range m {
			n = max(n, c)
		}
		var buf bytes.Buffer
		var missing []string
		for i := uint64(1); i <= n; i++ {
			l, ok := m[i]
			if !ok {
				missing = append(missing, fmt.Sprint(i))
				continue
			}
			buf.WriteString(l)
			buf.WriteByte('\n')
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s: records %s are in no configured tenant's repository (a removed tenant?): cannot rebuild the log", log, strings.Join(missing, ", "))
		}
		if _, err := chain.Verify(bytes.NewReader(buf.Bytes()), pub); err != nil {
			return nil, fmt.Errorf("%s: rebuilt log: %w", log, err)
		}
		path := filepath.Join(stateDir, FileOf(log))
		cur, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !bytes.HasPrefix(buf.Bytes(), cur) {
			if len(cur) > buf.Len() && bytes.HasPrefix(cur, buf.Bytes()) {
				continue // the local log is longer: nothing to recover
			}
			return nil, fmt.Errorf("%s differs from the records in the repositories: move it aside and rebuild: %w", path, ErrUnanchored)
		}
		if err := writeFileDurable(path, buf.Bytes()); err != nil {
			return nil, err
		}
		out[log] = n
	}
	return out, nil
}

// writeFileDurable replaces path with data (mode 0600): temp file, fsync,
// rename, fsync of the directory.
func writeFileDurable(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-register-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}
