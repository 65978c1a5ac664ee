package repo

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/chunk"
)

// Options configure opening or creating a repository.
type Options struct {
	Master MasterKey
	// RecoveryRecipient, when set at Init, also wraps the tenant key to this
	// age X25519 recipient.
	RecoveryRecipient string
	// Chunker and PackSize apply at Init; later they are read from config.
	Chunker  chunk.Params
	PackSize int64
	Logger   *slog.Logger
	Now      func() time.Time
	// Ledger, when set, records every commit and forget (repo/ledger.go);
	// check, status and restore compare the locations with it.
	Ledger Ledger
	// Signer, when set, signs every key file this appliance writes (its
	// evidence signing key), so recovery can tell them from planted ones.
	Signer ed25519.PrivateKey
	// CacheDir, when set, keeps the snapshot time cache (snaptimes.go)
	// there, so FindSnapshot("latest") opens one manifest however many
	// there are, and the register record cache (registercache.go), so
	// RegisterRecords reads only the records it has not seen. Without it
	// the caches live as long as the Repo.
	CacheDir string
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Chunker == (chunk.Params{}) {
		o.Chunker = chunk.DefaultParams
	}
	if o.PackSize == 0 {
		o.PackSize = 16 << 20
	}
}

// Repo is one tenant's repository across its locations.
type Repo struct {
	tenant string
	cfg    *Config
	key    *TenantKey
	sealer *chunk.Sealer
	meta   *metaSealer
	locs   []Location
	log    *slog.Logger
	now    func() time.Time
	ledger Ledger

	// configBytes and keyBytes are the verified objects, copied to a
	// location that lacks them.
	configBytes []byte
	keyName     string
	keyBytes    []byte
	master      MasterKey
	// configAt holds the names of the locations whose config is known to
	// be this repository's (ensureRepoObjects).
	configAt sync.Map

	indexMu sync.Mutex
	index   *Index
	// missMu and missReloaded pace the index reads after a miss
	// (indexAfterMiss).
	missMu       sync.Mutex
	missReloaded time.Time

	packs *packCache
	times *snapTimes
	regs  *registerCache
	// budget bounds what stream readers hold ahead (SetReadBudget);
	// readDown names locations whose last ranged read failed (readOrder).
	budget   *readBudget
	readDown sync.Map

	// adIndex and adManifest are the associated data new index objects
	// and manifests are sealed under: bound to tenant and repository.
	adIndex, adManifest string

	damageMu sync.Mutex
	damage   map[string]Damage // by location and object name

	// dicts maps the zstd ID of a dictionary to the blob holding it, from
	// the manifests read (dict.go).
	dicts sync.Map
}

// Tenant returns the tenant id.
func (r *Repo) Tenant() string { return r.tenant }

// Config returns the repository config.
func (r *Repo) Config() *Config { return r.cfg }

// Locations returns the repository's locations in preference order.
func (r *Repo) Locations() []Location { return r.locs }

// FingerprintKey returns the key table fingerprints are computed with.
func (r *Repo) FingerprintKey() []byte { return r.key.FingerprintKey }

// RowIndexKey returns the key the row index hashes key values under
// (docs/format.md, "Row index"): HMAC-SHA256 of the tenant's blob-ID key
// over a fixed label, so that it is the tenant's own and no other key.
func (r *Repo) RowIndexKey() []byte {
	m := hmac.New(sha256.New, r.key.IDKey)
	m.Write([]byte("kluis row index key v1"))
	return m.Sum(nil)
}

