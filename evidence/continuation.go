package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kluis-nl/kluis/keyring"
	"github.com/kluis-nl/kluis/repo"
)

// A continuation (docs/format.md, "Evidence continuation") links the log
// of an appliance recovered with a new signing key to the log of the lost
// one: a record of the new log (a leaf like a report, signed by the new
// key) whose body names the previous log's origin, key and the last
// checkpoint of it found at the locations, that checkpoint note included
// verbatim (signed by the previous key). An export spanning both carries
// the previous log in previous-KEYID/; a verifier given the previous key
// checks that the log there has exactly that checkpoint
// (CheckContinuations).

// ContinuationSchema is the schema of a continuation record's body.
const ContinuationSchema = "kluis-evidence-continuation/v1"

// Continuation is the body of a continuation record.
type Continuation struct {
	Schema    string `json:"schema"`
	Appliance string `json:"appliance"`
	// PreviousOrigin and PreviousKey (keyring.ID) name the previous log;
	// PreviousPublicKey is its key (standard base64 of the raw key).
	PreviousOrigin    string `json:"previous_origin"`
	PreviousKey       string `json:"previous_key"`
	PreviousPublicKey string `json:"previous_public_key"`
	// PreviousSize and PreviousRoot (base64, as in a checkpoint) are the
	// previous log's last checkpoint the new appliance found at the
	// locations; PreviousCheckpoint is that note as the previous key signed it.
	PreviousSize       int64  `json:"previous_size"`
	PreviousRoot       string `json:"previous_root"`
	PreviousCheckpoint string `json:"previous_checkpoint"`
}

// PreviousDirName is the directory, under the evidence directory, that
// holds the imported logs of previous keys (previous/KEYID/), and the
// prefix of their directories in an export (previous-KEYID/).
const (
	PreviousDirName    = "previous"
	PreviousExportDir  = "previous-"
	maxContinuationLen = maxNote + 4<<10
)

