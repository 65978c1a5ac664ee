package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
)

// Replacer is a Location that can replace the copy of an object it holds:
// the one exception to write-once, used only to repair a copy that does
// not match its name or does not open (SyncOptions.Repair). A versioned
// location adds a version; the damaged one may stay (Object Lock) but is
// no longer the current one, and reads take the current version first.
// A Location that is not a Replacer is repaired by Delete and Put.
type Replacer interface {
	Replace(ctx context.Context, name string, data []byte) error
}

// SyncOptions select what SyncWith does beyond copying missing objects.
type SyncOptions struct {
	// Repair reads every object at every location first, as check
	// --read-data does (each location on its own), and replaces each copy
	// that does not verify, authenticate or decode (and, at a versioned
	// location, each name whose current version is not the one that
	// matches it) with a copy from a location whose copy does. Planted
	// objects have no genuine copy anywhere and are left to the operator.
	Repair bool
}

// repairLocation replaces the damaged copies at l (SyncOptions.Repair).
func (r *Repo) repairLocation(ctx context.Context, l Location, res *SyncResult) {
	c := r.checkLocation(ctx, l, CheckOptions{ReadData: true})
	if ctx.Err() != nil {
		return
	}
	targets := map[string]bool{}
	for _, d := range c.Damaged {
		if d.Planted {
			res.Planted++
			continue
		}
		targets[d.Object] = true
	}
	// A name whose current version is not the one that matches it: reads
	// see through it, but the location is not whole until the current
	// version is good again.
	if vl, ok := l.(VersionedLocation); ok {
		if as, err := vl.VersionAnomalies(ctx, r.tenant+"/"); err == nil {
			for _, a := range as {
				kind, h, ok := r.classifyObject(a.Name)
				if !ok || kind == kindConfig || targets[a.Name] || (kind == kindKeys && r.supersededKeyFile(a.Name)) {
					continue
				}
				if a.Hidden || !r.currentMatches(ctx, l, a.Name, kind, h) {
					targets[a.Name] = true
				}
			}
		}
	}
	// A config that differs from the one the key file binds is not
	// replaced: it may be another repository's (repo/foreign.go), and
	// check names it.
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	var problems []string
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		kind, h, ok := r.classifyObject(name)
		if !ok || kind == kindConfig {
			continue
		}
		data, err := r.readForCopy(ctx, kind, h)
		if err == nil {
			err = r.replaceObject(ctx, l, name, data, h, res)
		}
		if err != nil {
			res.Damaged++
			problems = append(problems, fmt.Sprintf("repair %s: %v", name, err))
		}
	}
	if len(problems) > 0 {
		res.repairProblems = problems
	}
}

// classifyObject returns the kind and hash of a tenant object's name.
func (r *Repo) classifyObject(name string) (string, Hash, bool) {
	if name == r.tenant+"/"+kindConfig {
		return kindConfig, Hash{}, true
	}
	for _, k := range []string{kindData, kindIndex, kindSnapshot, kindKeys} {
		if h, ok := parseObjectName(r.tenant, k, name); ok {
			return k, h, true
		}
	}
	return "", Hash{}, false
}

// currentMatches reports whether the current version of a content-addressed
// object at l matches its name (without looking at older versions).
func (r *Repo) currentMatches(ctx context.Context, l Location, name, kind string, h Hash) bool {
	data, err := ReadAll(ctx, l, name, r.maxObject(kind))
	return err == nil && sha256.Sum256(data) == h
}

// replaceObject writes the good copy data over the damaged one at l and
// reads it back: the current copy must now match.
func (r *Repo) replaceObject(ctx context.Context, l Location, name string, data []byte, want Hash, res *SyncResult) error {
	var err error
	if rl, ok := l.(Replacer); ok {
		err = rl.Replace(ctx, name, data)
	} else if err = l.Delete(ctx, name); err == nil {
		err = l.Put(ctx, name, data)
	}
	if err != nil {
		return err
	}
	back, err := ReadAll(ctx, l, name, int64(len(data)))
	if err != nil {
		return fmt.Errorf("reading back the repaired copy: %w", err)
	}
	if sha256.Sum256(back) != want {
		return fmt.Errorf("the location still serves a copy that differs after the repair: %w", ErrCorrupt)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	r.noteRead(l, name, nil)
	res.Repaired++
	res.Bytes += int64(len(data))
	r.log.Info("sync: repaired a damaged copy", "location", l.Name(), "object", name, "bytes", len(data))
	return nil
}
