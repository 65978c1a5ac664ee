package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/repo"
)

// At a versioned location (an S3 bucket with Object Lock) a PUT over a
// write-once object does not fail: it adds a data version, and reads see
// the newest. kluis writes every evidence object once, so
//
//   - a name with more than one data version was written over (tampering
//     with the location's credential, or by root holding it);
//   - a name whose only version is not the one the appliance recorded
//     right after writing it was replaced: its version deleted (governance
//     mode with the bypass permission, or after retention) and another
//     written;
//   - a recorded name with no version left was deleted.
//
// The version ids are recorded beside the checkpoint whose upload wrote
// them: STATE/evidence/checkpoints/NNNNNNNN.versions (docs/format.md,
// "Evidence log").

// VersionLister is a location that lists the data versions of its objects
// (an S3 bucket: repo/s3): version ids by name, newest first.
type VersionLister interface {
	DataVersions(ctx context.Context, prefix string) (map[string][]string, error)
}

// VersionsSchema names the format of a .versions file.
const VersionsSchema = "kluis-evidence-versions/v1"

// maxVersionsFile bounds a .versions file.
const maxVersionsFile = 64 << 20

// versionsFile is STATE/evidence/checkpoints/NNNNNNNN.versions: the
// version id of every evidence object found at each location, with one
// data version, right after the checkpoint of size NNNNNNNN was written
// there, that no earlier file records.
type versionsFile struct {
	Schema string `json:"schema"`
	// Locations: location name → object name → version id.
	Locations map[string]map[string]string `json:"locations"`
}

func (s *Store) versionsPath(n int64) string {
	return filepath.Join(s.dir, CheckpointDir, fmt.Sprintf("%08d.versions", n))
}

// recordedVersions merges every .versions file: location → name → the
// version id the appliance recorded after writing it. A file that does
// not decode is an error (the state directory was tampered with).
func (s *Store) recordedVersions() (map[string]map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, CheckpointDir, "*.versions"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	out := map[string]map[string]string{}
	for _, p := range paths {
		data, err := readCapped(p, maxVersionsFile)
		if err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
		f, err := parseVersions(data)
		if err != nil {
			return nil, fmt.Errorf("evidence: %s: %w", p, err)
		}
		for loc, names := range f.Locations {
			if out[loc] == nil {
				out[loc] = map[string]string{}
			}
			for name, id := range names {
				if _, ok := out[loc][name]; !ok { // the first record wins
					out[loc][name] = id
				}
			}
		}
	}
	return out, nil
}

// parseVersions decodes a .versions file strictly. Errors wrap
// ErrMalformed or ErrUnknownSchema.
func parseVersions(data []byte) (versionsFile, error) {
	var f versionsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("not a versions record: %s: %w", clip(err.Error()), ErrMalformed)
	}
	if dec.More() {
		return f, fmt.Errorf("not one JSON object: %w", ErrMalformed)
	}
	if f.Schema != VersionsSchema {
		return f, fmt.Errorf("versions schema %.80q, this kluis reads %q: %w", f.Schema, VersionsSchema, ErrUnknownSchema)
	}
	for _, names := range f.Locations {
		for name, id := range names {
			if name == "" || id == "" {
				return f, fmt.Errorf("an empty object name or version id: %w", ErrMalformed)
			}
		}
	}
	return f, nil
}

// recordVersions records, for checkpoint n, the version id of every
// evidence object of this key at the versioned locations of locs (those
// res says took the log) that has exactly one data version and no record
// yet: what the appliance just wrote there (or found there from before the
// record existed). Objects with more versions are not recorded; the audit
// reports them. Errors are returned to be logged: the log is safe without
// the record, which only sharpens the audit.
func (s *Store) recordVersions(ctx context.Context, n int64, res []repo.LocationResult) error {
	have, err := s.recordedVersions()
	if err != nil {
		return err
	}
	add := map[string]map[string]string{}
	prefix := LogPrefix(s.appliance, s.pub)
	for i, l := range s.locs {
		vl, ok := repo.As[VersionLister](l)
		if !ok || !res[i].OK {
			continue
		}
		vs, err := vl.DataVersions(ctx, prefix)
		if err != nil {
			return err
		}
		for name, ids := range vs {
			if _, ok := have[l.Name()][name]; ok || len(ids) != 1 {
				continue
			}
			if add[l.Name()] == nil {
				add[l.Name()] = map[string]string{}
			}
			add[l.Name()][name] = ids[0]
		}
	}
	if len(add) == 0 {
		return nil
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	path := s.versionsPath(n)
	f := versionsFile{Schema: VersionsSchema, Locations: map[string]map[string]string{}}
	if data, err := readCapped(path, maxVersionsFile); err == nil { // a second Sync at the same size
		if f, err = parseVersions(data); err != nil {
			return fmt.Errorf("evidence: %s: %w", path, err)
		}
	}
	for loc, names := range add {
		if f.Locations[loc] == nil {
			f.Locations[loc] = map[string]string{}
		}
		for name, id := range names {
			f.Locations[loc][name] = id
		}
	}
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}

// auditVersions lists the data versions of the log's objects at l (when
// l keeps versions) and compares them with the ids the appliance recorded
// (recorded: name → version id): problems are sentences.
func (s *Store) auditVersions(ctx context.Context, l repo.Location, recorded map[string]string) []string {
	vl, ok := repo.As[VersionLister](l) // through decorators (repo/deadline)
	if !ok {
		return nil
	}
	vs, err := vl.DataVersions(ctx, LogPrefix(s.appliance, s.pub))
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, name := range sortedKeys(vs) {
		if ids := vs[name]; len(ids) > 1 {
			problems = append(problems, fmt.Sprintf("%s has %d data versions: a write-once object was overwritten (tampering: a PUT over it with the location's credential)", name, len(ids)))
		}
	}
	for _, name := range sortedKeys(recorded) {
		id := recorded[name]
		ids, ok := vs[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is gone: every version of it was deleted, including version %s the appliance wrote (tampering: deleted with the location's credential)", name, id))
		case !slices.Contains(ids, id):
			problems = append(problems, fmt.Sprintf("%s: version %s, which the appliance wrote, is gone and version %s is there: the object was replaced (tampering: its version deleted with the bypass permission, or after retention, and another written)", name, id, strings.Join(ids, ", ")))
		}
	}
	return problems
}

// locationVersionProblems is the auditor's side of auditVersions, for
// VerifyLocationCopy: without the appliance's record, only names with
// more than one data version show.
func locationVersionProblems(ctx context.Context, l repo.Location, prefix string) ([]Problem, error) {
	vl, ok := repo.As[VersionLister](l)
	if !ok {
		return nil, nil
	}
	vs, err := vl.DataVersions(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, name := range sortedKeys(vs) {
		if n := len(vs[name]); n > 1 {
			out = append(out, Problem{Kind: Rewritten, File: name, Reason: fmt.Sprintf("%d data versions of a write-once object: a new version was PUT over it (tampering; the newest is what a plain read sees)", n)})
		}
	}
	return out, nil
}