// decodeContinuation decodes a continuation body strictly and checks it
// is consistent: its checkpoint note opens with its previous key under the
// appliance's origin and says its size and root. Errors wrap ErrMalformed.
func decodeContinuation(body []byte) (Continuation, ed25519.PublicKey, error) {
	var c Continuation
	if len(body) > maxContinuationLen {
		return c, nil, fmt.Errorf("continuation: too large: %w", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return c, nil, fmt.Errorf("continuation: does not decode: %w", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(c.PreviousPublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return c, nil, fmt.Errorf("continuation: previous_public_key is not an Ed25519 key: %w", ErrMalformed)
	}
	prev := ed25519.PublicKey(raw)
	if c.Schema != ContinuationSchema || !applianceRE.MatchString(c.Appliance) || keyring.ID(prev) != c.PreviousKey || c.PreviousOrigin != Origin(c.Appliance) {
		return c, nil, fmt.Errorf("continuation: schema, appliance, origin or key id inconsistent: %w", ErrMalformed)
	}
	cp, _, err := OpenLogCheckpoint([]byte(c.PreviousCheckpoint), c.Appliance, prev)
	if err != nil {
		return c, nil, fmt.Errorf("continuation: its checkpoint of the previous log: %s: %w", reason(err), ErrMalformed)
	}
	if cp.Size != c.PreviousSize || base64.StdEncoding.EncodeToString(cp.Root[:]) != c.PreviousRoot || cp.Size == 0 {
		return c, nil, fmt.Errorf("continuation: names a size or root its checkpoint does not say: %w", ErrMalformed)
	}
	return c, prev, nil
}

// Continuation returns the record's continuation, if it is one.
func (r Record) Continuation() (*Continuation, bool) {
	if r.Report.Schema != ContinuationSchema {
		return nil, false
	}
	c, _, err := decodeContinuation(r.line.Entry.Body)
	if err != nil {
		return nil, false
	}
	return &c, true
}

// IsContinuation reports whether the record is a continuation, not a
// restore-test report.
func (r Record) IsContinuation() bool { return r.Report.Schema == ContinuationSchema }

// Reports returns the records that are restore-test reports.
func Reports(recs []Record) []Record {
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		if !r.IsContinuation() {
			out = append(out, r)
		}
	}
	return out
}

// PreviousDir is where the imported logs of previous keys are.
func (s *Store) PreviousDir() string { return filepath.Join(s.dir, PreviousDirName) }

// ContinueOptions are the inputs of Continue.
type ContinueOptions struct {
	// Previous is the lost appliance's public key (a previous key of the
	// key ring).
	Previous ed25519.PublicKey
	// Identities open the previous log's sealed reports at the locations:
	// the offline recovery identity (or the auditor's).
	Identities []age.Identity
	// AllowUnreachable continues although a location cannot be read.
	AllowUnreachable bool
}

// ContinueResult says what Continue did.
type ContinueResult struct {
	PreviousKey  string                `json:"previous_key"`
	PreviousSize int64                 `json:"previous_size"`
	PreviousRoot string                `json:"previous_root"`
	Seq          uint64                `json:"seq"`
	Already      bool                  `json:"already"`
	Locations    []repo.LocationResult `json:"locations,omitempty"`
	Notes        []string              `json:"notes"`
}

// previousLog is a previous log as one location holds it, verified.
type previousLog struct {
	loc  string
	note []byte
	cp   LogCheckpoint
	recs []Record // 1..cp.Size
}

// Continue links this appliance's log to the log of a previous key: it
// reads that log at every location (opening its sealed reports with
// o.Identities), verifies each copy against its own checkpoints and the
// copies against each other, imports the longest checkpointed log into
// STATE/evidence/previous/KEYID/ (for exports) and appends a continuation
// record signed by the current key naming that checkpoint. It refuses,
// writing nothing, when a copy was tampered with, the copies disagree, a
// location cannot be read (unless AllowUnreachable) or no location holds
// the previous log. Run once more, it reports the continuation already
// there.
func (s *Store) Continue(ctx context.Context, o ContinueOptions) (*ContinueResult, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(o.Previous) != ed25519.PublicKeySize || o.Previous.Equal(s.pub) {
		return nil, errors.New("evidence: the previous key must be another Ed25519 key than this appliance's")
	}
	id := keyring.ID(o.Previous)
	res := &ContinueResult{PreviousKey: id, Notes: []string{}}
	recs, err := s.Records()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if c, ok := r.Continuation(); ok && c.PreviousKey == id {
			res.Already, res.Seq, res.PreviousSize, res.PreviousRoot = true, r.Seq, c.PreviousSize, c.PreviousRoot
			return res, nil
		}
	}
	var logs []previousLog
	for _, l := range s.locs {
		pl, found, err := readPreviousLog(ctx, l, s.appliance, o.Previous, o.Identities)
		switch {
		case err != nil && o.AllowUnreachable && !errors.Is(err, errTampered):
			res.Notes = append(res.Notes, fmt.Sprintf("location %s not read (--allow-unreachable): %v", l.Name(), err))
		case err != nil:
			return nil, fmt.Errorf("evidence: the log of key %s at location %s: %w", id, l.Name(), err)
		case !found:
			res.Notes = append(res.Notes, fmt.Sprintf("location %s holds no log of key %s", l.Name(), id))
		default:
			logs = append(logs, pl)
			if n := len(pl.recs); int64(n) < pl.cp.Size {
				res.Notes = append(res.Notes, fmt.Sprintf("location %s: %d reports", l.Name(), n))
			}
		}
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("evidence: no location holds a checkpointed log of key %s of appliance %s: nothing to continue (is it the lost appliance's key? its log is under %s)", id, s.appliance, LogPrefix(s.appliance, o.Previous))
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].cp.Size > logs[j].cp.Size })
	best := logs[0]
	leaves := make([]tlog.Hash, len(best.recs))
	for i, r := range best.recs {
		leaves[i] = LeafHash(r)
	}
	t, err := NewTree(leaves)
	if err != nil {
		return nil, err
	}
	for _, pl := range logs[1:] {
		if root, err := t.Root(pl.cp.Size); err != nil || root != pl.cp.Root {
			return nil, fmt.Errorf("evidence: the log of key %s at location %s (%d reports) is not a prefix of the one at %s (%d reports): the copies hold different histories (%w): investigate before continuing", id, pl.loc, pl.cp.Size, best.loc, best.cp.Size, errTampered)
		}
	}
	if err := s.importPrevious(id, o.Previous, best, t); err != nil {
		return nil, err
	}
	c := Continuation{Schema: ContinuationSchema, Appliance: s.appliance, PreviousOrigin: Origin(s.appliance), PreviousKey: id,
		PreviousPublicKey: base64.StdEncoding.EncodeToString(o.Previous), PreviousSize: best.cp.Size,
		PreviousRoot: base64.StdEncoding.EncodeToString(best.cp.Root[:]), PreviousCheckpoint: string(best.note)}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := decodeContinuation(body); err != nil {
		return nil, err
	}
	rec, err := s.appendLocal(body)
	if err != nil {
		return nil, err
	}
	res.Seq, res.PreviousSize, res.PreviousRoot = rec.Seq, c.PreviousSize, c.PreviousRoot
	res.Locations = s.afterAppend(ctx)
	return res, nil
}

