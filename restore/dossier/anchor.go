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
	"github.com/kluis-nl/kluis/keyring"
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
// a known log, its line signed by a key of ring, the line's seq equal to
// Count and its hash equal to Head. Where in its log a key may sign is
// CheckAnchored's and Rebuild's to check (keyring.Ring.Verify).
func ParseRecord(b []byte, ring *keyring.Ring) (Record, error) {
	r, l, err := decodeRecord(b)
	if err != nil {
		return Record{}, err
	}
	if _, ok := ring.Signer(l); !ok {
		return Record{}, fmt.Errorf("register record: the line is %w (record %d of the %s log): it was planted, or it is the lost appliance's and its public key was not given (kluis keys recover --signing-public-key, or kluis keys previous --add)", keyring.ErrUntrusted, r.Count, r.Log)
	}
	return r, nil
}

// ParseRecords decodes every record of raw (a repository's register
// records) with ParseRecord, trusting besides ring's keys the earlier keys
// that rotation lines among them, signed by a trusted key, vouch for
// (keyring.Ring.Vouched): what a replacement appliance needs to read the
// records of the appliance before the lost one.
func ParseRecords(raw [][]byte, ring *keyring.Ring) ([]Record, error) {
	var lines []chain.Line
	for _, b := range raw {
		if _, l, err := decodeRecord(b); err == nil {
			lines = append(lines, l)
		}
	}
	ring = ring.Vouched(lines)
	out := make([]Record, 0, len(raw))
	for _, b := range raw {
		r, err := ParseRecord(b, ring)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeRecord decodes a record and its line without checking a
// signature.
func decodeRecord(b []byte) (Record, chain.Line, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, chain.Line{}, fmt.Errorf("register record: %w", err)
	}
	if dec.More() {
		return Record{}, chain.Line{}, errors.New("register record: trailing data")
	}
	if r.Version != 1 || (r.Log != LogNameErasures && r.Log != LogNameAccess) {
		return Record{}, chain.Line{}, fmt.Errorf("register record: version %d log %q unknown", r.Version, r.Log)
	}
	l, err := chain.ParseLine([]byte(r.Line))
	if err != nil {
		return Record{}, chain.Line{}, fmt.Errorf("register record: %w", err)
	}
	if l.Entry.Seq != r.Count || chain.Hash(l.Raw) != r.Head {
		return Record{}, chain.Line{}, errors.New("register record: count or head does not match its line")
	}
	return r, l, nil
}

// CheckAnchored verifies both logs in stateDir with ring and checks them
// against records: each log must hold, at position Count, exactly the line
// a record anchored. A deleted, truncated, rolled back or replaced log
// fails with ErrUnanchored, naming what is missing; `kluis erasure
// recover` rebuilds it from the repositories. A record signed by another
// key than the log's line at its position (a key the log was rotated away
// from: a holder of the lost appliance's key planting records) fails the
// same way, and says so.
func CheckAnchored(stateDir string, ring *keyring.Ring, recs []Record) error {
	byLog := map[string][]Record{}
	for _, r := range recs {
		byLog[r.Log] = append(byLog[r.Log], r)
	}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		path := filepath.Join(stateDir, FileOf(log))
		head, err := ring.VerifyFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rs := byLog[log]
		if len(rs) == 0 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Count < rs[j].Count })
		if last := rs[len(rs)-1]; last.Count > head.Count {
			return fmt.Errorf("%s holds %d records but the repository anchored record %d of it: the log was deleted, truncated or rolled back (run kluis erasure recover)%s: %w", path, head.Count, last.Count, plantedHint(last, ring), ErrUnanchored)
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
				return fmt.Errorf("%s: record %d differs from the one the repository anchored (the log was replaced)%s: %w", path, r.Count, plantedHint(r, ring), ErrUnanchored)
			}
		}
	}
	return nil
}

// plantedHint explains an anchored record the local log does not hold
// when it is signed by a previous key, or by none the ring trusts.
func plantedHint(r Record, ring *keyring.Ring) string {
	l, err := chain.ParseLine([]byte(r.Line))
	if err != nil {
		return ""
	}
	k, ok := ring.Signer(l)
	switch {
	case !ok:
		return "; the record is signed by no key of this appliance's key ring: planted"
	case !k.Equal(ring.Current()):
		return fmt.Sprintf("; the record is signed by the previous key %s: if the log rotated away from that key before record %d, a holder of the lost appliance's key planted it (investigate before you rebuild)", keyring.ID(k), r.Count)
	}
	return ""
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
// from 1 to the highest count, and the result must verify with ring (a
// lost appliance's lines with its key, given as a previous key, up to the
// rotation line that follows them). A log
// that exists locally is only replaced when it is a prefix of the rebuilt
// one (never shortened, never forked). It returns the number of lines per
// log written.
func Rebuild(stateDir string, ring *keyring.Ring, recs []Record) (map[string]uint64, error) {
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
		if _, err := ring.Verify(bytes.NewReader(buf.Bytes())); err != nil {
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
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(path, data, durable.Options{TempPrefix: ".tmp-register-"})
}