// LocationResult is what one location did in an operation that writes to
// every location.
type LocationResult struct {
	Location string `json:"location"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	// Warnings: the operation succeeded here but found something to act
	// on (a planted key file).
	Warnings []string `json:"warnings,omitempty"`
}

// Init creates a tenant's repository at every location. It refuses when a
// repository already exists at any of them. It succeeds when at least one
// location was written; the results say which.
func Init(ctx context.Context, tenant string, locs []Location, opts Options) (*Repo, []LocationResult, error) {
	opts.fill()
	if len(locs) == 0 {
		return nil, nil, errors.New("no locations")
	}
	foreign := map[string]error{}
	for _, l := range locs {
		_, err := l.Stat(ctx, tenant+"/"+kindConfig)
		if err == nil {
			switch err := existingAt(ctx, tenant, l, opts); {
			case err == nil:
				return nil, nil, fmt.Errorf("tenant %s already has a repository at location %s", tenant, l.Name())
			case errors.Is(err, ErrForeign):
				foreign[l.Name()] = err
				opts.Logger.Warn("foreign repository config under the tenant's prefix: not initialised there", "tenant", tenant, "location", l.Name(), "err", err)
			default:
				return nil, nil, fmt.Errorf("tenant %s: location %s holds a repository this appliance cannot open: %w", tenant, l.Name(), err)
			}
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			opts.Logger.Warn("location unreachable at init", "tenant", tenant, "location", l.Name(), "err", err)
		}
	}
	if len(foreign) == len(locs) {
		return nil, nil, fmt.Errorf("tenant %s: every location holds a foreign repository config under the tenant's prefix (planted or another installation's); remove them after checking: %w", tenant, ErrForeign)
	}
	if err := opts.Chunker.Validate(); err != nil {
		return nil, nil, err
	}
	now := opts.Now()
	cfg, err := newConfig(tenant, opts.Chunker, opts.PackSize, now)
	if err != nil {
		return nil, nil, err
	}
	cb, err := cfg.encode()
	if err != nil {
		return nil, nil, err
	}
	key, err := newTenantKey(tenant, cfg.ID, sha256.Sum256(cb), now)
	if err != nil {
		return nil, nil, err
	}
	kb, err := encodeKeyFile(key, opts.Master, opts.RecoveryRecipient, opts.Signer)
	if err != nil {
		return nil, nil, err
	}
	r, err := newRepo(tenant, cfg, key, locs, opts)
	if err != nil {
		return nil, nil, err
	}
	r.configBytes, r.keyBytes = cb, kb
	r.keyName = objectName(tenant, kindKeys, sha256.Sum256(kb))
	results := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		if err := foreign[l.Name()]; err != nil {
			return err
		}
		// The key first: a location with a config but no key would look
		// like a repository nobody can open.
		return r.ensureRepoObjects(ctx, l)
	})
	if countOK(results) == 0 {
		return nil, results, fmt.Errorf("init of tenant %s failed at every location: %s", tenant, joinErrors(results))
	}
	r.index = newIndex()
	return r, results, nil
}

func newRepo(tenant string, cfg *Config, key *TenantKey, locs []Location, opts Options) (*Repo, error) {
	s, err := chunk.NewSealer(key.DataKey, key.IDKey)
	if err != nil {
		return nil, err
	}
	ms, err := newMetaSealer(key.DataKey)
	if err != nil {
		return nil, err
	}
	r := &Repo{tenant: tenant, cfg: cfg, key: key, sealer: s, meta: ms, locs: locs,
		log: opts.Logger.With("tenant", tenant), now: opts.Now, master: opts.Master, ledger: opts.Ledger}
	r.packs = newPackCache(r, 4*cfg.PackSize)
	r.budget = newReadBudget(DefaultReadBudget)
	r.times = newSnapTimes(opts.CacheDir, tenant, cfg.ID, key.IDKey, r.log)
	r.regs = newRegisterCache(opts.CacheDir, tenant, r.log)
	r.adIndex = boundAD(adIndexV2, tenant, cfg.ID)
	r.adManifest = boundAD(adManifestV2, tenant, cfg.ID)
	return r, nil
}

// Open opens a tenant's repository with the master key. It reads the
// config and key from the first location where they verify, and falls
// back to the next otherwise. A wrong master key returns ErrWrongKey; a
// tenant without a repository anywhere returns ErrNotFound.
func Open(ctx context.Context, tenant string, locs []Location, opts Options) (*Repo, error) {
	opts.fill()
	var problems, foreign []string
	wrongKey, corrupt, found := false, false, false
	notFound := 0
	for _, l := range locs {
		r, err := openAt(ctx, tenant, l, locs, opts)
		if err == nil {
			for _, p := range problems {
				r.log.Warn("repository copy unusable, used another location", "problem", p)
			}
			return r, nil
		}
		if errors.Is(err, ErrNotFound) {
			notFound++
		} else if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongKey) || errors.Is(err, errConfigUnreadable) {
			// The location answered, and nothing there opens: a
			// repository of this appliance, damaged, or a foreign config?
			if ferr := existingAt(ctx, tenant, l, opts); errors.Is(ferr, ErrForeign) {
				foreign = append(foreign, ferr.Error())
			}
		}
		if !errors.Is(err, ErrNotFound) {
			found = true
		}
		if errors.Is(err, ErrWrongKey) {
			wrongKey = true
		}
		if errors.Is(err, ErrCorrupt) {
			corrupt = true
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "location "+l.Name()+":") {
			msg = "location " + l.Name() + ": " + msg
		}
		problems = append(problems, msg)
	}
	switch {
	case len(foreign) > 0 && notFound > 0 && notFound+len(foreign) == len(locs):
		// Only configs no key file of this appliance opens, and empty
		// prefixes: a config planted under a predictable tenant id is not
		// a repository, and must not stop a new tenant's backups. Init
		// reports the foreign location and initialises the others.
		return nil, fmt.Errorf("tenant %s has no repository (%s; run `kluis init --tenant %s`): %w", tenant, strings.Join(foreign, "; "), tenant, ErrNotFound)
	case wrongKey:
		return nil, fmt.Errorf("tenant %s: %s: %w", tenant, strings.Join(problems, "; "), ErrWrongKey)
	case !found:
		return nil, fmt.Errorf("tenant %s has no repository at any location (run `kluis init --tenant %s`): %w", tenant, tenant, ErrNotFound)
	case corrupt:
		return nil, fmt.Errorf("tenant %s: no location has a usable repository: %s: %w", tenant, strings.Join(problems, "; "), ErrCorrupt)
	}
	return nil, fmt.Errorf("tenant %s: no location has a usable repository: %s", tenant, strings.Join(problems, "; "))
}

func openAt(ctx context.Context, tenant string, l Location, locs []Location, opts Options) (*Repo, error) {
	cb, err := ReadAll(ctx, l, tenant+"/"+kindConfig, maxConfig)
	if err != nil {
		return nil, err
	}
	cfg, err := decodeConfig(cb, tenant)
	if err != nil {
		return nil, fmt.Errorf("%s/config: %w%w", tenant, err, errConfigUnreadable)
	}
	var keyNames []string
	err = l.List(ctx, tenant+"/"+kindKeys+"/", func(oi ObjectInfo) error {
		keyNames = append(keyNames, oi.Name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(keyNames) == 0 {
		return nil, fmt.Errorf("%s/keys: no key file: %w", tenant, ErrCorrupt)
	}
	sort.Strings(keyNames)
	var lastErr error
	var found *Repo
	for _, name := range keyNames {
		kb, err := ReadAll(ctx, l, name, maxKeyFile)
		if err != nil {
			lastErr = err
			continue
		}
		if h, ok := parseObjectName(tenant, kindKeys, name); !ok || sha256.Sum256(kb) != h {
			lastErr = fmt.Errorf("key file %s: content does not match its name: %w", name, ErrCorrupt)
			continue
		}
		key, err := decodeKeyFile(kb, opts.Master, tenant, cfg.ID)
		if err != nil {
			lastErr = fmt.Errorf("key file %s: %w", name, err)
			continue
		}
		if sum := sha256.Sum256(cb); key.ConfigSHA256 != Hash(sum).String() {
			return nil, fmt.Errorf("%s/config: content differs from what the key file binds (edited or damaged): %w", tenant, ErrCorrupt)
		}
		if found != nil {
			// Every key file the master key opens must hold the same key:
			// two that differ mean one was planted and installed (a
			// recovery that accepted a forged key file). Refuse to choose.
			if !sameKey(found.key, key) {
				return nil, fmt.Errorf("%s/keys: key files %s and %s both open with the master key but hold different keys (one was planted): %w", tenant, found.keyName, name, ErrCorrupt)
			}
			found.key.Supersedes = unionSorted(found.key.Supersedes, key.Supersedes)
			continue
		}
		r, err := newRepo(tenant, cfg, key, reorder(locs, l), opts)
		if err != nil {
			return nil, err
		}
		r.configBytes, r.keyName, r.keyBytes = cb, name, kb
		found = r
	}
	if found != nil {
		return found, nil
	}
	return nil, lastErr
}

// reorder puts first in front, keeping the others in order.
func reorder(locs []Location, first Location) []Location {
	out := []Location{first}
	for _, l := range locs {
		if l != first {
			out = append(out, l)
		}
	}
	return out
}

// Prefer returns a view of the repository that reads from the named
// location first (restore tests prove each location in turn).
func (r *Repo) Prefer(name string) error {
	for _, l := range r.locs {
		if l.Name() == name {
			r.locs = reorder(r.locs, l)
			return nil
		}
	}
	return fmt.Errorf("no location %q", name)
}

// forEachLocation runs fn at every location in parallel.
func (r *Repo) forEachLocation(ctx context.Context, fn func(context.Context, Location) error) []LocationResult {
	return r.forLocations(ctx, r.locs, fn)
}

func (r *Repo) forLocations(ctx context.Context, locs []Location, fn func(context.Context, Location) error) []LocationResult {
	results := make([]LocationResult, len(locs))
	var wg sync.WaitGroup
	for i, l := range locs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx, l)
			results[i] = LocationResult{Location: l.Name(), OK: err == nil}
			if err != nil {
				results[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	return results
}

func countOK(rs []LocationResult) int {
	n := 0
	for _, r := range rs {
		if r.OK {
			n++
		}
	}
	return n
}

func joinErrors(rs []LocationResult) string {
	var parts []string
	for _, r := range rs {
		if !r.OK {
			parts = append(parts, r.Location+": "+r.Error)
		}
	}
	return strings.Join(parts, "; ")
}

// listNames lists the hashes of one kind of object at a location.
func (r *Repo) listNames(ctx context.Context, l Location, kind string) (map[Hash]int64, error) {
	out := map[Hash]int64{}
	err := l.List(ctx, r.tenant+"/"+kind+"/", func(oi ObjectInfo) error {
		if h, ok := parseObjectName(r.tenant, kind, oi.Name); ok {
			out[h] = oi.Size
		}
		return nil
	})
	return out, err
}

// readVerified reads a content-addressed object from the first location
// whose copy matches its name, logging the copies that did not.
func (r *Repo) readVerified(ctx context.Context, kind string, h Hash, max int64) ([]byte, error) {
	name := objectName(r.tenant, kind, h)
	var problems, bad, missing []string
	notFound := true
	for _, l := range r.locs {
		data, err := readContent(ctx, l, name, max, h)
		r.noteRead(l, name, err)
		if err == nil {
			// An object a location does not hold (a degraded snapshot, a
			// pack written while it was down) is not a bad copy: say which
			// it was, and warn only about copies that were there but wrong
			// or unreadable.
			if len(bad) > 0 {
				r.log.Warn("bad copy of object, read another location", "object", name, "location", l.Name(), "problems", strings.Join(bad, "; "))
			}
			if len(missing) > 0 {
				r.log.Debug("object not at a location, read another", "object", name, "location", l.Name(), "missing_at", strings.Join(missing, ","))
			}
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		problems = append(problems, fmt.Sprintf("%s: %v", l.Name(), err))
		if errors.Is(err, ErrNotFound) {
			missing = append(missing, l.Name())
		} else {
			bad = append(bad, fmt.Sprintf("%s: %v", l.Name(), err))
			notFound = false
		}
	}
	if notFound {
		return nil, fmt.Errorf("%s: missing at every location: %w", name, ErrNotFound)
	}
	return nil, fmt.Errorf("%s: no good copy: %s: %w", name, strings.Join(problems, "; "), ErrCorrupt)
}

// Index loads (once) the union of the index objects at every location.
func (r *Repo) Index(ctx context.Context) (*Index, error) {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	if r.index != nil {
		return r.index, nil
	}
	x, err := r.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	r.index = x
	return x, nil
}

// ReloadIndex reads the index afresh: a Repo kept across jobs (the daemon)
// must not deduplicate against packs another process pruned since.
func (r *Repo) ReloadIndex(ctx context.Context) (*Index, error) {
	x, err := r.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	r.setIndex(x)
	return x, nil
}

func (r *Repo) setIndex(x *Index) {
	r.indexMu.Lock()
	r.index = x
	r.indexMu.Unlock()
}

func (r *Repo) loadIndex(ctx context.Context) (*Index, error) {
	st, err := r.loadIndexState(ctx)
	if err != nil {
		return nil, err
	}
	return st.idx, nil
}

// indexState is what loading the index found.
type indexState struct {
	idx *Index
	// live are the index objects in use: opened, and superseded by none.
	live map[Hash]*indexObject
	// superseded are the names a live index's supersedes list holds.
	superseded map[Hash]bool
	// unopened are listed index objects with no usable copy that are not
	// proven planted (damaged everywhere, or unreadable now).
	unopened map[Hash]string
	// planted are listed objects proven planted.
	planted map[Hash]bool
	// indexes and packs are the listings, per location (nil: not listed).
	indexes, packs []map[Hash]int64
	// present are the packs listed at some location.
	present map[Hash]bool
}

// allListed reports whether every location was listed.
func (st *indexState) allListed() bool {
	for i := range st.indexes {
		if st.indexes[i] == nil || st.packs[i] == nil {
			return false
		}
	}
	return true
}

// loadIndexState lists index objects and packs at every location and
// builds the index from the live index objects: those that open at some
// location (damaged copies are read around) and that no other live index
// supersedes. An index that opens nowhere is skipped and reported, never a
// global error; a candidate in a pack listed nowhere is marked missing.
func (r *Repo) loadIndexState(ctx context.Context) (*indexState, error) {
	st := &indexState{
		live: map[Hash]*indexObject{}, superseded: map[Hash]bool{}, unopened: map[Hash]string{},
		planted: map[Hash]bool{}, present: map[Hash]bool{},
		indexes: make([]map[Hash]int64, len(r.locs)), packs: make([]map[Hash]int64, len(r.locs)),
	}
	sizes := map[Hash]int64{}
	listed, packsListed := 0, 0
	for i, l := range r.locs {
		ns, err := r.listNames(ctx, l, kindIndex)
		if err != nil {
			r.log.Warn("cannot list index objects", "location", l.Name(), "err", err)
			continue
		}
		st.indexes[i] = ns
		r.forgetUnlisted(l, kindIndex, ns)
		listed++
		for h, size := range ns {
			sizes[h] = max(sizes[h], size)
		}
		ps, err := r.listNames(ctx, l, kindData)
		if err != nil {
			r.log.Warn("cannot list packs", "location", l.Name(), "err", err)
			continue
		}
		st.packs[i] = ps
		r.forgetUnlisted(l, kindData, ps)
		packsListed++
		for h := range ps {
			st.present[h] = true
		}
	}
	if listed == 0 {
		return nil, fmt.Errorf("tenant %s: no location could be listed", r.tenant)
	}
	// Largest first: compacted indexes, whose supersedes lists spare
	// reading the objects they replaced.
	names := make([]Hash, 0, len(sizes))
	for h := range sizes {
		names = append(names, h)
	}
	sort.Slice(names, func(i, j int) bool {
		if sizes[names[i]] != sizes[names[j]] {
			return sizes[names[i]] > sizes[names[j]]
		}
		return names[i].String() < names[j].String()
	})
	opened := map[Hash]*indexObject{}
	for _, h := range names {
		if st.superseded[h] {
			continue
		}
		v, err := r.readOpened(ctx, kindIndex, h)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, errPlanted) {
				st.planted[h] = true
			} else {
				st.unopened[h] = err.Error()
			}
			r.log.Warn("index object skipped: no location has a copy that opens", "index", h.String(), "err", err)
			continue
		}
		x := v.(*indexObject)
		opened[h] = x
		for _, s := range x.Supersedes {
			if s != h {
				st.superseded[s] = true
			}
		}
	}
	idx := newIndex()
	for h, x := range opened {
		if st.superseded[h] {
			continue
		}
		st.live[h] = x
		idx.addAll(x.Packs)
	}
	if packsListed > 0 {
		idx.setPresent(st.present)
	}
	idx.superseded = st.superseded
	for h, problem := range st.unopened {
		idx.unopened = append(idx.unopened, fmt.Sprintf("index %s: %s", h, problem))
	}
	sort.Strings(idx.unopened)
	st.idx = idx
	return st, nil
}

// SnapshotInfo is a snapshot and the locations that hold it.
type SnapshotInfo struct {
	ID        Hash
	Manifest  *Manifest
	Locations []string
}

// Snapshots lists every snapshot at any location, oldest first, with the
// locations where each is committed. A manifest that no location can
// provide intact is skipped and reported (Damage), never a global error:
// one location's damage must not hide the other's snapshots.
func (r *Repo) Snapshots(ctx context.Context) ([]SnapshotInfo, error) {
	st, err := r.snapshotState(ctx)
	if err != nil {
		return nil, err
	}
	return st.snaps, nil
}

// snapshotState is what listing snapshots found.
type snapshotState struct {
	snaps     []SnapshotInfo
	unopened  map[Hash]string
	planted   map[Hash]bool
	allListed bool
}

func (r *Repo) snapshotState(ctx context.Context) (*snapshotState, error) {
	return r.snapshotStateOf(ctx, func(map[Hash][]string) {})
}

// listSnapshots lists the manifests at every location: where each is.
func (r *Repo) listSnapshots(ctx context.Context, st *snapshotState) (map[Hash][]string, error) {
	where := map[Hash][]string{}
	listed := 0
	for _, l := range r.locs {
		ns, err := r.listNames(ctx, l, kindSnapshot)
		if err != nil {
			r.log.Warn("cannot list snapshots", "location", l.Name(), "err", err)
			st.allListed = false
			continue
		}
		listed++
		r.forgetUnlisted(l, kindSnapshot, ns)
		for h := range ns {
			where[h] = append(where[h], l.Name())
		}
	}
	if listed == 0 {
		return nil, fmt.Errorf("tenant %s: no location could be listed", r.tenant)
	}
	return where, nil
}

// snapshotStateOf lists the snapshots and opens those that narrow leaves
// in where.
func (r *Repo) snapshotStateOf(ctx context.Context, narrow func(where map[Hash][]string)) (*snapshotState, error) {
	st := &snapshotState{unopened: map[Hash]string{}, planted: map[Hash]bool{}, allListed: true}
	where, err := r.listSnapshots(ctx, st)
	if err != nil {
		return nil, err
	}
	narrow(where)
	st.snaps = make([]SnapshotInfo, 0, len(where))
	for h, ls := range where {
		m, err := r.LoadManifest(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, errPlanted) {
				st.planted[h] = true
			} else {
				st.unopened[h] = err.Error()
			}
			r.log.Warn("snapshot skipped: no location has a copy that opens", "snapshot", h.String(), "err", err)
			continue
		}
		r.times.put(h, m.Started)
		// A location whose copy is damaged does not hold the snapshot.
		var good []string
		for _, name := range ls {
			if !r.damagedAt(name, objectName(r.tenant, kindSnapshot, h)) {
				good = append(good, name)
			}
		}
		sort.Strings(good)
		st.snaps = append(st.snaps, SnapshotInfo{ID: h, Manifest: m, Locations: good})
	}
	sort.Slice(st.snaps, func(i, j int) bool {
		a, b := st.snaps[i].Manifest, st.snaps[j].Manifest
		if !a.Started.Equal(b.Started) {
			return a.Started.Before(b.Started)
		}
		return st.snaps[i].ID.String() < st.snaps[j].ID.String()
	})
	r.times.save()
	return st, nil
}

// findState is snapshotState narrowed to what FindSnapshot(ref) needs:
// the manifests whose names match a prefix, or, for "latest", the newest
// by the time cache together with every manifest the cache does not know
// (opened, so their times are known from then on). The newest that opens
// is returned; one that does not open is left out and the next tried.
func (r *Repo) findState(ctx context.Context, ref string) (*snapshotState, error) {
	if ref != "" && ref != "latest" {
		prefix := strings.ToLower(ref)
		return r.snapshotStateOf(ctx, func(where map[Hash][]string) {
			for h := range where {
				if !strings.HasPrefix(h.String(), prefix) {
					delete(where, h)
				}
			}
		})
	}
	r.times.load()
	for {
		st, err := r.snapshotStateOf(ctx, func(where map[Hash][]string) {
			var newest Hash
			var newestT time.Time
			found := false
			for h := range where {
				t, ok := r.times.get(h)
				if !ok {
					continue // unknown: opened below
				}
				if !found || t.After(newestT) || t.Equal(newestT) && h.String() > newest.String() {
					newest, newestT, found = h, t, true
				}
			}
			r.times.keepOnly(where)
			for h := range where {
				if _, known := r.times.get(h); known && h != newest {
					delete(where, h)
				}
			}
		})
		if err != nil {
			return nil, err
		}
		// The cached newest did not open: forget its time and look again.
		retry := false
		for h := range st.unopened {
			if r.times.forget(h) {
				retry = true
			}
		}
		for h := range st.planted {
			if r.times.forget(h) {
				retry = true
			}
		}
		if !retry {
			return st, nil
		}
	}
}

// LoadManifest reads, authenticates and decodes a snapshot manifest from
// the first location whose copy opens.
func (r *Repo) LoadManifest(ctx context.Context, id Hash) (*Manifest, error) {
	v, err := r.readOpened(ctx, kindSnapshot, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return v.(*Manifest), nil
}

// FindSnapshot resolves "latest", a full ID or a unique prefix of at least
// 4 hex digits. Its cost does not grow with the number of snapshots: it
// lists the manifests' names and opens only the one it returns (for
// "latest", the start times of the others come from the snapshot time
// cache, Options.CacheDir; a manifest not in it is opened once).
func (r *Repo) FindSnapshot(ctx context.Context, ref string) (SnapshotInfo, error) {
	if ref != "" && ref != "latest" && len(ref) < 4 {
		return SnapshotInfo{}, fmt.Errorf("snapshot %q: give at least 4 hex digits or \"latest\"", ref)
	}
	st, err := r.findState(ctx, ref)
	if err != nil {
		return SnapshotInfo{}, err
	}
	snaps := st.snaps
	if len(snaps) == 0 {
		if len(st.unopened) > 0 {
			return SnapshotInfo{}, fmt.Errorf("tenant %s has no snapshot that opens: %s: %w", r.tenant, describeUnopened(st.unopened), ErrCorrupt)
		}
		return SnapshotInfo{}, fmt.Errorf("tenant %s has no snapshots: %w", r.tenant, ErrNotFound)
	}
	if ref == "" || ref == "latest" {
		if len(st.unopened) > 0 {
			// Its time is unknown: it may be newer than the one returned.
			r.log.Warn("latest is the newest snapshot that opens; some manifests open at no location (run check)",
				"snapshot", snaps[len(snaps)-1].ID.String(), "unopened", len(st.unopened))
		}
		return snaps[len(snaps)-1], nil
	}
	if len(ref) < 4 {
		return SnapshotInfo{}, fmt.Errorf("snapshot %q: give at least 4 hex digits or \"latest\"", ref)
	}
	var found []SnapshotInfo
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), strings.ToLower(ref)) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		for h, problem := range st.unopened {
			if strings.HasPrefix(h.String(), strings.ToLower(ref)) {
				return SnapshotInfo{}, fmt.Errorf("tenant %s: snapshot %s opens at no location: %s: %w", r.tenant, ref, problem, ErrCorrupt)
			}
		}
		return SnapshotInfo{}, fmt.Errorf("tenant %s has no snapshot %s: %w", r.tenant, ref, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return SnapshotInfo{}, fmt.Errorf("snapshot %q is ambiguous (%d match): give more digits", ref, len(found))
}

// describeUnopened lists objects that opened nowhere, for an error.
func describeUnopened(m map[Hash]string) string {
	var parts []string
	for _, problem := range m {
		parts = append(parts, problem)
	}
	sort.Strings(parts)
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return strings.Join(parts, "; ")
}