// errTampered marks a previous log whose copy at a location does not verify.
var errTampered = errors.New("the copy was tampered with")

// readPreviousLog reads and verifies a previous key's log at l: the
// reports up to its largest checkpoint, and that checkpoint. found is
// false when l holds nothing of it.
func readPreviousLog(ctx context.Context, l repo.Location, appliance string, pub ed25519.PublicKey, ids []age.Identity) (previousLog, bool, error) {
	files, notes, err := ReadLocation(ctx, l, appliance, pub, ids...)
	if err != nil {
		return previousLog{}, false, err
	}
	if len(files) == 0 && len(notes) == 0 {
		return previousLog{}, false, nil
	}
	v, err := VerifyLocationCopy(ctx, l, appliance, pub, ids, VerifyOptions{})
	if err != nil {
		return previousLog{}, false, err
	}
	var problems []string
	for _, p := range v.Problems {
		// Reports after the last checkpoint (the lost appliance died
		// before uploading it) are not continued, not tampering.
		if p.Kind == Inserted && p.Seq > v.LogSize {
			continue
		}
		problems = append(problems, p.String())
	}
	if len(problems) > 0 || v.LogSize == 0 {
		if v.LogSize == 0 {
			problems = append(problems, "no checkpoint of the key")
		}
		return previousLog{}, false, fmt.Errorf("%w:\n  %s", errTampered, strings.Join(problems, "\n  "))
	}
	pl := previousLog{loc: l.Name()}
	for _, n := range notes {
		c, _, err := OpenLogCheckpoint(n.Data, appliance, pub)
		if err == nil && uint64(c.Size) == v.LogSize && c.Root.String() == v.LogRoot && len(n.Data) > len(pl.note) {
			pl.note, pl.cp = n.Data, c
		}
	}
	for _, r := range v.Records {
		if r.Seq <= v.LogSize {
			pl.recs = append(pl.recs, r)
		}
	}
	if pl.note == nil || int64(len(pl.recs)) != pl.cp.Size {
		return previousLog{}, false, fmt.Errorf("%w: the reports up to the checkpoint of %d reports are not all there", errTampered, v.LogSize)
	}
	return pl, true, nil
}

