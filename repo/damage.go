package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Damage is one object at one location that kluis read around: it does not
// match its name, exceeds its kind's size cap, does not authenticate, or
// does not decode. Damage at one location is damage at that location:
// reads use another location's copy, listings skip what opens nowhere,
// nothing damaged is copied anywhere, and check names it.
type Damage struct {
	Location string `json:"location"`
	// Object is the object's name at the location ("<tenant>/index/<hex>").
	Object  string `json:"object"`
	Problem string `json:"problem"`
	// Planted: the bytes match the name, but this repository never sealed
	// them (planted random bytes, or another tenant's object).
	Planted bool `json:"planted,omitempty"`
}

// Damage returns the damaged objects this Repo has met since it was opened
// (by listing, loading the index, reading, syncing or checking), sorted by
// location and object. Daemon status and metrics show it; `kluis check`
// reports it per location.
func (r *Repo) Damage() []Damage {
	r.damageMu.Lock()
	defer r.damageMu.Unlock()
	out := make([]Damage, 0, len(r.damage))
	for _, d := range r.damage {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Location != out[j].Location {
			return out[i].Location < out[j].Location
		}
		return out[i].Object < out[j].Object
	})
	return out
}

// noteRead records the outcome of reading name at l: ErrCorrupt is damage
// there, success clears earlier damage (the object was repaired), anything
// else (missing, unreachable) says nothing about the copy.
func (r *Repo) noteRead(l Location, name string, err error) {
	key := l.Name() + "\x00" + name
	r.damageMu.Lock()
	defer r.damageMu.Unlock()
	switch {
	case err == nil:
		delete(r.damage, key)
	case errors.Is(err, ErrCorrupt):
		if r.damage == nil {
			r.damage = map[string]Damage{}
		}
		if _, seen := r.damage[key]; !seen {
			r.log.Warn("damaged object at one location; reading around it", "location", l.Name(), "object", name, "problem", err.Error())
		}
		r.damage[key] = Damage{Location: l.Name(), Object: name, Problem: err.Error(), Planted: errors.Is(err, errPlanted)}
	}
}

// readOpened reads a sealed structure (index, manifest) from the first
// location whose copy verifies, authenticates and decodes, recording the
// copies that do not. With no usable copy the error is ErrNotFound when
// every location lacks it, and ErrCorrupt otherwise, also errPlanted when
// a copy proves the object planted (its bytes match its name, so every
// genuine copy would be those bytes).
func (r *Repo) readOpened(ctx context.Context, kind string, h Hash) (any, error) {
	sp := r.spec(kind)
	name := objectName(r.tenant, kind, h)
	var problems, bad, missing []string
	notFound, planted := true, false
	for _, l := range r.locs {
		v, err := r.openAt(ctx, l, sp, h)
		r.noteRead(l, name, err)
		if err == nil {
			// Missing at a location (a degraded snapshot) is not a bad copy.
			if len(bad) > 0 {
				r.log.Warn("bad copy of object, read another location", "object", name, "location", l.Name(), "problems", strings.Join(bad, "; "))
			}
			if len(missing) > 0 {
				r.log.Debug("object not at a location, read another", "object", name, "location", l.Name(), "missing_at", strings.Join(missing, ","))
			}
			return v, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		problems = append(problems, fmt.Sprintf("%s: %v", l.Name(), err))
		if errors.Is(err, ErrNotFound) {
			missing = append(missing, l.Name())
		} else {
			bad = append(bad, fmt.Sprintf("%s: %v", l.Name(), err))
		}
		notFound = notFound && errors.Is(err, ErrNotFound)
		planted = planted || errors.Is(err, errPlanted)
	}
	switch {
	case notFound:
		return nil, fmt.Errorf("%s: missing at every location: %w", name, ErrNotFound)
	case planted:
		return nil, fmt.Errorf("%s: %s: %w: %w", name, strings.Join(problems, "; "), errPlanted, ErrCorrupt)
	}
	return nil, fmt.Errorf("%s: no good copy: %s: %w", name, strings.Join(problems, "; "), ErrCorrupt)
}

// damagedAt reports whether name is recorded as damaged at the location.
func (r *Repo) damagedAt(location, name string) bool {
	r.damageMu.Lock()
	defer r.damageMu.Unlock()
	_, ok := r.damage[location+"\x00"+name]
	return ok
}

// forgetUnlisted drops recorded damage of one kind at l for objects l no
// longer lists (an operator removed them): a Repo kept across jobs (the
// daemon) reports what is there now.
func (r *Repo) forgetUnlisted(l Location, kind string, listed map[Hash]int64) {
	r.damageMu.Lock()
	defer r.damageMu.Unlock()
	for key, d := range r.damage {
		if d.Location != l.Name() {
			continue
		}
		if h, ok := parseObjectName(r.tenant, kind, d.Object); ok {
			if _, still := listed[h]; !still {
				delete(r.damage, key)
			}
		}
	}
}
