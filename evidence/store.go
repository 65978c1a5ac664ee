package evidence

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"filippo.io/age"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kluis-nl/kluis/durable"
	"github.com/kluis-nl/kluis/evidence/chain"
	"github.com/kluis-nl/kluis/repo"
)

// DirName is the evidence directory under the state directory.
const DirName = "evidence"

// LocationPrefix is the prefix of an appliance's reports at a location:
// "_evidence/APPLIANCE/". Tenant ids start with a letter or digit, so it
// never meets a repository.
func LocationPrefix(appliance string) string { return "_evidence/" + appliance + "/" }

const (
	lockName  = ".lock"
	tmpPrefix = ".tmp-"
)

// applianceRE is config's rule for appliance ids: safe as a path component.
var applianceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Store is the appliance's evidence chain: report files in
// STATE/evidence/ and their copies at every location.
type Store struct {
	dir       string
	appliance string
	key       ed25519.PrivateKey
	pub       ed25519.PublicKey
	locs      []repo.Location
	// Now is the clock reports are signed with (default time.Now).
	Now func() time.Time
	// Witnesses are asked to cosign the checkpoint after each Append
	// (evidence.witnesses); a refusal is logged, and status shows the
	// checkpoint uncosigned.
	Witnesses []WitnessClient
	// Recipients are further age recipients the location copies are
	// sealed to (evidence.auditor_recipient, appliance.recovery_recipient).
	Recipients []age.Recipient
}

// OpenStore returns the evidence store of the appliance whose state
// directory is stateDir. key signs (and its public half verifies) the
// reports; locs receive their copies (none: the state directory only).
func OpenStore(stateDir, applianceID string, key ed25519.PrivateKey, locs []repo.Location) *Store {
	s := &Store{dir: filepath.Join(stateDir, DirName), appliance: applianceID, key: key, locs: locs, Now: time.Now}
	if len(key) == ed25519.PrivateKeySize {
		s.pub = key.Public().(ed25519.PublicKey)
	}
	return s
}

// Dir is the directory the report files are in.
func (s *Store) Dir() string { return s.dir }

// PublicKey is the key the reports verify with.
func (s *Store) PublicKey() ed25519.PublicKey { return s.pub }

// Append signs r as the next report of the chain (seq = last+1, prev =
// hash of the previous record), writes it durably (temp file, fsync, link,
// fsync dir) to STATE/evidence/, then verifies the state directory's
// chain and puts at every location in parallel, write-once, every report
// that verifies and the location lacks (a report that does not verify is
// never copied; the results say which). A location that fails, or whose
// copy of a report differs, is reported in the results, not as an error:
// the report is safe in the state directory and the next Append (or
// Sync) uploads what a location lacks. Appends from concurrent goroutines and processes are
// serialized with a flock.
func (s *Store) Append(ctx context.Context, r *Report) (Record, []repo.LocationResult, error) {
	if err := s.usable(); err != nil {
		return Record{}, nil, err
	}
	body, err := s.body(r)
	if err != nil {
		return Record{}, nil, err
	}
	rec, err := s.appendLocal(body)
	if err != nil {
		return Record{}, nil, err
	}
	return rec, s.afterAppend(ctx), nil
}

// afterAppend signs the checkpoint of the log just appended to, collects
// witness cosignatures and uploads what the locations lack.
func (s *Store) afterAppend(ctx context.Context) []repo.LocationResult {
	_, _, cpErr := s.Checkpoint()
	if cpErr == nil && len(s.Witnesses) > 0 {
		wres, err := s.Cosign(ctx, s.Witnesses)
		if err != nil {
			slog.Warn("evidence: collecting cosignatures", "err", err)
		}
		for _, r := range wres {
			if !r.OK {
				slog.Warn("evidence: a witness did not cosign the checkpoint", "witness", r.Witness, "err", r.Error)
			}
		}
	}
	res := s.uploadVerified(ctx)
	if cpErr != nil {
		for i := range res {
			res[i].OK = false
			res[i].Error = strings.TrimPrefix(res[i].Error+"; ", "; ") + "no checkpoint signed: " + cpErr.Error()
		}
	}
	return res
}

func (s *Store) usable() error {
	if len(s.key) != ed25519.PrivateKeySize {
		return errors.New("evidence: no signing key")
	}
	if !applianceRE.MatchString(s.appliance) {
		return fmt.Errorf("evidence: appliance id %q is not usable as a name", s.appliance)
	}
	return nil
}

