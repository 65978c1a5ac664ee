package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// SyncResult is what Sync did at one location.
type SyncResult struct {
	Location string `json:"location"`
	// Copied and Bytes count the objects this sync wrote here, each read
	// back and verified.
	Copied int   `json:"objects_copied"`
	Bytes  int64 `json:"bytes_copied"`
	// Missing counts objects still absent here after the sync.
	Missing int `json:"missing"`
	// Refused counts objects another location lists that were not copied
	// here because they were proven planted there (they match their name
	// but this repository never sealed them). They are not missing.
	Refused int `json:"refused,omitempty"`
	// Repaired counts damaged copies here replaced by a good copy from
	// another location (SyncOptions.Repair); their bytes are in Bytes.
	// Damaged counts damaged copies still here (no good copy anywhere, or
	// the replacement failed); Planted the planted objects found here,
	// which have no genuine copy and are left to the operator.
	Repaired int    `json:"objects_repaired,omitempty"`
	Damaged  int    `json:"damaged,omitempty"`
	Planted  int    `json:"planted,omitempty"`
	Error    string `json:"error,omitempty"`

	repairProblems []string
}

// Complete reports whether the location now holds every object, and (after
// a repair) no damaged copy.
func (s *SyncResult) Complete() bool { return s.Error == "" && s.Missing == 0 && s.Damaged == 0 }

// syncKinds are copied in the repository's write order: a manifest never
// arrives before the packs and index it refers to.
var syncKinds = []string{kindKeys, kindData, kindIndex, kindSnapshot, kindRegister}

// Sync copies to every location what it lacks: the config, key files,
// packs, indexes, snapshot manifests and register records that another
// location holds. The
// objects are content-addressed, so what a location lacks is a set
// difference of names. Each copy is read from a location whose copy
// verifies, authenticates and decodes (a pack's header and every blob, an
// index or manifest whole, a key file's envelope), written, read back and
// verified again: nothing damaged or planted at one location reaches
// another. Superseded index objects are not copied. A location that
// cannot be listed or written is reported, not fatal; the caller decides
// from Complete.
//
// The caller should hold the tenant lock (shared is enough: sync only
// adds objects, exactly what a backup does).
//
// Sync compares names only and reads only what it copies: a copy that is
// there but damaged is not found by Sync (check --read-data finds it);
// SyncWith with Repair reads everything and replaces it.
func (r *Repo) Sync(ctx context.Context) ([]SyncResult, error) {
	return r.SyncWith(ctx, SyncOptions{})
}

