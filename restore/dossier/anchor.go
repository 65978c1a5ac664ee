package dossier

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/evidence"
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
// length and Head the hash of its last line right after the append, and
// (version 2) Checkpoint the appliance's signed checkpoint of the log's
// Merkle tree at that length (registerlog.go), so a location holds a
// signed tree head the local log must stay consistent with. Line is leaf
// Count-1 of that tree. Version 1 records (before the tree) have no
// checkpoint and are still read.
type Record struct {
	Version    int    `json:"v"`
	Log        string `json:"log"`
	Count      uint64 `json:"count"`
	Head       string `json:"head"`
	Line       string `json:"line"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// NewRecord is the version 1 record of e, just appended to log with key
// (no checkpoint): what kluis wrote before the register logs were Merkle
// trees.
func NewRecord(log string, key ed25519.PrivateKey, e chain.Entry) (Record, []byte, error) {
	return NewCheckpointedRecord(log, key, e, nil)
}

// NewCheckpointedRecord is the record of e, just appended to log with
// key, with cp the signed checkpoint of the log at e's length (version 2;
// nil: a version 1 record).
func NewCheckpointedRecord(log string, key ed25519.PrivateKey, e chain.Entry, cp []byte) (Record, []byte, error) {
	raw, err := chain.Sign(key, e)
	if err != nil {
		return Record{}, nil, err
	}
	r := Record{Version: 1, Log: log, Count: e.Seq, Head: chain.Hash(raw), Line: string(raw)}
	if cp != nil {
		r.Version, r.Checkpoint = 2, string(cp)
	}
	b, err := json.Marshal(r)
	return r, b, err
}

// ParseRecord decodes a record strictly and checks that it is consistent:
// a known log, its line signed by a key of ring, the line's seq equal to
// Count and its hash equal to Head, and a version 2 record's checkpoint
// signed by the line's key under the log's origin for a tree of Count
// lines. Where in its log a key may sign, and whether the checkpoint's
// root is the log's, is CheckAnchored's and Rebuild's to check
// (keyring.Ring.Verify, CheckCheckpoint).
func ParseRecord(b []byte, ring *keyring.Ring) (Record, error) {
	r, l, err := decodeRecord(b)
	if err != nil {
		return Record{}, err
	}
	k, ok := ring.Signer(l)
	if !ok {
		return Record{}, fmt.Errorf("register record: the line is %w (record %d of the %s log): it was planted, or it is the lost appliance's and its public key was not given (kluis keys recover --signing-public-key, or kluis keys previous --add)", keyring.ErrUntrusted, r.Count, r.Log)
	}
	if r.Version == 2 {
		text, _, _ := strings.Cut(r.Checkpoint, "\n\n")
		head, err := evidence.ParseCheckpointText(text + "\n")
		if err != nil || !strings.HasPrefix(head.Origin, originPrefix(r.Log)) {
			return Record{}, fmt.Errorf("register record %d of the %s log: its checkpoint is not one of this log (%v)", r.Count, r.Log, err)
		}
		c, _, err := evidence.OpenCheckpoint([]byte(r.Checkpoint), head.Origin, k)
		if err != nil || c.Size != int64(r.Count) {
			return Record{}, fmt.Errorf("register record %d of the %s log: its checkpoint is not signed by the key of its line for %d lines (forged or edited): %v", r.Count, r.Log, r.Count, err)
		}
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
	r, err := decodeRecordFields(b)
	if err != nil {
		return Record{}, chain.Line{}, err
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

// Anchored is what CheckRecords proved: the register records of a
// tenant's repository, and the local logs they anchor as LoadLog read
// and verified them (by log name), for the caller to use rather than
// read again.
type Anchored struct {
	StateDir string
	Records  []Record
	Logs     map[string]*LocalLog
}

// CheckRecords decodes raw, a repository's register records, and checks
// the logs in stateDir against them: what ParseRecords and then
// CheckAnchored check, with the same errors, loading each log once, and
// without the one check that cannot fail once the others passed: the
// signature of each record's line. A record passes only when its line is
// byte for byte (its head is the line's SHA-256) the line at position
// count of the local log, whose signature LoadLog proved (checked, or
// covered by the appliance's own checkpoint of lines it checked before).
// The checkpoint of a version 2 record must still be signed by that
// line's key for count lines (as ParseRecord requires), and name this
// appliance's log with the root of the local log's first count lines (as
// CheckAnchored requires). When anything fails, the records are given to
// ParseRecords first, so that the error says what it would (a line
// signed by no key of the ring: keyring.ErrUntrusted).
func CheckRecords(stateDir, appliance string, ring *keyring.Ring, raw [][]byte) (*Anchored, error) {
	a, err := checkRecords(stateDir, appliance, ring, raw)
	if err != nil {
		if _, perr := ParseRecords(raw, ring); perr != nil {
			return nil, perr
		}
		return nil, err
	}
	return a, nil
}

func checkRecords(stateDir, appliance string, ring *keyring.Ring, raw [][]byte) (*Anchored, error) {
	a := &Anchored{StateDir: stateDir, Records: make([]Record, 0, len(raw)), Logs: map[string]*LocalLog{}}
	for _, b := range raw {
		// The line is not parsed: checkAnchored requires it to be the
		// local line its head names, which LoadLog parsed.
		r, err := decodeRecordFields(b)
		if err != nil {
			return nil, err
		}
		if r.Count == 0 || chain.Hash([]byte(r.Line)) != r.Head {
			return nil, errors.New("register record: count or head does not match its line")
		}
		a.Records = append(a.Records, r)
	}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		l, err := LoadLog(stateDir, log, appliance, ring)
		if err != nil {
			return nil, err
		}
		a.Logs[log] = l
	}
	if err := checkAnchored(stateDir, appliance, ring, a.Records, a.Logs); err != nil {
		return nil, err
	}
	// Every record is now its log's line at count: its checkpoint must
	// be signed by the key that signed that line.
	for _, r := range a.Records {
		if r.Version < 2 {
			continue
		}
		k := a.Logs[r.Log].Signers[r.Count-1]
		seen := opened.key(k, r)
		if opened.has(seen) {
			continue
		}
		text, _, _ := strings.Cut(r.Checkpoint, "\n\n")
		head, err := evidence.ParseCheckpointText(text + "\n")
		if err != nil {
			return nil, err
		}
		c, _, err := evidence.OpenCheckpoint([]byte(r.Checkpoint), head.Origin, k)
		if err != nil || c.Size != int64(r.Count) {
			return nil, fmt.Errorf("register record %d of the %s log: its checkpoint is not signed by the key of its line for %d lines (forged or edited): %v", r.Count, r.Log, r.Count, err)
		}
		opened.add(seen)
	}
	return a, nil
}

// opened remembers, for the life of the process, the record checkpoints
// CheckRecords has verified, by the SHA-256 of the key, the record's
// count and the checkpoint's note: a dossier command checks the same records twice
// (the erasure refusal, then the append), and the daemon's portal at
// every access. Only this process's memory says so; nothing is kept on
// disk, where whoever can edit the state directory could add to it.
var opened = &openedCheckpoints{m: map[[32]byte]struct{}{}}

// ForgetOpenedCheckpoints empties the process's memory of verified
// record checkpoints: what a new process starts with (for benchmarks).
func ForgetOpenedCheckpoints() {
	opened.mu.Lock()
	defer opened.mu.Unlock()
	opened.m = map[[32]byte]struct{}{}
}

// maxOpened bounds what opened holds (keys of 32 bytes: some 15 MB
// with the map at most); when full it starts again.
const maxOpened = 1 << 18

type openedCheckpoints struct {
	mu sync.Mutex
	m  map[[32]byte]struct{}
}

func (o *openedCheckpoints) key(k ed25519.PublicKey, r Record) [32]byte {
	h := sha256.New()
	h.Write(k)
	fmt.Fprintf(h, "\n%d\n", r.Count)
	h.Write([]byte(r.Checkpoint))
	return [32]byte(h.Sum(nil))
}

func (o *openedCheckpoints) has(k [32]byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.m[k]
	return ok
}

func (o *openedCheckpoints) add(k [32]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.m) >= maxOpened {
		o.m = map[[32]byte]struct{}{}
	}
	o.m[k] = struct{}{}
}

// decodeRecordFields decodes a record strictly, without its line.
func decodeRecordFields(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("register record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("register record: trailing data")
	}
	if (r.Version != 1 && r.Version != 2) || (r.Log != LogNameErasures && r.Log != LogNameAccess) || (r.Version == 2) != (r.Checkpoint != "") {
		return Record{}, fmt.Errorf("register record: version %d log %q unknown", r.Version, r.Log)
	}
	return r, nil
}

// CheckAnchored verifies both logs in stateDir with ring (LoadLog) and checks them
// against records: each log must hold, at position Count, exactly the line
// a record anchored, and be consistent with the checkpoint a version 2
// record carries (a consistency proof from it to the log's Merkle tree,
// CheckCheckpoint; it must be appliance's). A deleted, truncated, rolled
// back or replaced log fails with ErrUnanchored, naming what is missing;
// `kluis erasure recover` rebuilds it from the repositories. A record
// signed by another key than the log's line at its position (a key the
// log was rotated away from: a holder of the lost appliance's key
// planting records) fails the same way, and says so. The newest
// checkpoint kept in stateDir must be consistent with its log too
// (ErrInconsistent).
func CheckAnchored(stateDir, appliance string, ring *keyring.Ring, recs []Record) error {
	logs := map[string]*LocalLog{}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		l, err := LoadLog(stateDir, log, appliance, ring)
		if err != nil {
			return err
		}
		logs[log] = l
	}
	return checkAnchored(stateDir, appliance, ring, recs, logs)
}

// checkAnchored is CheckAnchored of the logs loaded.
func checkAnchored(stateDir, appliance string, ring *keyring.Ring, recs []Record, logs map[string]*LocalLog) error {
	byLog := map[string][]Record{}
	for _, r := range recs {
		byLog[r.Log] = append(byLog[r.Log], r)
	}
	for _, log := range []string{LogNameErasures, LogNameAccess} {
		path := filepath.Join(stateDir, FileOf(log))
		ll := logs[log]
		lines, signers, t := ll.Raw(), ll.Signers, ll.Tree
		rs := byLog[log]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Count < rs[j].Count })
		if len(rs) > 0 {
			if last := rs[len(rs)-1]; last.Count > uint64(len(lines)) {
				return fmt.Errorf("%s holds %d records but the repository anchored record %d of it: the log was deleted, truncated or rolled back (run kluis erasure recover)%s: %w", path, len(lines), last.Count, plantedHint(last, ring), ErrUnanchored)
			}
		}
		for _, r := range rs {
			if chain.Hash(lines[r.Count-1]) != r.Head {
				return fmt.Errorf("%s: record %d differs from the one the repository anchored (the log was replaced)%s: %w", path, r.Count, plantedHint(r, ring), ErrUnanchored)
			}
		}
		origin := Origin(log, appliance)
		// The newest anchored checkpoint gets the whole check (signature
		// and consistency proof); the signatures of the others are
		// checked with their line's key, which signed the same local
		// line (by ParseRecord, or by CheckRecords after this): their
		// origin and root are compared here.
		newest := -1
		for i, r := range rs {
			if r.Version >= 2 {
				newest = i
			}
		}
		for i, r := range rs {
			if r.Version < 2 {
				continue
			}
			label := fmt.Sprintf("the checkpoint anchored with record %d of %s", r.Count, path)
			if i == newest {
				if _, _, err := CheckCheckpoint([]byte(r.Checkpoint), label, origin, ring, signers, t); err != nil {
					return fmt.Errorf("%w: %w", err, ErrUnanchored)
				}
				continue
			}
			text, _, _ := strings.Cut(r.Checkpoint, "\n\n")
			c, err := evidence.ParseCheckpointText(text + "\n")
			if err != nil {
				return fmt.Errorf("%s: %w: %w", label, err, ErrUnanchored)
			}
			if c.Origin != origin {
				return fmt.Errorf("%s: checkpoint of log %.80q, not %s: %w: %w", label, c.Origin, origin, evidence.ErrCheckpoint, ErrUnanchored)
			}
			if root, err := t.Root(c.Size); err != nil || root != c.Root {
				return fmt.Errorf("%s (a log of %d lines) is not a prefix of the log of %d lines: lines up to %d were edited, removed, inserted or reordered since, or the log was replaced: %w: %w", label, c.Size, t.Size(), c.Size, ErrInconsistent, ErrUnanchored)
			}
		}
		if cp := ll.Checkpoint; cp != nil {
			if _, _, err := CheckCheckpoint(cp, filepath.Join(stateDir, CheckpointFileOf(log)), origin, ring, signers, t); err != nil {
				return err
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

// Rebuild writes the logs in stateDir back from records gathered from the
// repositories of every tenant: the records of a log must hold every line
// from 1 to the highest count, and the result must verify with ring (a
// lost appliance's lines with its key, given as a previous key, up to the
// rotation line that follows them), and be consistent with the
// checkpoint of every version 2 record (which must be appliance's); the
// newest of them becomes the log's checkpoint in stateDir. A log that
// exists locally is only replaced when it is a prefix of the rebuilt one
// (never shortened, never forked). It returns the number of lines per log
// written.
func Rebuild(stateDir, appliance string, ring *keyring.Ring, recs []Record) (map[string]uint64, error) {
	out := map[string]uint64{}
	byLog := map[string]map[uint64]string{}
	newest := map[string]Record{}
	for _, r := range recs {
		if r.Version >= 2 && r.Count > newest[r.Log].Count {
			newest[r.Log] = r
		}
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
		if err := checkRebuilt(buf.Bytes(), log, appliance, ring, recs); err != nil {
			return nil, err
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
		if r, ok := newest[log]; ok {
			if err := WriteCheckpoint(stateDir, log, []byte(r.Checkpoint)); err != nil {
				return nil, err
			}
		}
		out[log] = n
	}
	return out, nil
}

// checkRebuilt checks a rebuilt log (verified) against the checkpoints
// of the version 2 records of it.
func checkRebuilt(data []byte, log, appliance string, ring *keyring.Ring, recs []Record) error {
	raw := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	lines := make([]chain.Line, len(raw))
	for i, r := range raw {
		var err error
		if lines[i], err = chain.ParseLine(r); err != nil {
			return err
		}
	}
	signers, err := ring.Signers(lines)
	if err != nil {
		return err
	}
	t, err := Tree(raw)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Log != log || r.Version < 2 {
			continue
		}
		if _, _, err := CheckCheckpoint([]byte(r.Checkpoint), fmt.Sprintf("%s: the checkpoint anchored with record %d", log, r.Count), Origin(log, appliance), ring, signers, t); err != nil {
			return fmt.Errorf("%w: %w", err, ErrUnanchored)
		}
	}
	return nil
}

// writeFileDurable replaces path with data (mode 0600): temp file, fsync,
// rename, fsync of the directory.
func writeFileDurable(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(path, data, durable.Options{TempPrefix: ".tmp-register-"})
}