// importPrevious writes the previous log (reports 1..size, its checkpoint
// note, tree.txt and public key) to STATE/evidence/previous/KEYID/, write-
// once; an existing import must verify and end at the same checkpoint.
func (s *Store) importPrevious(id string, pub ed25519.PublicKey, pl previousLog, t *Tree) error {
	dir := filepath.Join(s.PreviousDir(), id)
	if _, err := os.Stat(dir); err == nil {
		v, err := VerifyDir(dir, pub, VerifyOptions{Appliance: s.appliance, RequireLog: true})
		if err != nil || !v.OK() || v.LogSize != uint64(pl.cp.Size) || v.LogRoot != pl.cp.Root.String() {
			return fmt.Errorf("evidence: %s holds another import of the log of key %s: move it aside and continue again", dir, id)
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	pemKey, err := repo.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	tree, err := treeText(t)
	if err != nil {
		return err
	}
	files := []File{{PublicKeyFile, pemKey}, {CheckpointNoteFile, pl.note}, {TreeFile, tree}}
	for _, r := range pl.recs {
		files = append(files, File{FileName(r.Seq), r.Raw})
	}
	for _, f := range files {
		if err := writeOnce(tmp, f.Name, f.Data); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	v, err := VerifyDir(tmp, pub, VerifyOptions{Appliance: s.appliance, RequireLog: true})
	if err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return fmt.Errorf("evidence: the imported log of key %s: %w", id, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// Continuation is a problem kind: a continuation record whose link to the
// previous log does not hold, or cannot be checked.
const ContinuationProblem = "continuation"

// CheckContinuations checks, for every continuation record among v's
// records (an export verified from dir), the link to the previous log: the
// key given for it (previous: the auditor's copies of earlier keys of the
// appliance), the previous log carried in dir/previous-KEYID/ verified
// with that key, and its checkpoint equal to the one the continuation
// names. held, when it opens with a previous key, is an auditor's kept
// checkpoint of that previous log (a consistency proof is checked there).
// Problems and notes are added to v, file names prefixed with the
// subdirectory. It returns true when held was used.
func CheckContinuations(dir string, v *Verification, previous []ed25519.PublicKey, held []byte, heldName string) bool {
	quietSubdirs(v)
	used := false
	for _, r := range v.Records {
		if !r.IsContinuation() {
			continue
		}
		c, prevEmbedded, err := decodeContinuation(r.line.Entry.Body)
		if err != nil {
			v.problem(ContinuationProblem, r.Seq, "", "%s", reason(err))
			continue
		}
		var prev ed25519.PublicKey
		for _, p := range previous {
			if p.Equal(prevEmbedded) {
				prev = p
			}
		}
		if prev == nil {
			v.problem(ContinuationProblem, r.Seq, "", "report %d continues the log of key %s (%d reports); give that key (the lost appliance's public key you hold) with --previous-key to check the link", r.Seq, c.PreviousKey, c.PreviousSize)
			continue
		}
		sub := filepath.Join(dir, PreviousExportDir+c.PreviousKey)
		opts := VerifyOptions{Appliance: c.Appliance, RequireLog: true}
		if held != nil {
			if _, _, err := OpenLogCheckpoint(held, c.Appliance, prev); err == nil {
				opts.Checkpoint, opts.CheckpointName, used = held, heldName, true
			}
		}
		sv, err := VerifyDir(sub, prev, opts)
		if err != nil {
			v.problem(ContinuationProblem, r.Seq, "", "report %d continues the log of key %s, but the export does not carry that log (%s): %s", r.Seq, c.PreviousKey, PreviousExportDir+c.PreviousKey, reason(err))
			continue
		}
		for _, p := range sv.Problems {
			if p.File != "" {
				p.File = PreviousExportDir + c.PreviousKey + "/" + p.File
			} else if p.Seq > 0 {
				p.File = PreviousExportDir + c.PreviousKey + "/" + FileName(p.Seq)
			}
			p.Seq = 0
			v.Problems = append(v.Problems, p)
		}
		linked := sv.LogSize == uint64(c.PreviousSize) && sv.LogRoot == logRootString(c.PreviousRoot)
		for _, n := range sv.Notes {
			// The previous log carries no checkpoint.json of its own; when
			// the continuation (signed by the export's key) names its
			// log's size and root and they match, that binds both ends,
			// so the note that nothing shows a cut would mislead.
			if linked && strings.HasPrefix(n, "no "+CheckpointFile+":") {
				continue
			}
			v.note("%s: %s", PreviousExportDir+c.PreviousKey, n)
		}
		if !linked {
			v.problem(ContinuationProblem, r.Seq, "", "report %d continues the log of key %s at a checkpoint of %d reports (root %s), which the previous log carried here does not have (its checkpoint: %d reports, root %s): a forged continuation, or the wrong previous log", r.Seq, c.PreviousKey, c.PreviousSize, c.PreviousRoot, sv.LogSize, sv.LogRoot)
			continue
		}
		if sv.OK() {
			v.note("report %d continues the log of key %s (appliance %s, %d reports, root %s): that log is carried in %s and verifies with the previous key given; the link holds, and the continuation's size and root show that nothing of that log was cut off", r.Seq, c.PreviousKey, c.Appliance, c.PreviousSize, sv.LogRoot, PreviousExportDir+c.PreviousKey)
		}
	}
	return used
}

// logRootString turns a base64 root into the form Verification.LogRoot
// uses (tlog.Hash.String).
func logRootString(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != tlog.HashSize {
		return ""
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h.String()
}

// SignedByPrevious reports whether a checkpoint note (an auditor's kept
// checkpoint.note) is signed by one of previous under its own origin: a
// checkpoint of a previous key's log, which CheckContinuations checks.
func SignedByPrevious(data []byte, previous []ed25519.PublicKey) bool {
	text := noteText(data)
	if text == nil {
		return false
	}
	c, err := ParseCheckpointText(string(text))
	if err != nil {
		return false
	}
	app, ok := strings.CutPrefix(c.Origin, "kluis-evidence/")
	if !ok {
		return false
	}
	for _, p := range previous {
		if _, _, err := OpenLogCheckpoint(data, app, p); err == nil {
			return true
		}
	}
	return false
}
