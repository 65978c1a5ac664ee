package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
)

// VersionedLocation is a Location that keeps earlier versions of a name
// (an S3 bucket with versioning, which Object Lock requires). kluis writes
// exactly one version of every name and never a delete marker, so a second
// version or a marker is someone else's doing: anyone holding the bucket's
// credential may PUT a newer version over a locked one (the lock protects
// versions, not names) or hide an object behind a delete marker.
type VersionedLocation interface {
	Location
	// ReadVersions calls fn with the bytes of each data version of name
	// (at most max bytes each; a larger version is skipped), newest first,
	// until fn returns true; it reports whether fn did.
	ReadVersions(ctx context.Context, name string, max int64, fn func([]byte) bool) (bool, error)
	// VersionAnomalies lists the names under prefix with more than one data
	// version or with a delete marker.
	VersionAnomalies(ctx context.Context, prefix string) ([]VersionAnomaly, error)
}

// VersionAnomaly is one name at a versioned location that kluis did not
// leave as it is: more than one data version, or delete markers.
type VersionAnomaly struct {
	Name          string
	DataVersions  int
	DeleteMarkers int
	// Hidden: the newest version is a delete marker.
	Hidden bool
}

// readContent reads the content-addressed object name from l and checks
// it against h. When the current version does not match (or is too large)
// and l keeps versions, it reads the newest earlier version that matches:
// a version written over a locked one cannot shadow it.
func readContent(ctx context.Context, l Location, name string, max int64, h Hash) ([]byte, error) {
	data, err := ReadAll(ctx, l, name, max)
	if err == nil && sha256.Sum256(data) == h {
		return data, nil
	}
	if err == nil {
		err = fmt.Errorf("content does not match its name: %w", ErrCorrupt)
	}
	vl, ok := As[VersionedLocation](l)
	if !ok || !errors.Is(err, ErrCorrupt) || ctx.Err() != nil {
		return nil, err
	}
	var good []byte
	found, verr := vl.ReadVersions(ctx, name, max, func(b []byte) bool {
		if sha256.Sum256(b) == h {
			good = b
			return true
		}
		return false
	})
	if verr != nil || !found {
		return nil, err
	}
	return good, nil
}

// checkVersions reports, at a versioned location, every object of the
// tenant that has a version or a delete marker kluis did not write:
// tampering at that location, named, even when reads see through it. It
// returns the packs with more than one version: their listed size is the
// newest version's, not the size of the version that matches the name.
func (r *Repo) checkVersions(ctx context.Context, l Location, c *LocationCheck) map[Hash]bool {
	shadowed := map[Hash]bool{}
	vl, ok := As[VersionedLocation](l)
	if !ok {
		return shadowed
	}
	as, err := vl.VersionAnomalies(ctx, r.tenant+"/")
	if err != nil {
		c.errorf("list versions of %s/: %v", r.tenant, err)
		return shadowed
	}
	sort.Slice(as, func(i, j int) bool { return as[i].Name < as[j].Name })
	for _, a := range as {
		if a.DataVersions > 1 && !a.Hidden {
			// Repaired (sync --repair): the newest version matches its
			// name and the damaged ones are kept by Object Lock.
			if kind, h, ok := r.classifyObject(a.Name); ok && kind != kindConfig && r.currentMatches(ctx, l, a.Name, kind, h) {
				c.warnf("%s: %d versions; the current one matches its name (repaired by sync --repair, or a copy written over it with the same bytes); the older ones stay until their Object Lock retention ends", a.Name, a.DataVersions)
				if a.DeleteMarkers == 0 {
					continue
				}
				a.DataVersions = 1
			}
		}
		if a.DataVersions > 1 {
			if h, ok := parseObjectName(r.tenant, kindData, a.Name); ok {
				shadowed[h] = true
			}
			c.errorf("%s: %d versions (kluis writes one): another version was written over it at this location (tampering; reads use the version that matches its name)", a.Name, a.DataVersions)
		}
		if a.DeleteMarkers > 0 && a.DataVersions <= 1 && r.supersededKeyFile(a.Name) {
			// The recovery procedure of older docs said to delete the
			// lost appliance's key files: harmless, as nothing reads them.
			c.notef("%s: the lost appliance's key file, superseded by this appliance's recovery, is behind a delete marker (deleted by hand); nothing reads it", a.Name)
			continue
		}
		if a.DeleteMarkers > 0 {
			what := "an old delete marker"
			if a.Hidden {
				what = "hidden behind a delete marker"
			}
			c.errorf("%s: %s (kluis never writes one): deleted by someone else at this location (tampering; kluis reads through the marker)", a.Name, what)
		}
	}
	return shadowed
}
