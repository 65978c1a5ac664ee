package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
)

// At a location (docs/format.md, "Evidence log") an appliance's log is
//
//	_evidence/APPLIANCE/key-KEYID/leaf/HEX(LEAF HASH)      a report, sealed (seal.go)
//	_evidence/APPLIANCE/key-KEYID/checkpoint/HEX(SHA-256)  a checkpoint note, as signed
//
// Every name is a content address, unknown before the object exists, so
// no name can be squatted in advance; a copy that is not what its name
// says is found when it is read back. Reports written before the log
// (_evidence/APPLIANCE/NNNNNNNN.json, plaintext) are left as they are.

// LogPrefix is where the log signed by key pub is at a location:
// _evidence/APPLIANCE/key-KEYID/ (KEYID: the first 16 hex digits of the
// SHA-256 of the raw public key). An appliance recovered with a new
// signing key starts a log of its own beside the old one, which stays
// untouched and verifiable with the old key.
func LogPrefix(appliance string, pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return LocationPrefix(appliance) + "key-" + hex.EncodeToString(sum[:8]) + "/"
}

// LeafObject is the name of a report's sealed copy at a location.
func LeafObject(appliance string, pub ed25519.PublicKey, leaf tlog.Hash) string {
	return LogPrefix(appliance, pub) + "leaf/" + hex.EncodeToString(leaf[:])
}

// uploadTo puts the sealed copy of every report (files: verified report
// files) the location lacks, and reads back what it put (and, when deep,
// every older copy too), opens it and compares it byte for byte with the
// state directory's: a Put of an object that exists does not replace it,
// so a differing copy is only seen by reading it. Append is shallow; Sync,
// `kluis sync`, is deep and audits the location as well (auditLocation).
func (s *Store) uploadTo(ctx context.Context, l repo.Location, files []File, deep bool) error {
	have := map[string]bool{}
	err := l.List(ctx, LogPrefix(s.appliance, s.pub)+"leaf/", func(oi repo.ObjectInfo) error {
		have[oi.Name] = true
		return nil
	})
	if err != nil {
		return err
	}
	var (
		mu     sync.Mutex
		differ []string
		first  error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, compareParallel)
	)
	compare := func(f File, name string) {
		defer wg.Done()
		defer func() { <-sem }()
		got, err := repo.ReadAll(ctx, l, name, maxSealed)
		var plain []byte
		if err == nil {
			plain, err = s.openSealed(got)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, repo.ErrCorrupt) || errors.Is(err, ErrMalformed):
			differ = append(differ, f.Name)
		case err != nil:
			if first == nil {
				first = err
			}
		case !bytes.Equal(plain, f.Data):
			differ = append(differ, f.Name)
		}
	}
	for _, f := range files {
		name := LeafObject(s.appliance, s.pub, tlog.RecordHash(bytes.TrimSuffix(f.Data, []byte("\n"))))
		if !have[name] {
			sealed, err := s.seal(f.Data)
			if err != nil {
				wg.Wait()
				return err
			}
			if err := l.Put(ctx, name, sealed); err != nil {
				wg.Wait()
				return err
			}
		} else if !deep {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go compare(f, name)
	}
	wg.Wait()
	var problems []string
	if len(differ) > 0 {
		sort.Strings(differ)
		problems = append(problems, fmt.Sprintf("the sealed copy of report %s is not the report the appliance wrote (squatted or replaced: a write-once object cannot be replaced: investigate)", strings.Join(differ, ", ")))
	}
	if first == nil && deep {
		problems = append(problems, s.auditFiles(ctx, l, files)...)
	}
	switch {
	case len(problems) == 1 && len(differ) > 0:
		return fmt.Errorf("location %s: %s", l.Name(), problems[0])
	case len(problems) > 0:
		return fmt.Errorf("location %s: the evidence log there was tampered with:\n  %s", l.Name(), strings.Join(problems, "\n  "))
	}
	return first
}

// auditFiles audits a location (auditLocation) against the tree of files,
// the state directory's reports: none for a partial set (reports that do
// not verify are held back).
func (s *Store) auditFiles(ctx context.Context, l repo.Location, files []File) []string {
	recs := make([]Record, 0, len(files))
	for _, f := range files {
		r, err := ParseRecord(f.Data)
		if err != nil {
			return []string{err.Error()}
		}
		recs = append(recs, r)
	}
	t, err := treeOf(recs)
	if err != nil {
		return nil
	}
	recorded, err := s.recordedVersions()
	if err != nil {
		return []string{err.Error()}
	}
	return s.auditLocation(ctx, l, t, recorded)
}

