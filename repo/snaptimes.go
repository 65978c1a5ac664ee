package repo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// snapTimes is the snapshot time cache: the start time of every manifest
// this appliance has opened, by content address. A manifest never
// changes, so its time never goes stale; FindSnapshot("latest") takes the
// newest listed name from it and opens only that manifest (and any it
// does not know). The file (CacheDir/snapshot-times-TENANT.json) carries
// an HMAC under a key derived from the tenant's blob-ID key and binds the
// repository id: an edited or foreign file is ignored, so someone who can
// write the cache directory cannot make an older snapshot "latest". A
// lost file costs one pass over the manifests.
type snapTimes struct {
	mu     sync.Mutex
	path   string
	repoID string
	key    []byte
	log    *slog.Logger
	times  map[Hash]time.Time
	loaded bool
	dirty  bool
}

type snapTimesFile struct {
	Repo  string               `json:"repo"`
	Times map[string]time.Time `json:"times"`
	MAC   string               `json:"mac"`
}

func newSnapTimes(dir, tenant, repoID string, idKey []byte, log *slog.Logger) *snapTimes {
	m := hmac.New(sha256.New, idKey)
	m.Write([]byte("kluis snapshot time cache v1"))
	t := &snapTimes{repoID: repoID, key: m.Sum(nil), log: log, times: map[Hash]time.Time{}}
	if dir != "" {
		t.path = filepath.Join(dir, "snapshot-times-"+tenant+".json")
	}
	return t
}

func (t *snapTimes) mac(f *snapTimesFile) string {
	keys := make([]string, 0, len(f.Times))
	for k := range f.Times {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(f.Repo + "\n"))
	for _, k := range keys {
		m.Write([]byte(k + " " + f.Times[k].UTC().Format(time.RFC3339Nano) + "\n"))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// load reads the file once; a missing, unreadable, edited or foreign file
// is an empty cache.
func (t *snapTimes) load() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loadLocked()
}

func (t *snapTimes) loadLocked() {
	if t.loaded || t.path == "" {
		return
	}
	t.loaded = true
	b, err := os.ReadFile(t.path)
	if err != nil {
		return
	}
	var f snapTimesFile
	if json.Unmarshal(b, &f) != nil || f.Repo != t.repoID || !hmac.Equal([]byte(f.MAC), []byte(t.mac(&f))) {
		t.log.Warn("snapshot time cache ignored: it does not authenticate", "file", t.path)
		return
	}
	for k, v := range f.Times {
		if h, err := ParseHash(k); err == nil {
			if _, ok := t.times[h]; !ok {
				t.times[h] = v
			}
		}
	}
}

func (t *snapTimes) get(h Hash) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.times[h]
	return v, ok
}

func (t *snapTimes) put(h Hash, v time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.times[h]; !ok || !old.Equal(v) {
		t.times[h] = v
		t.dirty = true
	}
}

// forget drops h and reports whether it was there.
func (t *snapTimes) forget(h Hash) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.times[h]
	if ok {
		delete(t.times, h)
		t.dirty = true
	}
	return ok
}

// save writes the file when it changed (atomically; a failure only costs
// the next command a pass over the manifests).
func (t *snapTimes) save() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty || t.path == "" {
		return
	}
	t.loadLocked() // never write over what another command cached
	f := snapTimesFile{Repo: t.repoID, Times: map[string]time.Time{}}
	for h, v := range t.times {
		f.Times[h.String()] = v.UTC()
	}
	f.MAC = t.mac(&f)
	b, err := json.Marshal(&f)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o700); err != nil {
		t.log.Debug("snapshot time cache not written", "err", err)
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(t.path), ".snapshot-times-*")
	if err != nil {
		t.log.Debug("snapshot time cache not written", "err", err)
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), t.path) != nil {
		os.Remove(tmp.Name())
		return
	}
	t.dirty = false
}

// keepOnly forgets the times of manifests no longer listed (forgotten).
func (t *snapTimes) keepOnly(listed map[Hash][]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h := range t.times {
		if _, ok := listed[h]; !ok {
			delete(t.times, h)
			t.dirty = true
		}
	}
}