// body checks a report and returns its JSON: the schema and appliance are
// filled in when empty, and nil lists are written as [].
func (s *Store) body(r *Report) ([]byte, error) {
	if r == nil {
		return nil, errors.New("evidence: no report")
	}
	c := *r
	if c.Schema == "" {
		c.Schema = Schema
	}
	if c.Appliance == "" {
		c.Appliance = s.appliance
	}
	switch {
	case c.Schema != Schema:
		return nil, fmt.Errorf("evidence: report schema %q, want %q", c.Schema, Schema)
	case c.Appliance != s.appliance:
		return nil, fmt.Errorf("evidence: report of appliance %q appended to the chain of %q", c.Appliance, s.appliance)
	case c.Tenant == "":
		return nil, errors.New("evidence: report without a tenant")
	case c.Verdict != Pass && c.Verdict != Fail && c.Verdict != Error:
		return nil, fmt.Errorf("evidence: verdict %q, want %s, %s or %s", c.Verdict, Pass, Fail, Error)
	case (c.Verdict == Error) != (c.Cause != ""):
		return nil, fmt.Errorf("evidence: verdict %s with cause %q: a cause goes with ERROR only", c.Verdict, c.Cause)
	case c.Verdict == Pass && len(c.FailedChecks) > 0:
		return nil, fmt.Errorf("evidence: verdict PASS with failed checks %v", c.FailedChecks)
	}
	if c.FailedChecks == nil {
		c.FailedChecks = []string{}
	}
	if c.Checks == nil {
		c.Checks = []Check{}
	}
	if c.Tables == nil {
		c.Tables = []Table{}
	}
	if c.Probes == nil {
		c.Probes = []Probe{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, tooLarge(len(b), &c)
	}
	return b, nil
}

// maxBody bounds a report's JSON: a record adds its number, link, time
// and signature (about 250 bytes) around it.
const maxBody = chain.MaxLine - 1024

func tooLarge(n int, r *Report) error {
	return fmt.Errorf("evidence: the report of tenant %s is %d bytes (%d tables), larger than the %d MiB a report may be: it cannot be recorded", r.Tenant, n, len(r.Tables), chain.MaxLine>>20)
}

// appendLocal writes the next record under the lock.
func (s *Store) appendLocal(body []byte) (Record, error) {
	unlock, err := s.lock()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	s.removeTemps()
	last, err := s.last()
	if err != nil {
		return Record{}, err
	}
	e := chain.Entry{Seq: 1, Prev: chain.ZeroHash, Time: s.Now().UTC(), Body: body}
	if last != nil {
		e.Seq, e.Prev = last.Seq+1, last.Hash
	}
	line, err := chain.Sign(s.key, e)
	if err != nil {
		return Record{}, err
	}
	data := append(line, '\n')
	if len(data) > MaxRecordSize {
		// body() leaves room for the entry around it; never write a
		// record that verify would refuse.
		return Record{}, fmt.Errorf("evidence: the signed report is %d bytes, larger than the %d MiB a report may be: it cannot be recorded", len(data), chain.MaxLine>>20)
	}
	if err := writeOnce(s.dir, FileName(e.Seq), data); err != nil {
		return Record{}, fmt.Errorf("evidence: %w", err)
	}
	return ParseRecord(data)
}

// lock takes the store's exclusive flock.
func (s *Store) lock() (func(), error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("evidence: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// removeTemps deletes the temporary files of writes a crash interrupted
// (called under the lock: no write is in progress).
func (s *Store) removeTemps() {
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}

// last returns the newest record, verified, or nil for an empty chain.
func (s *Store) last() (*Record, error) {
	names, err := s.names()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	name := names[len(names)-1]
	data, err := readCapped(filepath.Join(s.dir, name), MaxRecordSize)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	l, err := parseLine(data)
	switch {
	case err != nil:
	case !l.Verify(s.pub):
		err = errors.New("its signature does not verify with this appliance's key")
	case FileName(l.Entry.Seq) != name:
		err = fmt.Errorf("it holds report %d", l.Entry.Seq)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: the newest report %s: %v; refusing to extend a chain that does not verify (run kluis evidence verify)", filepath.Join(s.dir, name), err)
	}
	rec := recordOf(l)
	var head struct {
		Appliance string `json:"appliance"`
	}
	if json.Unmarshal(l.Entry.Body, &head) == nil && head.Appliance != s.appliance {
		// A renamed appliance.id would make every later report look
		// inserted from another appliance to an auditor.
		return nil, fmt.Errorf("evidence: the chain in %s belongs to appliance %q but appliance.id is now %q: set appliance.id back (one chain per appliance), or keep this chain and start a new one in another state_dir", s.dir, head.Appliance, s.appliance)
	}
	return &rec, nil
}

// names lists the report files, in seq order.
func (s *Store) names() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	type named struct {
		seq  uint64
		name string
	}
	var out []named
	for _, e := range ents {
		if seq, ok := ParseFileName(e.Name()); ok {
			out = append(out, named{seq, e.Name()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	names := make([]string, len(out))
	for i, n := range out {
		names[i] = n.name
	}
	return names, nil
}

// writeOnce writes data to dir/name durably, never replacing a file:
// temp file, fsync, link (fails if name exists), fsync of the directory.
func writeOnce(dir, name string, data []byte) error {
	return durable.WriteFile(filepath.Join(dir, name), data, durable.Options{TempPrefix: tmpPrefix, Mode: 0o400, Place: durable.Link})
}

// syncDir fsyncs a directory (package durable).
func syncDir(dir string) error { return durable.SyncDir(dir) }

// Records returns every record in seq order, each verified: signature
// with the key's public half, numbering and chain links from report 1. An
// error names every problem.
func (s *Store) Records() ([]Record, error) {
	v, err := s.verify()
	if err != nil {
		return nil, err
	}
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", s.dir, err)
	}
	return v.Records, nil
}

// verify reads and verifies the state directory's chain.
func (s *Store) verify() (*Verification, error) {
	if len(s.pub) != ed25519.PublicKeySize {
		return nil, errors.New("evidence: no signing key")
	}
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return &Verification{PublicKey: Fingerprint(s.pub), Appliance: s.appliance, Problems: []Problem{}, Notes: []string{}}, nil
	}
	if len(names) > MaxReports {
		return nil, fmt.Errorf("evidence: %s: more than %d reports", s.dir, MaxReports)
	}
	files := make([]File, 0, len(names))
	for _, n := range names {
		data, err := readCapped(filepath.Join(s.dir, n), MaxRecordSize)
		if err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
		files = append(files, File{Name: n, Data: data})
	}
	v := Verify(files, s.pub, VerifyOptions{Appliance: s.appliance})
	if v.First > 1 {
		v.problem(Removed, 1, "", "the state directory's chain starts at report %d: reports 1 to %d are missing", v.First, v.First-1)
	}
	return v, nil
}

// Sync uploads to every location, write-once, each report it lacks,
// after verifying the state directory's chain. A location whose copy of a
// report differs from the state directory's (in size or in any byte: every
// copy is read back, old ones too) fails. The error is for a chain that does not verify;
// a location that fails is in the results.
func (s *Store) Sync(ctx context.Context) ([]repo.LocationResult, error) {
	recs, err := s.Records()
	if err != nil {
		return nil, err
	}
	if len(recs) > 0 {
		if _, _, err := s.Checkpoint(); err != nil { // a chain from before the log gets its first checkpoint
			return nil, err
		}
	}
	res := s.upload(ctx, files(recs), true)
	s.uploadCheckpoint(ctx, res)
	return res, nil
}

// CatchUp is the cheap form of Sync for a schedule: it uploads what a
// location lacks and reads back only what it wrote (older copies are
// checked by size), as Append does.
func (s *Store) CatchUp(ctx context.Context) []repo.LocationResult {
	return s.uploadVerified(ctx)
}

func files(recs []Record) []File {
	out := make([]File, len(recs))
	for i, r := range recs {
		out[i] = File{Name: FileName(r.Seq), Data: r.Raw}
	}
	return out
}

// uploadVerified verifies the state directory's chain and uploads the
// reports that verify. When some do not, every location's result says so
// (and is not OK): they stay in the state directory for an investigation.
func (s *Store) uploadVerified(ctx context.Context) []repo.LocationResult {
	if len(s.locs) == 0 {
		return nil
	}
	v, err := s.verify()
	if err != nil {
		res := make([]repo.LocationResult, len(s.locs))
		for i, l := range s.locs {
			res[i] = repo.LocationResult{Location: l.Name(), Error: err.Error()}
		}
		return res
	}
	bad := map[uint64]bool{}
	whole := false
	for _, p := range v.Problems {
		bad[p.Seq] = true
		whole = whole || p.Seq == 0
	}
	var ok []Record
	for _, r := range v.Records {
		if !whole && !bad[r.Seq] {
			ok = append(ok, r)
		}
	}
	res := s.upload(ctx, files(ok), false)
	if v.OK() {
		s.uploadCheckpoint(ctx, res)
	} else {
		held := fmt.Sprintf("the state directory's chain does not verify (%s", v.Problems[0])
		if n := len(v.Problems); n > 1 {
			held += fmt.Sprintf(", and %d more", n-1)
		}
		held += "): only the reports that verify were copied; run kluis evidence verify"
		for i := range res {
			res[i].OK = false
			if res[i].Error != "" {
				res[i].Error += "; "
			}
			res[i].Error += held
		}
	}
	return res
}

// upload copies files (verified reports) to every location, in parallel.
// deep reads back every copy at a location, not only the ones it puts.
func (s *Store) upload(ctx context.Context, files []File, deep bool) []repo.LocationResult {
	if len(s.locs) == 0 {
		return nil
	}
	res := make([]repo.LocationResult, len(s.locs))
	var wg sync.WaitGroup
	for i, l := range s.locs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.uploadTo(ctx, l, files, deep)
			res[i] = repo.LocationResult{Location: l.Name(), OK: err == nil}
			if err != nil {
				res[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	return res
}

// compareParallel bounds the copies read back at once from a location.
const compareParallel = 8