// maxLocationCheckpoints bounds the checkpoints an audit reads.
const maxLocationCheckpoints = 100000

// auditLocation checks what a location holds of the log against the
// appliance's tree t: every object has one data version (a second one is
// an overwrite: tampering), the one the appliance recorded after writing
// it (recorded: location → name → version id; versions.go), every checkpoint there is named by its hash,
// signed by this appliance and consistent with t (one that is not shows
// the history was rewritten, or cut back, after it was written), and
// every sealed report there is a leaf of t (one that is not belongs to
// another history). Problems are sentences, one per finding.
func (s *Store) auditLocation(ctx context.Context, l repo.Location, t *Tree, recorded map[string]map[string]string) []string {
	prefix := LogPrefix(s.appliance, s.pub)
	problems := s.auditVersions(ctx, l, recorded[l.Name()])
	leaves := map[string]bool{}
	for i := int64(0); i < t.Size(); i++ {
		h, _ := t.Leaf(i)
		leaves[LeafObject(s.appliance, s.pub, h)] = true
	}
	var cps []string
	err := l.List(ctx, prefix, func(oi repo.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Name, prefix)
		switch {
		case strings.HasPrefix(rest, "checkpoint/"):
			if len(cps) >= maxLocationCheckpoints {
				return fmt.Errorf("more than %d checkpoints", maxLocationCheckpoints)
			}
			cps = append(cps, oi.Name)
		case strings.HasPrefix(rest, "leaf/") && !leaves[oi.Name]:
			problems = append(problems, fmt.Sprintf("%s is not a report of the appliance's log: another history was written to this location (rewritten or forked)", oi.Name))
		}
		return nil
	})
	if err != nil {
		return append(problems, err.Error())
	}
	sort.Strings(cps)
	for _, name := range cps {
		data, err := repo.ReadAll(ctx, l, name, maxNote)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		sum := sha256.Sum256(data)
		if prefix+"checkpoint/"+hex.EncodeToString(sum[:]) != name {
			problems = append(problems, fmt.Sprintf("%s does not hold what its name says (squatted or replaced)", name))
			continue
		}
		c, _, err := OpenLogCheckpoint(data, s.appliance, s.pub)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s (planted by someone without this appliance's key, or signed with an earlier key)", name, reason(err)))
			continue
		}
		if c.Size > t.Size() {
			problems = append(problems, fmt.Sprintf("%s says the log had %d reports, the appliance's log has %d: reports were cut off after it was written", name, c.Size, t.Size()))
			continue
		}
		if root, _ := t.Root(c.Size); root != c.Root {
			problems = append(problems, fmt.Sprintf("%s (log of %d reports) does not match the appliance's log: the history up to report %d was rewritten after this checkpoint was written", name, c.Size, c.Size))
		}
	}
	return problems
}

// CheckLocations audits every location's copy of the log against the
// state directory's (kluis evidence check): nothing is written.
func (s *Store) CheckLocations(ctx context.Context) ([]repo.LocationResult, error) {
	recs, err := s.Records()
	if err != nil {
		return nil, err
	}
	t, err := treeOf(recs)
	if err != nil {
		return nil, err
	}
	recorded, err := s.recordedVersions()
	if err != nil {
		return nil, err
	}
	res := make([]repo.LocationResult, len(s.locs))
	for i, l := range s.locs {
		res[i] = repo.LocationResult{Location: l.Name(), OK: true}
		if p := s.auditLocation(ctx, l, t, recorded); len(p) > 0 {
			res[i] = repo.LocationResult{Location: l.Name(), Error: fmt.Sprintf("location %s: the evidence log there was tampered with:\n  %s", l.Name(), strings.Join(p, "\n  "))}
		}
	}
	return res, nil
}

// SealIdentity is the age identity that opens this appliance's sealed
// location copies (derived from its signing key).
func (s *Store) SealIdentity() (age.Identity, error) { return newSealKey(s.key) }

// maxLocationReports bounds the reports ReadLocation reads.
const maxLocationReports = MaxReports

