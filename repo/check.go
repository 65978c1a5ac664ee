package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/chunk"
)

// CheckOptions select what Check verifies.
type CheckOptions struct {
	// ReadData reads every pack, verifies its SHA-256 against its name,
	// decrypts its header and every blob.
	ReadData bool
	// Locations limits the check to these location names (empty: all).
	Locations []string
	// Progress, when set, is called after every pack read with ReadData.
	Progress func(location string, done, total int)
	// ReadDataSample, when set with ReadData, reads only the packs it
	// selects (the daemon's rolling verify reads a slice a night).
	ReadDataSample func(pack Hash) bool
}

// LocationCheck is the verdict on one location, proven on its own: nothing
// read from another location counts.
type LocationCheck struct {
	Location  string   `json:"location"`
	Snapshots int      `json:"snapshots"`
	Indexes   int      `json:"indexes"`
	Packs     int      `json:"packs"`
	PacksRead int      `json:"packs_read"`
	BytesRead int64    `json:"bytes_read"`
	Errors    []string `json:"errors,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	// Notes are findings that need nothing done: the key files a recovery
	// superseded (kept by Object Lock, docs/ops.md "Keys and recovery").
	Notes []string `json:"notes,omitempty"`
	// Damaged are the objects here that do not open (also in Errors):
	// damaged, or planted (Planted). Other locations' copies are read
	// around them and they are never copied.
	Damaged []Damage `json:"damaged,omitempty"`
}

// OK reports whether the location passed.
func (c *LocationCheck) OK() bool { return len(c.Errors) == 0 }

func (c *LocationCheck) errorf(format string, args ...any) {
	c.Errors = append(c.Errors, fmt.Sprintf(format, args...))
}

func (c *LocationCheck) warnf(format string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...))
}

func (c *LocationCheck) notef(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// Check verifies the repository at each selected location independently.
// It returns one verdict per location; the error is only for a check that
// could not run.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) ([]LocationCheck, error) {
	var locs []Location
	for _, l := range r.locs {
		if len(opts.Locations) == 0 || containsString(opts.Locations, l.Name()) {
			locs = append(locs, l)
		}
	}
	for _, name := range opts.Locations {
		found := false
		for _, l := range r.locs {
			found = found || l.Name() == name
		}
		if !found {
			return nil, fmt.Errorf("no location %q", name)
		}
	}
	// Every location's snapshots are compared with the ledger and with
	// the other locations' listings: a snapshot erased at one location is
	// an error there, even though what is left there is consistent.
	pres, err := r.Presence(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]LocationCheck, len(locs))
	for i, l := range locs {
		out[i] = r.checkLocation(ctx, l, opts)
		checkHistory(&out[i], pres)
		sort.Strings(out[i].Errors)
		sort.Strings(out[i].Warnings)
		sort.Strings(out[i].Notes)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Repo) checkLocation(ctx context.Context, l Location, opts CheckOptions) LocationCheck {
	c := LocationCheck{Location: l.Name()}
	t := r.tenant

	// config and key files
	cb, err := ReadAll(ctx, l, t+"/"+kindConfig, maxConfig)
	switch {
	case err != nil:
		c.errorf("%s/config: %v", t, err)
	case Hash(sha256.Sum256(cb)).String() != r.key.ConfigSHA256:
		c.errorf("%s/config: content differs from what the key file binds (edited, damaged, or planted under the tenant's id)", t)
	}
	keys, err := r.listNames(ctx, l, kindKeys)
	if err != nil {
		c.errorf("list %s/keys: %v", t, err)
		return c
	}
	opened := false
	for h := range keys {
		name := objectName(t, kindKeys, h)
		kb, err := ReadAll(ctx, l, name, maxKeyFile)
		if err != nil {
			c.errorf("%s: %v", name, err)
			continue
		}
		if sha256.Sum256(kb) != h {
			c.errorf("%s: content does not match its name (damaged)", name)
			continue
		}
		if _, err := decodeKeyFileEnvelope(kb); err != nil {
			c.errorf("%s: %v", name, err)
			continue
		}
		r.checkKeyFile(&c, name, kb)
		opened = opened || name == r.keyName
	}
	if !opened {
		c.errorf("%s/keys: the key file in use (%s) is missing or damaged here", t, r.keyName)
	}

	// indexes, read from this location only; one that a live index here
	// supersedes is ignored, as every reader ignores it
	idxNames, err := r.listNames(ctx, l, kindIndex)
	if err != nil {
		c.errorf("list %s/index: %v", t, err)
		return c
	}
	c.Indexes = len(idxNames)
	local := newIndex()
	idxObjs := map[Hash]*indexObject{}
	superseded := map[Hash]bool{}
	for h := range idxNames {
		v, err := r.checkRead(ctx, l, &c, kindIndex, h)
		if err != nil {
			continue
		}
		x := v.(*indexObject)
		idxObjs[h] = x
		for _, s := range x.Supersedes {
			if s != h {
				superseded[s] = true
			}
		}
	}
	for h, x := range idxObjs {
		if superseded[h] {
			c.warnf("index %s is superseded (put back, kept by Object Lock, or a re-sealed backup's old index not deleted yet) and ignored; prune removes it", h.Short())
			continue
		}
		local.addAll(x.Packs)
	}

	packs, err := r.listNames(ctx, l, kindData)
	if err != nil {
		c.errorf("list %s/data: %v", t, err)
		return c
	}
	c.Packs = len(packs)

	// snapshots: every blob indexed here, in a pack present here and big
	// enough to hold it
	snaps, err := r.listNames(ctx, l, kindSnapshot)
	if err != nil {
		c.errorf("list %s/snapshots: %v", t, err)
		return c
	}
	c.Snapshots = len(snaps)
	shadowed := r.checkVersions(ctx, l, &c)
	referenced := map[Hash]bool{}
	// users names, per pack, up to three snapshot streams (or chain links
	// of a row delta) that need it, for --read-data's damage reports.
	users := map[Hash][]string{}
	for h := range snaps {
		mv, err := r.checkRead(ctx, l, &c, kindSnapshot, h)
		if err != nil {
			continue
		}
		missing := 0
		var example string
		m := mv.(*Manifest)
		for _, s := range m.StreamsAndDictionary() {
			parts := s.Parts()
			for _, ri := range s.RowIndexes() {
				parts = append(parts, StreamPart{What: "row index", Blobs: ri.Blobs})
				if len(ri.Pages) > 0 {
					parts = append(parts, StreamPart{What: "row index pages", Blobs: ri.Pages})
				}
			}
			for _, part := range parts {
				where := "stream " + s.Name
				if part.What != "" {
					// a row delta's chain: name the snapshot that wrote the part
					where += " (" + part.What + ")"
				}
				for _, id := range part.Blobs {
					cands := local.Candidates(id)
					if len(cands) == 0 {
						missing++
						example = fmt.Sprintf("blob %s of %s is in no index here", id, where)
						continue
					}
					// any candidate stored here, whole, will do
					var problem string
					for _, bl := range cands {
						size, ok := packs[bl.Pack]
						switch {
						case !ok:
							problem = fmt.Sprintf("pack %s (%s) is missing", bl.Pack, where)
						case int64(bl.Offset)+int64(bl.Length) > size && !shadowed[bl.Pack]:
							problem = fmt.Sprintf("pack %s is shorter (%d bytes) than its index says (truncated)", bl.Pack, size)
						default:
							problem = ""
						}
						if problem == "" {
							referenced[bl.Pack] = true
							if u := users[bl.Pack]; len(u) < 3 {
								who := fmt.Sprintf("snapshot %s %s", h.Short(), where)
								if len(u) == 0 || u[len(u)-1] != who {
									users[bl.Pack] = append(u, who)
								}
							}
							break
						}
					}
					if problem != "" {
						missing++
						example = problem
					}
				}
			}
		}
		if missing > 0 {
			c.errorf("snapshot %s: %d blobs unavailable here, e.g. %s", h.Short(), missing, example)
		}
	}
	byPack := local.byPack()
	orphans := 0
	for h := range packs {
		if _, ok := byPack[h]; !ok {
			orphans++
		}
	}
	if orphans > 0 {
		c.warnf("%d packs are in no index (left by an interrupted backup, or the old packs of a re-seal; prune removes them)", orphans)
	}
	for h := range byPack {
		if _, ok := packs[h]; !ok && !referenced[h] {
			c.warnf("pack %s is indexed but not stored here, and no snapshot here needs it", h.Short())
		}
	}

	if opts.ReadData {
		r.checkPackData(ctx, l, &c, packs, byPack, users, opts)
	}
	sort.Strings(c.Errors)
	return c
}

func (r *Repo) checkPackData(ctx context.Context, l Location, c *LocationCheck, packs map[Hash]int64, byPack map[Hash][]BlobEntry, users map[Hash][]string, opts CheckOptions) {
	names := make([]Hash, 0, len(packs))
	for h := range packs {
		if opts.ReadDataSample == nil || opts.ReadDataSample(h) {
			names = append(names, h)
		}
	}
	sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() })
	var buf []byte
	for i, h := range names {
		if ctx.Err() != nil {
			return
		}
		name := objectName(r.tenant, kindData, h)
		data, err := ReadAll(ctx, l, name, r.maxPackObject())
		if _, versioned := As[VersionedLocation](l); versioned && err == nil && sha256.Sum256(data) != h {
			// Shadowed by a newer version: check the one that matches.
			if good, verr := readContent(ctx, l, name, r.maxPackObject(), h); verr == nil {
				data = good
			}
		}
		if opts.Progress != nil {
			opts.Progress(l.Name(), i+1, len(names))
		}
		// needed names what the damage hits (a row delta's base names the
		// snapshot that wrote it).
		needed := func() {
			if u := users[h]; len(u) > 0 {
				c.errorf("pack %s is damaged here and needed by %s", h.Short(), strings.Join(u, "; "))
			}
		}
		if err != nil {
			c.errorf("%s: %v", name, err)
			r.noteCheckDamage(l, c, name, err)
			needed()
			continue
		}
		c.PacksRead++
		c.BytesRead += int64(len(data))
		entries, err := parsePack(r.meta, h, data)
		if err != nil {
			if sha256.Sum256(data) == h {
				err = fmt.Errorf("%w: %v: %w", errPlanted, err, ErrCorrupt)
			}
			c.errorf("%s: %v", name, err)
			r.noteCheckDamage(l, c, name, err)
			needed()
			continue
		}
		want := map[chunk.ID]BlobEntry{}
		for _, e := range byPack[h] {
			want[e.ID] = e
		}
		bad := false
		for _, e := range entries {
			if w, ok := want[e.ID]; ok && (w.Offset != e.Offset || w.Length != e.Length) {
				c.errorf("%s: blob %s: index and pack header disagree", name, e.ID)
			}
			buf, err = r.open(ctx, buf[:0], e.ID, data[e.Offset:e.Offset+e.Length])
			if err != nil {
				c.errorf("%s: %v", name, err)
				r.noteCheckDamage(l, c, name, errors.Join(err, ErrCorrupt))
				bad = true
			}
		}
		if bad {
			needed()
		}
	}
}

// checkHistory compares a location's snapshots with the ledger and the
// other locations (Presence): each expected snapshot it lacks is an error
// here, naming where a copy still is; a forgotten snapshot still listed
// here is a warning (forget did not reach this location).
func checkHistory(c *LocationCheck, p *Presence) {
	if p.LedgerErr != "" {
		c.warnf("ledger unreadable, compared with the other locations only: %s", p.LedgerErr)
	}
	set, ok := p.At[c.Location]
	if !ok {
		return // the listing error is already reported
	}
	for _, h := range p.Missing()[c.Location] {
		var when string
		if cs, ok := p.Ledger.Committed[h]; ok {
			when = fmt.Sprintf(" (committed %s)", cs.Finished.UTC().Format("2006-01-02T15:04:05Z"))
		}
		switch holders := p.Holders(h); {
		case len(holders) > 0:
			c.errorf("snapshot %s%s is missing here but held by %s (deleted or lost at this location, or not yet copied): run `kluis sync`",
				h.Short(), when, strings.Join(holders, ", "))
		default:
			c.errorf("snapshot %s%s is missing here and at every location that could be listed (the appliance's ledger records it): history was erased",
				h.Short(), when)
		}
	}
	for h := range set {
		if p.Ledger.Forgotten[h] {
			c.warnf("snapshot %s was forgotten but is still here (forget did not reach this location): run forget again", h.Short())
		}
	}
}

// checkRead reads, verifies, authenticates and decodes one sealed object
// from one location, without falling back, and reports a failure as an
// error of the location (and Damaged when the copy is there but unusable).
func (r *Repo) checkRead(ctx context.Context, l Location, c *LocationCheck, kind string, h Hash) (any, error) {
	name := objectName(r.tenant, kind, h)
	v, err := r.openAt(ctx, l, r.spec(kind), h)
	r.noteCheckDamage(l, c, name, err)
	if err != nil {
		if errors.Is(err, errPlanted) {
			c.errorf("%s: planted object: %v; remove it (it is never read or copied)", name, err)
		} else {
			c.errorf("%s: %v", name, err)
		}
	}
	return v, err
}

// noteCheckDamage records a read's outcome, and a copy that is there but
// unusable as damage of the location.
func (r *Repo) noteCheckDamage(l Location, c *LocationCheck, name string, err error) {
	r.noteRead(l, name, err)
	if errors.Is(err, ErrCorrupt) {
		for _, d := range c.Damaged {
			if d.Object == name {
				return
			}
		}
		c.Damaged = append(c.Damaged, Damage{Location: l.Name(), Object: name, Problem: err.Error(), Planted: errors.Is(err, errPlanted)})
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