// SyncWith is Sync with options.
func (r *Repo) SyncWith(ctx context.Context, opts SyncOptions) ([]SyncResult, error) {
	out := make([]SyncResult, len(r.locs))
	have := make([]map[string]map[Hash]int64, len(r.locs))
	union := map[string]map[Hash]bool{}
	for _, k := range syncKinds {
		union[k] = map[Hash]bool{}
	}
	listed := 0
	for i, l := range r.locs {
		out[i].Location = l.Name()
		have[i] = map[string]map[Hash]int64{}
		for _, k := range syncKinds {
			names, err := r.listNames(ctx, l, k)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				out[i].Error = err.Error()
				have[i] = nil
				break
			}
			have[i][k] = names
			for h := range names {
				union[k][h] = true
			}
		}
		if have[i] != nil {
			listed++
		}
	}
	if listed == 0 {
		return out, fmt.Errorf("tenant %s: no location could be listed", r.tenant)
	}
	r.dropForgotten(union[kindSnapshot])
	// Superseded index objects (put back by a location, or kept by Object
	// Lock) are never copied.
	superseded := map[Hash]bool{}
	if st, err := r.loadIndexState(ctx); err == nil {
		superseded = st.superseded
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for h := range superseded {
		delete(union[kindIndex], h)
	}
	for i, l := range r.locs {
		if have[i] == nil {
			out[i].Missing = -1
			continue
		}
		if opts.Repair {
			r.repairLocation(ctx, l, &out[i])
			if err := ctx.Err(); err != nil {
				return out, err
			}
		}
		r.syncLocation(ctx, l, have[i], union, &out[i])
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *Repo) syncLocation(ctx context.Context, l Location, have map[string]map[Hash]int64, union map[string]map[Hash]bool, res *SyncResult) {
	problems := res.repairProblems
	fail := func(err error) {
		problems = append(problems, err.Error())
		res.Missing++
	}
	if err := r.ensureRepoObjects(ctx, l); errors.Is(err, ErrForeign) {
		// A squatted prefix gets nothing (repo/foreign.go).
		res.Error, res.Missing = err.Error(), -1
		return
	}
	// The config is the one object not named by its hash: the key file
	// binds its SHA-256, so the verified copy this Repo opened is the one.
	cname := r.tenant + "/" + kindConfig
	if _, err := l.Stat(ctx, cname); errors.Is(err, ErrNotFound) {
		if err := r.copyObject(ctx, l, cname, r.configBytes, sha256.Sum256(r.configBytes), res); err != nil {
			fail(err)
		}
	} else if err != nil {
		fail(err)
	}
	for _, k := range syncKinds {
		missing := make([]Hash, 0)
		for h := range union[k] {
			if _, ok := have[k][h]; !ok {
				missing = append(missing, h)
			}
		}
		sort.Slice(missing, func(i, j int) bool { return missing[i].String() < missing[j].String() })
		for _, h := range missing {
			if ctx.Err() != nil {
				fail(ctx.Err())
				return
			}
			data, err := r.readForCopy(ctx, k, h)
			if errors.Is(err, errPlanted) {
				res.Refused++
				continue
			}
			if err != nil {
				fail(fmt.Errorf("read %s: %w", objectName(r.tenant, k, h), err))
				continue
			}
			if k == kindKeys && !r.ownKeyFile(data) {
				continue // planted or a lost appliance's: never spread (repo/recover.go)
			}
			if err := r.copyObject(ctx, l, objectName(r.tenant, k, h), data, h, res); err != nil {
				fail(err)
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		res.Error = strings.Join(problems, "; ")
	}
}

// copyObject writes data at l, reads it back and checks its SHA-256.
func (r *Repo) copyObject(ctx context.Context, l Location, name string, data []byte, want Hash, res *SyncResult) error {
	if err := l.Put(ctx, name, data); err != nil {
		return err
	}
	back, err := ReadAll(ctx, l, name, int64(len(data)))
	if err != nil {
		return fmt.Errorf("%s at %s: reading back the copy: %w", name, l.Name(), err)
	}
	if sha256.Sum256(back) != want {
		return fmt.Errorf("%s at %s: the copy read back differs (a different object was already there, or the location damages data): %w", name, l.Name(), ErrCorrupt)
	}
	res.Copied++
	res.Bytes += int64(len(data))
	r.log.Info("sync: copied", "location", l.Name(), "object", name, "bytes", len(data))
	return nil
}

// readForCopy reads an object to copy to another location: only a copy
// that verifies, authenticates and decodes.
func (r *Repo) readForCopy(ctx context.Context, kind string, h Hash) ([]byte, error) {
	switch kind {
	case kindData:
		return r.readPackOpened(ctx, h)
	case kindIndex, kindSnapshot:
		return r.readSealedVerified(ctx, kind, h)
	case kindRegister:
		return r.readRegisterForCopy(ctx, h)
	}
	data, err := r.readVerified(ctx, kind, h, r.maxObject(kind))
	if err != nil {
		return nil, err
	}
	if _, err := decodeKeyFileEnvelope(data); err != nil {
		return nil, fmt.Errorf("%s: matches its name but is not a key file: %v: %w: %w", objectName(r.tenant, kind, h), err, errPlanted, ErrCorrupt)
	}
	return data, nil
}

func (r *Repo) maxObject(kind string) int64 {
	switch kind {
	case kindKeys:
		return maxKeyFile
	case kindIndex:
		return maxIndexObject
	case kindSnapshot:
		return maxManifest
	case kindRegister:
		return maxRegisterObject
	}
	return r.maxPackObject()
}