// ReadLocation reads an appliance's log (signed by pub) at a location: every sealed report
// that one of ids opens, as a report file named by its number (for
// Verify), and every checkpoint note. A sealed copy no identity opens is
// an error (wrong identity, or not a sealed report).
func ReadLocation(ctx context.Context, l repo.Location, appliance string, pub ed25519.PublicKey, ids ...age.Identity) ([]File, []File, error) {
	files, notes, unopened, err := readLocation(ctx, l, appliance, pub, ids)
	if err == nil && len(unopened) > 0 {
		err = unopened[0].err
	}
	if err != nil {
		return nil, nil, err
	}
	return files, notes, nil
}

// unopenedLeaf is a sealed copy no identity opened.
type unopenedLeaf struct {
	name string
	err  error
}

// readLocation is ReadLocation that lists the sealed copies no identity
// opens instead of failing on the first.
func readLocation(ctx context.Context, l repo.Location, appliance string, pub ed25519.PublicKey, ids []age.Identity) ([]File, []File, []unopenedLeaf, error) {
	prefix := LogPrefix(appliance, pub)
	var leaves, cps []string
	err := l.List(ctx, prefix, func(oi repo.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Name, prefix)
		switch {
		case strings.HasPrefix(rest, "leaf/"):
			leaves = append(leaves, oi.Name)
		case strings.HasPrefix(rest, "checkpoint/"):
			cps = append(cps, oi.Name)
		}
		if len(leaves)+len(cps) > maxLocationReports+maxLocationCheckpoints {
			return errors.New("too many objects")
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	sort.Strings(leaves)
	sort.Strings(cps)
	var (
		files    []File
		unopened []unopenedLeaf
	)
	for _, name := range leaves {
		data, err := repo.ReadAll(ctx, l, name, maxSealed)
		if errors.Is(err, repo.ErrCorrupt) { // larger than any sealed report
			unopened = append(unopened, unopenedLeaf{name, fmt.Errorf("%s: %w", name, err)})
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		plain, err := OpenSealed(data, ids...)
		if err != nil {
			unopened = append(unopened, unopenedLeaf{name, fmt.Errorf("%s: %w", name, err)})
			continue
		}
		fname := path.Base(name) + ".json"
		if r, err := ParseRecord(plain); err == nil {
			fname = FileName(r.Seq)
			if FileName(r.Seq) == "" || LeafObject(appliance, pub, LeafHash(r)) != name {
				fname = path.Base(name) + ".misnamed.json"
			}
		}
		files = append(files, File{Name: fname, Data: plain})
	}
	var notes []File
	for _, name := range cps {
		data, err := repo.ReadAll(ctx, l, name, maxNote)
		if err != nil {
			return nil, nil, nil, err
		}
		notes = append(notes, File{Name: name, Data: data})
	}
	return files, notes, unopened, nil
}

// VerifyLocationCopy verifies an appliance's log as a location holds it
// (the bucket itself, or a download of it opened as a location): the
// sealed reports, opened with ids (the auditor's age identity), are
// verified as an export is, against the largest checkpoint there, with
// the tree computed from the reports; every checkpoint there must be named
// by its hash and be consistent with that tree. A copy after a rewrite
// fails: rewritten reports no longer match their names, and the old
// checkpoints contradict the new history (or, with opts.Checkpoint, the
// auditor's kept checkpoint does).
func VerifyLocationCopy(ctx context.Context, l repo.Location, appliance string, pub ed25519.PublicKey, ids []age.Identity, opts VerifyOptions) (*Verification, error) {
	files, notes, unopened, err := readLocation(ctx, l, appliance, pub, ids)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 && len(unopened) > 0 {
		return nil, fmt.Errorf("no sealed report there opens with the identity given (not the auditor's, or not sealed to it): %w", unopened[0].err)
	}
	bad, err := locationVersionProblems(ctx, l, LogPrefix(appliance, pub))
	if err != nil {
		return nil, err
	}
	for _, u := range unopened {
		bad = append(bad, Problem{Kind: Rewritten, File: u.name, Reason: "the identity given opens the other sealed reports but not this one: it was replaced by something that is not a sealed report of this appliance (a new version PUT over it), or planted"})
	}
	var (
		recs []Record
		kept []File
	)
	for _, f := range files {
		if leaf, ok := strings.CutSuffix(f.Name, ".misnamed.json"); ok {
			bad = append(bad, Problem{Kind: Rewritten, File: LogPrefix(appliance, pub) + "leaf/" + leaf, Reason: "the sealed report holds another report than its name (its leaf hash) says: replaced (a new version PUT over it) or squatted"})
			continue
		}
		kept = append(kept, f)
	}
	files = kept
	for _, f := range files {
		if r, err := ParseRecord(f.Data); err == nil && FileName(r.Seq) == f.Name && r.line.Verify(pub) {
			recs = append(recs, r)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	// The tree of the chain from report 1 as far as it goes unbroken: of
	// two reports with one number (a fork planted beside a genuine one)
	// the one that links to its predecessor.
	var (
		leaves []tlog.Hash
		prev   = chain.ZeroHash
	)
	for i := 0; i < len(recs); {
		want := uint64(len(leaves)) + 1
		if recs[i].Seq != want {
			break
		}
		var next *Record
		for ; i < len(recs) && recs[i].Seq == want; i++ {
			if next == nil && recs[i].Prev == prev {
				next = &recs[i]
			}
		}
		if next == nil {
			break
		}
		leaves = append(leaves, LeafHash(*next))
		prev = next.Hash
	}
	var (
		best     []byte
		bestSize int64 = -1
	)
	t, err := NewTree(leaves)
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		sum := sha256.Sum256(n.Data)
		if path.Base(n.Name) != hex.EncodeToString(sum[:]) {
			bad = append(bad, Problem{Kind: Rewritten, File: n.Name, Reason: "the checkpoint object does not hold what its name says: replaced (a new version PUT over it) or squatted"})
			continue
		}
		c, _, err := OpenLogCheckpoint(n.Data, appliance, pub, opts.Witnesses...)
		if err != nil {
			bad = append(bad, Problem{Kind: BadCheckpoint, File: n.Name, Reason: reason(err)})
			continue
		}
		if c.Size > bestSize || c.Size == bestSize && len(n.Data) > len(best) { // the most cosigned
			best, bestSize = n.Data, c.Size
		}
		if c.Size > t.Size() {
			continue // reported by the largest checkpoint's check
		}
		if root, _ := t.Root(c.Size); root != c.Root {
			bad = append(bad, Problem{Kind: Rewritten, File: n.Name, Reason: fmt.Sprintf("this checkpoint (log of %d reports) contradicts the reports at the location: the history up to report %d was rewritten after it was written", c.Size, c.Size)})
		}
	}
	var maxSeq, firstSeq uint64
	if len(recs) > 0 {
		firstSeq, maxSeq = recs[0].Seq, recs[len(recs)-1].Seq
	}
	// The log at a location is checked against its largest checkpoint
	// when the reports there make its tree; reports after it are noted
	// (their checkpoint's upload is pending or was interrupted).
	checkable := best != nil && bestSize <= t.Size()
	if checkable {
		files = append(files, File{Name: CheckpointNoteFile, Data: best})
		sub, _ := NewTree(leaves[:bestSize])
		txt, _ := treeText(sub)
		files = append(files, File{Name: TreeFile, Data: txt})
		opts.pendingAfterLog = true
	}
	opts.RequireLog = false // a location has no export checkpoint; a missing log checkpoint is reported below
	if opts.Appliance == "" {
		opts.Appliance = appliance
	}
	v := Verify(files, pub, opts)
	if firstSeq > 1 {
		v.problem(Removed, 1, "", "the location's log starts at report %d: %s removed (every location holds the log from report 1)", firstSeq, span(1, firstSeq-1))
	}
	switch {
	case best == nil:
		v.problem(Removed, 0, "", "no checkpoint of this key at the location: it cannot show what was cut off or rewritten")
	case !checkable && uint64(bestSize) > maxSeq:
		v.problem(Truncated, maxSeq+1, "", "the largest checkpoint at the location names a log of %d reports, but the newest report there is report %d: %s removed", bestSize, maxSeq, span(maxSeq+1, uint64(bestSize)))
	}
	if best != nil && !checkable {
		v.note("the largest checkpoint at the location (log of %d reports) cannot be checked report by report: reports of it are missing there", bestSize)
		if opts.Checkpoint != nil {
			v.note("checkpoint %s cannot be checked: reports are missing at the location", opts.CheckpointName)
		}
	}
	v.Problems = append(v.Problems, bad...)
	return v, nil
}
