package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
)

// Problem kinds: what a verifier concluded was done to the evidence.
const (
	// Edited: a report's signature does not verify and the next report no
	// longer links to it: its bytes changed after it was signed.
	Edited = "edited"
	// Forged: a report's signature does not verify although the chain
	// around it links: it was signed by another key.
	Forged = "forged"
	// Removed: reports are missing between two others, or from the start
	// of an export (its checkpoint names the first report).
	Removed = "removed"
	// Reordered: a file holds another report than its name says, or a
	// report links back to a later one.
	Reordered = "reordered"
	// Inserted: a copy of a report, a second report with the same number,
	// a report that does not link to its predecessor, one of another
	// appliance, or reports outside the first and last report the export's
	// checkpoint names.
	Inserted = "inserted"
	// Truncated: a checkpoint names more reports than there are.
	Truncated = "truncated"
	// Rewritten: a report a checkpoint names has another hash than the
	// checkpoint says.
	Rewritten = "rewritten"
	// Malformed: a file is not a report (or checkpoint) at all.
	Malformed = "malformed"
	// UnknownSchema: a validly signed report of a schema this version
	// cannot read.
	UnknownSchema = "unknown-schema"
	// BadCheckpoint: a checkpoint that cannot be used: malformed, not
	// signed by the key, of another appliance, or naming a report outside
	// the reports verified.
	BadCheckpoint = "checkpoint"
)

// Problem is one thing wrong with a set of reports.
type Problem struct {
	Kind string `json:"kind"`
	// Seq is the report the problem is about (0: the set as a whole).
	Seq uint64 `json:"seq,omitempty"`
	// File is the file the problem was found in, if one.
	File   string `json:"file,omitempty"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	where := p.File
	if where == "" && p.Seq > 0 {
		where = FileName(p.Seq)
	}
	if where != "" {
		where += ": "
	}
	return fmt.Sprintf("%s%s: %s", where, strings.ToUpper(p.Kind), p.Reason)
}

// Verification is what Verify found.
type Verification struct {
	// Appliance is the appliance the reports belong to.
	Appliance string `json:"appliance"`
	// PublicKey is the fingerprint of the key verified with.
	PublicKey string `json:"public_key"`
	// Reports counts the report files read; First and Last are the lowest
	// and highest report numbers among them, Head the hash of Last.
	Reports int    `json:"reports"`
	First   uint64 `json:"first"`
	Last    uint64 `json:"last"`
	Head    string `json:"head,omitempty"`
	// LogSize and LogRoot are the size and root hash of the signed log
	// checkpoint (checkpoint.note), Cosigned the witnesses that cosigned
	// it (0, "", none: no log checkpoint).
	LogSize  uint64   `json:"log_size,omitempty"`
	LogRoot  string   `json:"log_root,omitempty"`
	Cosigned []string `json:"cosigned,omitempty"`
	// Problems is every sign of tampering found: empty when the reports
	// verify.
	Problems []Problem `json:"problems"`
	// Notes say what was checked and what could not be (not failures).
	Notes []string `json:"notes"`
	// Records are the reports whose signatures verified, in seq order.
	Records []Record `json:"-"`
}

// OK reports whether nothing is wrong.
func (v *Verification) OK() bool { return len(v.Problems) == 0 }

// Err returns nil when v is OK, else an error naming every problem.
func (v *Verification) Err() error {
	if v.OK() {
		return nil
	}
	var b strings.Builder
	for _, p := range v.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return fmt.Errorf("evidence does not verify:%s: %w", b.String(), chain.ErrBroken)
}

func (v *Verification) problem(kind string, seq uint64, file, format string, args ...any) {
	v.Problems = append(v.Problems, Problem{Kind: kind, Seq: seq, File: file, Reason: fmt.Sprintf(format, args...)})
}

func (v *Verification) note(format string, args ...any) {
	v.Notes = append(v.Notes, fmt.Sprintf(format, args...))
}

// File is one file of a directory to verify.
type File struct {
	Name string
	Data []byte
}

// VerifyOptions are the optional inputs of Verify.
type VerifyOptions struct {
	// Checkpoint is a checkpoint file an auditor kept from an earlier
	// export (verify --checkpoint); CheckpointName names it in messages.
	Checkpoint     []byte
	CheckpointName string
	// Appliance, when set, is the appliance the reports must belong to.
	Appliance string
	// Witnesses are the witnesses whose cosignature the log checkpoint
	// (checkpoint.note) must carry (verify --witness-key).
	Witnesses []note.Verifier
	// RequireLog makes a missing log checkpoint a problem (an export);
	// without it a directory without one (a location copy, the state
	// directory) is verified as a chain only, with a note.
	RequireLog bool
	// ExpectLast, when not 0, is the report the auditor expects the
	// reports to reach (verify --expect-last).
	ExpectLast uint64
	// ExpectPeriod, when set, is the period the auditor asked the reports
	// to cover (verify --expect-period).
	ExpectPeriod *Period
	// pendingAfterLog (a location's copy): reports after the log
	// checkpoint are noted, not a problem: the checkpoint covering them
	// is uploaded after them.
	pendingAfterLog bool
}

// Files of an export that are not reports.
const (
	PublicKeyFile = "kluis-evidence.pub"
	SummaryFile   = "index.html"
	ReadmeFile    = "README.txt"
)

// Limits on what VerifyDir reads.
const (
	MaxReports = 1 << 20
	maxTotal   = 1 << 30
	maxOther   = 1 << 20
)

// VerifyDir verifies the report files in dir (an export, a copy of a
// location's _evidence/APPLIANCE/ or the state directory's evidence/) with
// pub. The error is for a directory that cannot be read at all; every sign
// of tampering is a Problem.
func VerifyDir(dir string, pub ed25519.PublicKey, opts VerifyOptions) (*Verification, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []File
	var skipped []string
	var total int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == SummaryFile || name == ReadmeFile {
			continue
		}
		if !e.Type().IsRegular() {
			skipped = append(skipped, name)
			continue
		}
		max := int64(MaxRecordSize)
		switch name {
		case CheckpointFile, PublicKeyFile:
			max = maxOther
		case CheckpointNoteFile:
			max = maxNote
		case TreeFile:
			max = 65 * MaxReports
		}
		if _, ok := ParseFileName(name); !ok && !strings.HasSuffix(name, ".json") && name != PublicKeyFile && name != CheckpointNoteFile && name != TreeFile {
			skipped = append(skipped, name)
			continue
		}
		if len(files) >= MaxReports {
			return nil, fmt.Errorf("%s: more than %d files", dir, MaxReports)
		}
		data, err := readCapped(filepath.Join(dir, name), max)
		if err != nil {
			return nil, err
		}
		if total += int64(len(data)); total > maxTotal {
			return nil, fmt.Errorf("%s: more than %d bytes of reports", dir, maxTotal)
		}
		files = append(files, File{Name: name, Data: data})
	}
	v := Verify(files, pub, opts)
	for _, s := range skipped {
		v.note("ignored %s: not a report file", s)
	}
	return v, nil
}

// readCapped reads at most max+1 bytes of a file: enough for a decoder
// to see it is too large.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// item is one report file during verification.
type item struct {
	file    string
	nameSeq uint64
	rec     Record
	sigOK   bool
	bodyOK  bool
	flagged bool // a problem about this file was already given
}

// Verify checks a set of files: report files (named FileName(seq)), and
// optionally the export's checkpoint.json and kluis-evidence.pub. It checks
// every signature with pub, the numbering, every link of the chain, and
// the checkpoints, and says which report is wrong and why. It never
// panics on hostile input; it trusts nothing in the files, including the
// public key file among them (only compared with pub).
func Verify(files []File, pub ed25519.PublicKey, opts VerifyOptions) *Verification {
	v := &Verification{PublicKey: Fingerprint(pub), Problems: []Problem{}, Notes: []string{}}
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })

	var items []*item
	var covered []uint64 // report numbers of files too broken to read
	var exportCP, logNote, logTree []byte
	for _, f := range files {
		switch f.Name {
		case CheckpointFile:
			exportCP = f.Data
			continue
		case CheckpointNoteFile:
			logNote = f.Data
			continue
		case TreeFile:
			logTree = f.Data
			continue
		case PublicKeyFile:
			v.comparePublicKey(f.Data, pub)
			continue
		}
		seq, ok := ParseFileName(f.Name)
		if !ok {
			v.problem(Malformed, 0, f.Name, "not a report file name (reports are named by their number in 8 digits, e.g. 00000001.json)")
			continue
		}
		l, err := parseLine(f.Data)
		if err != nil {
			v.problem(Malformed, seq, f.Name, "%s", reason(err))
			covered = append(covered, seq)
			continue
		}
		items = append(items, &item{file: f.Name, nameSeq: seq, rec: recordOf(l), sigOK: l.Verify(pub)})
	}
	v.Reports = len(items)

	// Bodies of genuine reports.
	for _, it := range items {
		if !it.sigOK {
			continue
		}
		err := decodeReport(it.rec.line.Entry.Body, &it.rec.Report)
		switch {
		case errors.Is(err, ErrUnknownSchema):
			v.problem(UnknownSchema, it.rec.Seq, it.file, "signed report of %s", reason(err))
		case err != nil:
			v.problem(Malformed, it.rec.Seq, it.file, "signed report whose body does not decode: %s", reason(err))
		default:
			it.bodyOK = true
		}
	}

	reps := v.pickRepresentatives(items)
	if len(reps) == 0 {
		v.checkExportCheckpoint(exportCP, pub, nil)
		if opts.Checkpoint != nil && !isNote(opts.Checkpoint) {
			v.checkHeldCheckpoint(opts, pub, nil)
		}
		v.checkLog(logNote, logTree, exportCP, pub, nil, opts)
		if len(v.Problems) == 0 {
			v.problem(Removed, 0, "", "no reports")
		}
		return v
	}
	v.First, v.Last, v.Head = reps[0].rec.Seq, reps[len(reps)-1].rec.Seq, reps[len(reps)-1].rec.Hash

	allForged := true
	for _, it := range reps {
		allForged = allForged && !it.sigOK
	}
	if allForged {
		v.problem(Forged, 0, "", "no report verifies with the given public key (%s): it is not this appliance's key, or every report was forged", v.PublicKey)
		return v
	}
	sort.Slice(covered, func(i, j int) bool { return covered[i] < covered[j] })
	v.checkLinks(reps, covered)
	v.checkSignatures(reps)
	v.checkAppliance(reps, exportCP, pub, opts.Appliance)
	v.checkExportCheckpoint(exportCP, pub, reps)
	if opts.Checkpoint != nil && !isNote(opts.Checkpoint) {
		v.checkHeldCheckpoint(opts, pub, reps)
	}
	v.checkLog(logNote, logTree, exportCP, pub, reps, opts)
	if opts.ExpectLast > 0 && v.Last != opts.ExpectLast {
		v.problem(Truncated, 0, "", "you expected the reports to reach report %d, but the last here is report %d", opts.ExpectLast, v.Last)
	}
	if opts.ExpectPeriod != nil {
		v.checkPeriod(*opts.ExpectPeriod, reps, exportCP, pub)
	}
	for _, it := range reps {
		if it.sigOK && it.bodyOK {
			v.Records = append(v.Records, it.rec)
		}
	}
	sort.SliceStable(v.Problems, func(i, j int) bool { return v.Problems[i].Seq < v.Problems[j].Seq })
	return v
}

// comparePublicKey notes whether the export's own key file is the one
// given: only the key the auditor got out of band counts.
func (v *Verification) comparePublicKey(data []byte, pub ed25519.PublicKey) {
	k, err := repo.ParsePublicKey(data)
	switch {
	case err != nil:
		v.note("%s in the directory is not an Ed25519 public key; verified with the key given", PublicKeyFile)
	case !k.Equal(pub):
		v.note("%s in the directory (%s) is NOT the key given (%s); verified with the key given", PublicKeyFile, Fingerprint(k), Fingerprint(pub))
	default:
		v.note("%s in the directory is the key given", PublicKeyFile)
	}
}

// pickRepresentatives groups items by report number, reports copies,
// forks and renamed files, and returns one item per number in order.
func (v *Verification) pickRepresentatives(items []*item) []*item {
	bySeq := map[uint64][]*item{}
	var seqs []uint64
	for _, it := range items {
		if bySeq[it.rec.Seq] == nil {
			seqs = append(seqs, it.rec.Seq)
		}
		bySeq[it.rec.Seq] = append(bySeq[it.rec.Seq], it)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	linked := map[string]bool{} // hashes some report links back to
	for _, it := range items {
		if it.sigOK {
			linked[it.rec.Prev] = true
		}
	}
	var reps []*item
	for _, seq := range seqs {
		group := bySeq[seq]
		rep := group[0]
		score := func(it *item) int {
			s := 0
			if it.sigOK {
				s += 4
			}
			if linked[it.rec.Hash] { // of a fork, the one the chain goes on from
				s += 2
			}
			if it.nameSeq == seq {
				s++
			}
			return s
		}
		for _, it := range group[1:] {
			if score(it) > score(rep) {
				rep = it
			}
		}
		reps = append(reps, rep)
		for _, o := range group {
			if o == rep {
				continue
			}
			o.flagged = true
			switch {
			case bytes.Equal(o.rec.Raw, rep.rec.Raw):
				v.problem(Inserted, seq, o.file, "a copy of report %d (%s) under another name", seq, rep.file)
			case o.sigOK && rep.sigOK:
				v.problem(Inserted, seq, o.file, "a second, different report signed as report %d (the other is %s): the chain was forked by a holder of the signing key", seq, rep.file)
			default:
				v.problem(Inserted, seq, o.file, "claims to be report %d like %s, and its signature does not verify with the given public key: inserted", seq, rep.file)
			}
		}
		if rep.nameSeq != seq {
			v.problem(Reordered, seq, rep.file, "the file name says report %d but it holds report %d: files were renamed or swapped", rep.nameSeq, seq)
		}
	}
	return reps
}

// checkLinks walks the reports in order: gaps and broken links.
func (v *Verification) checkLinks(reps []*item, covered []uint64) {
	first := reps[0]
	if first.rec.Seq == 1 {
		if first.rec.Prev != chain.ZeroHash && first.sigOK {
			v.problem(Inserted, 1, first.file, "report 1 does not start a chain (its prev is not zero): it belongs to another chain")
		}
	} else {
		v.note("starts at report %d; earlier reports are not in this set, so report %d's link to report %d is not checked", first.rec.Seq, first.rec.Seq, first.rec.Seq-1)
	}
	byHash := map[string]*item{}
	for _, it := range reps {
		byHash[it.rec.Hash] = it
	}
	for i := 1; i < len(reps); i++ {
		a, b := reps[i-1], reps[i]
		if b.rec.Seq > a.rec.Seq+1 {
			v.reportGap(a.rec.Seq, b.rec.Seq, covered)
			continue
		}
		if b.rec.Prev == a.rec.Hash {
			continue
		}
		switch {
		case !a.sigOK || !b.sigOK:
			// The failing signature explains it (checkSignatures).
		case byHash[b.rec.Prev] != nil && byHash[b.rec.Prev].rec.Seq > b.rec.Seq:
			v.problem(Reordered, b.rec.Seq, b.file, "report %d links back to report %d, a later report: the order of the chain was rewritten", b.rec.Seq, byHash[b.rec.Prev].rec.Seq)
		default:
			v.problem(Inserted, b.rec.Seq, b.file, "report %d does not link to report %d (its prev is not report %d's hash), though both are validly signed: one of them belongs to another chain (inserted, or the chain was forked by a holder of the signing key)", b.rec.Seq, a.rec.Seq, a.rec.Seq)
		}
	}
}

// reportGap reports the numbers between a and b that no file accounts
// for (covered: the numbers of unreadable files, sorted). It takes time in
// the number of files, not in b-a: a hostile file may claim any number.
func (v *Verification) reportGap(a, b uint64, covered []uint64) {
	i := sort.Search(len(covered), func(i int) bool { return covered[i] > a })
	start := a + 1
	for ; ; i++ {
		end := b // the next covered number, or b
		if i < len(covered) && covered[i] < b {
			end = covered[i]
		}
		switch {
		case end == start+1:
			v.problem(Removed, start, "", "report %d is missing: report %d follows report %d", start, b, a)
		case end > start+1:
			v.problem(Removed, start, "", "reports %d to %d are missing: report %d follows report %d", start, end-1, b, a)
		}
		if end == b {
			return
		}
		start = end + 1
	}
}

// checkSignatures says, for every report whose signature fails, whether
// it was edited or forged: an edited report no longer matches the hash
// its successor links to; a forged one fits the chain but was signed by
// another key.
func (v *Verification) checkSignatures(reps []*item) {
	for i, it := range reps {
		if it.sigOK || it.flagged {
			continue
		}
		seq := it.rec.Seq
		var next, prev *item
		if i+1 < len(reps) && reps[i+1].rec.Seq == seq+1 {
			next = reps[i+1]
		}
		if i > 0 && reps[i-1].rec.Seq == seq-1 {
			prev = reps[i-1]
		}
		switch {
		case next != nil && next.rec.Prev != it.rec.Hash:
			v.problem(Edited, seq, it.file, "the signature does not verify with the given public key and report %d no longer links to it: report %d was changed after it was signed", seq+1, seq)
		case next != nil:
			v.problem(Forged, seq, it.file, "the signature does not verify with the given public key, yet report %d links to it: report %d was signed by another key", seq+1, seq)
		case prev != nil && !prev.sigOK && it.rec.Prev == prev.rec.Hash:
			v.problem(Forged, seq, it.file, "the signature does not verify with the given public key; it links to report %d, which was signed by another key too: forged", seq-1)
		default:
			v.problem(Edited, seq, it.file, "the signature does not verify with the given public key: report %d was changed after it was signed, or signed by another key (no later report here tells which)", seq)
		}
	}
}

// checkAppliance checks that every genuine report is of one appliance.
func (v *Verification) checkAppliance(reps []*item, exportCP []byte, pub ed25519.PublicKey, want string) {
	if want == "" {
		if cp, err := ParseCheckpoint(exportCP); exportCP != nil && err == nil && cp.Verify(pub) {
			want = cp.Appliance
		}
	}
	if want == "" {
		count := map[string]int{}
		for _, it := range reps {
			if it.bodyOK {
				count[it.rec.Report.Appliance]++
			}
		}
		for a, n := range count {
			if n > count[want] || n == count[want] && a < want {
				want = a
			}
		}
	}
	v.Appliance = want
	for _, it := range reps {
		if it.bodyOK && it.rec.Report.Appliance != want {
			v.problem(Inserted, it.rec.Seq, it.file, "report %d is of appliance %.80q, not %q: it belongs to another appliance's chain", it.rec.Seq, it.rec.Report.Appliance, want)
		}
	}
}

func (v *Verification) findRep(reps []*item, seq uint64) *item {
	i := sort.Search(len(reps), func(i int) bool { return reps[i].rec.Seq >= seq })
	if i < len(reps) && reps[i].rec.Seq == seq {
		return reps[i]
	}
	return nil
}

// checkpoint decodes and authenticates a checkpoint, or gives a problem.
func (v *Verification) checkpoint(label string, data []byte, pub ed25519.PublicKey) (SignedCheckpoint, bool) {
	cp, err := ParseCheckpoint(data)
	if err != nil {
		v.problem(BadCheckpoint, 0, "", "%s: %s", label, reason(err))
		return cp, false
	}
	if !cp.Verify(pub) {
		v.problem(BadCheckpoint, 0, "", "%s: the signature does not verify with the given public key: edited, or signed by another key", label)
		return cp, false
	}
	if v.Appliance != "" && cp.Appliance != v.Appliance {
		v.problem(BadCheckpoint, 0, "", "%s is of appliance %.80q, the reports of %q", label, cp.Appliance, v.Appliance)
		return cp, false
	}
	return cp, true
}

// checkExportCheckpoint checks the export's own checkpoint: it names the
// export's first and last report, so reports cut off either end of an
// export (or added to it) are detected. A v1 checkpoint names only the
// last.
func (v *Verification) checkExportCheckpoint(data []byte, pub ed25519.PublicKey, reps []*item) {
	if data == nil {
		v.note("no %s: nothing shows whether reports were cut off the start or the end", CheckpointFile)
		return
	}
	cp, ok := v.checkpoint(CheckpointFile, data, pub)
	if !ok {
		return
	}
	when := cp.Time.UTC().Format("2006-01-02 15:04 UTC")
	endOK := false
	switch {
	case cp.Count > v.Last:
		if v.Last == 0 {
			v.problem(Truncated, cp.Count, "", "%s (made %s) says the export ends at report %d, but there are no reports: they were removed", CheckpointFile, when, cp.Count)
			return
		}
		v.problem(Truncated, v.Last+1, "", "%s (made %s) says the export ends at report %d, but the newest report here is %d: %s removed", CheckpointFile, when, cp.Count, v.Last, span(v.Last+1, cp.Count))
	case cp.Count < v.Last:
		v.problem(Inserted, cp.Count+1, "", "%s (made %s) says the export ends at report %d, but reports up to %d are here: %s added after the export", CheckpointFile, when, cp.Count, v.Last, span(cp.Count+1, v.Last))
		v.matchCheckpoint(CheckpointFile, cp, reps)
	default:
		endOK = v.matchCheckpoint(CheckpointFile, cp, reps)
	}
	if !cp.NamesFirst() {
		if endOK {
			v.note("%s (made %s) matches report %d, the newest report here: nothing was cut off the end", CheckpointFile, when, cp.Count)
		}
		if v.First > 1 {
			v.note("%s is of the older format %s, which does not name the export's first report: reports removed from its start cannot be detected", CheckpointFile, CheckpointSchemaV1)
		}
		return
	}
	startOK := false
	switch {
	case cp.First < v.First:
		v.problem(Removed, cp.First, "", "%s (made %s) says the export starts at report %d, but the first report here is %d: %s removed", CheckpointFile, when, cp.First, v.First, span(cp.First, v.First-1))
	case cp.First > v.First:
		v.problem(Inserted, v.First, "", "%s (made %s) says the export starts at report %d, but reports from %d are here: %s added to the export", CheckpointFile, when, cp.First, v.First, span(v.First, cp.First-1))
	default:
		it := v.findRep(reps, cp.First)
		switch {
		case it == nil: // cannot be: v.First is a representative's
		case it.rec.Hash != cp.FirstHash:
			v.problem(Rewritten, cp.First, it.file, "report %d hashes to %s…, but %s (made %s) says %s…: report %d or the history before it was rewritten after the export", cp.First, it.rec.Hash[:16], CheckpointFile, when, cp.FirstHash[:16], cp.First)
		default:
			startOK = true
		}
	}
	switch {
	case startOK && endOK && cp.First == 1:
		v.note("%s (made %s) matches report 1 and report %d, the first and the newest report here: nothing was removed from either end", CheckpointFile, when, cp.Count)
	case startOK && endOK:
		v.note("%s (made %s) matches report %d, where the export starts, and report %d, the newest report here: nothing was removed from either end", CheckpointFile, when, cp.First, cp.Count)
	case endOK:
		v.note("%s (made %s) matches report %d, the newest report here: nothing was cut off the end", CheckpointFile, when, cp.Count)
	case startOK:
		v.note("%s (made %s) matches report %d, where the export starts: nothing was removed from its start", CheckpointFile, when, cp.First)
	}
}

// checkHeldCheckpoint proves that a checkpoint the auditor kept is still a
// prefix of the chain.
func (v *Verification) checkHeldCheckpoint(opts VerifyOptions, pub ed25519.PublicKey, reps []*item) {
	label := "checkpoint " + opts.CheckpointName
	cp, ok := v.checkpoint(label, opts.Checkpoint, pub)
	if !ok {
		return
	}
	when := cp.Time.UTC().Format("2006-01-02 15:04 UTC")
	switch {
	case cp.Count > v.Last:
		v.problem(Truncated, v.Last+1, "", "%s (made %s) says the chain had %d reports, but the newest here is report %d: %s removed since (or this export ends earlier: export up to today)", label, when, cp.Count, v.Last, span(v.Last+1, cp.Count))
	case cp.Count < v.First:
		v.problem(BadCheckpoint, 0, "", "%s names report %d, which is not in this set (it starts at report %d): export from an earlier date to check it", label, cp.Count, v.First)
	default:
		if v.matchCheckpoint(label, cp, reps) {
			from := "report 1"
			if v.First > 1 {
				from = fmt.Sprintf("report %d (the first here)", v.First)
			}
			v.note("%s (made %s) matches: the chain from %s up to report %d is unchanged since, and continues to report %d", label, when, from, cp.Count, v.Last)
		}
	}
}

// matchCheckpoint compares report cp.Count's hash with the checkpoint's.
func (v *Verification) matchCheckpoint(label string, cp SignedCheckpoint, reps []*item) bool {
	it := v.findRep(reps, cp.Count)
	switch {
	case it == nil:
		v.problem(BadCheckpoint, cp.Count, "", "%s names report %d, which is missing here: it cannot be checked", label, cp.Count)
		return false
	case it.rec.Hash != cp.Hash:
		v.problem(Rewritten, cp.Count, it.file, "report %d hashes to %s…, but %s (made %s) says %s…: report %d or the history before it was rewritten after the checkpoint", cp.Count, it.rec.Hash[:16], label, cp.Time.UTC().Format("2006-01-02 15:04 UTC"), cp.Hash[:16], cp.Count)
		return false
	}
	return true
}

// span names reports a to b as the subject of a sentence.
func span(a, b uint64) string {
	if a == b {
		return fmt.Sprintf("report %d was", a)
	}
	return fmt.Sprintf("reports %d to %d were", a, b)
}

// reason is an error's message without the sentinel it wraps.
func reason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{ErrMalformed, ErrUnknownSchema} {
		s = strings.TrimSuffix(s, ": "+sentinel.Error())
	}
	return s
}

// Fingerprint is "SHA256:" and the hex SHA-256 of the public key's PKIX
// DER encoding, as `openssl pkey -pubin -outform DER | sha256sum` prints it.
func Fingerprint(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return "(no key)"
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "(no key)"
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + hex.EncodeToString(sum[:])
}
