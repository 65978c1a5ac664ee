package restoretest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
)

// DefaultPackCacheBytes bounds the on-disk cache of verified packs a
// restore test keeps between the fetch and the restore (Options.PackCacheBytes).
const DefaultPackCacheBytes = 4 << 30

// rigProbeTimeout bounds the probe that tells a test rig failure (the
// location or the restore-test server gone) from a failed backup.
const rigProbeTimeout = 10 * time.Second

// packName matches a pack object's name; its last element is the SHA-256
// of its bytes.
var packName = regexp.MustCompile(`/data/[0-9a-f]{2}/([0-9a-f]{64})$`)

// rigLocation is the tested location as the restore test reads it: packs
// read whole and matching their name are kept in a bounded on-disk cache
// in the scratch directory, so the restore reads from disk what the fetch
// verified instead of reading every pack from the location a second time
// (the repository still verifies each pack against its name when it
// reads it); and the first failure that is not about an object (a
// transport error, a refused request) is noted, to name the location
// when the test could not run.
type rigLocation struct {
	repo.Location
	dir string // "" = no cache
	max int64

	mu     sync.Mutex
	used   int64
	cached map[string]string // object name -> file
	fault  error

	hits, hitBytes, misses, missBytes atomic.Int64
}

// versionedRigLocation keeps a versioned location versioned.
type versionedRigLocation struct {
	*rigLocation
	v repo.VersionedLocation
}

func (l *versionedRigLocation) ReadVersions(ctx context.Context, name string, max int64, fn func([]byte) bool) (bool, error) {
	ok, err := l.v.ReadVersions(ctx, name, max, fn)
	l.note(ctx, err)
	return ok, err
}

func (l *versionedRigLocation) VersionAnomalies(ctx context.Context, prefix string) ([]repo.VersionAnomaly, error) {
	a, err := l.v.VersionAnomalies(ctx, prefix)
	l.note(ctx, err)
	return a, err
}

// newRigLocation wraps loc; dir is the cache directory (created), "" for
// none.
func newRigLocation(loc repo.Location, dir string, max int64) (*rigLocation, repo.Location, error) {
	l := &rigLocation{Location: loc, max: max, cached: map[string]string{}}
	if dir != "" && max > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("pack cache: %w", err)
		}
		l.dir = dir
	}
	if v, ok := loc.(repo.VersionedLocation); ok {
		return l, &versionedRigLocation{l, v}, nil
	}
	return l, l, nil
}

// note keeps the first error that is not about one object.
func (l *rigLocation) note(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil || errors.Is(err, repo.ErrNotFound) || errors.Is(err, repo.ErrCorrupt) {
		return
	}
	l.mu.Lock()
	if l.fault == nil {
		l.fault = err
	}
	l.mu.Unlock()
}

func (l *rigLocation) firstFault() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fault
}

func (l *rigLocation) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	m := packName.FindStringSubmatch(name)
	whole := m != nil && offset == 0 && length < 0
	if m != nil && l.dir != "" {
		if rc := l.fromCache(name, offset, length); rc != nil {
			return rc, nil
		}
	}
	rc, err := l.Location.Get(ctx, name, offset, length)
	l.note(ctx, err)
	if err != nil || m == nil {
		return rc, err
	}
	l.misses.Add(1)
	if !whole || l.dir == "" {
		return &countingReader{ReadCloser: rc, n: &l.missBytes}, nil
	}
	return &teeCache{ReadCloser: rc, l: l, name: name, want: m[1], h: sha256.New()}, nil
}

// fromCache returns the cached pack's bytes from offset (length < 0: to
// its end), or nil when it is not cached.
func (l *rigLocation) fromCache(name string, offset, length int64) io.ReadCloser {
	l.mu.Lock()
	file, ok := l.cached[name]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || offset > fi.Size() {
		f.Close()
		return nil
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil
	}
	n := fi.Size() - offset
	if length >= 0 {
		n = min(n, length)
	}
	l.hits.Add(1)
	l.hitBytes.Add(n)
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, n), f}
}

func (l *rigLocation) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	fi, err := l.Location.Stat(ctx, name)
	l.note(ctx, err)
	return fi, err
}

func (l *rigLocation) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	err := l.Location.List(ctx, prefix, fn)
	l.note(ctx, err)
	return err
}

// reserve takes n bytes of the cache's room, if there is room.
func (l *rigLocation) reserve(n int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used+n > l.max {
		return false
	}
	l.used += n
	return true
}

func (l *rigLocation) unreserve(n int64) {
	l.mu.Lock()
	l.used -= n
	l.mu.Unlock()
}

// cacheFile is where the cache keeps the object name.
func (l *rigLocation) cacheFile(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(l.dir, hex.EncodeToString(sum[:16]))
}

// remove deletes the cache (it holds ciphertext only, but is scratch).
func (l *rigLocation) remove() {
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// teeCache passes a pack through, writing it to a temporary file in the
// cache (never holding it in memory) while the cache has room; when it
// was read to its end and its bytes match its name, the file is kept.
type teeCache struct {
	io.ReadCloser
	l    *rigLocation
	name string
	want string
	h    hash.Hash
	f    *os.File // nil: not (or no longer) being kept
	n    int64    // bytes written to f, reserved in the cache
	over bool
	done bool
}

func (t *teeCache) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.l.missBytes.Add(int64(n))
		t.h.Write(p[:n])
		t.write(p[:n])
	}
	if err == io.EOF && !t.done {
		t.done = true
		if t.f != nil && hex.EncodeToString(t.h.Sum(nil)) == t.want {
			t.keep()
		}
		t.drop()
	}
	return n, err
}

// write adds b to the temporary file, if the cache has room for it.
func (t *teeCache) write(b []byte) {
	if t.over {
		return
	}
	if t.f == nil {
		f, err := os.CreateTemp(t.l.dir, "pack-*.tmp")
		if err != nil {
			t.over = true
			return
		}
		t.f = f
	}
	if !t.l.reserve(int64(len(b))) {
		t.over = true
		t.drop()
		return
	}
	t.n += int64(len(b))
	if _, err := t.f.Write(b); err != nil {
		t.over = true
		t.drop()
	}
}

// keep moves the verified file into place.
func (t *teeCache) keep() {
	file := t.l.cacheFile(t.name)
	if t.f.Close() != nil || os.Rename(t.f.Name(), file) != nil {
		return
	}
	t.l.mu.Lock()
	if _, ok := t.l.cached[t.name]; ok { // another read kept it first
		t.l.mu.Unlock()
		return
	}
	t.l.cached[t.name] = file
	t.l.mu.Unlock()
	t.f, t.n = nil, 0
}

// drop removes a temporary file not kept and gives back its room.
func (t *teeCache) drop() {
	if t.f == nil {
		return
	}
	t.f.Close()
	os.Remove(t.f.Name())
	t.l.unreserve(t.n)
	t.f, t.n = nil, 0
}

func (t *teeCache) Close() error {
	t.drop()
	return t.ReadCloser.Close()
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// locationGone probes the tested location after a check failed: when its
// repository's config object cannot be read either, the location (not
// the backup) failed; the error says how. A fault noted during the test
// (a transport error) counts the same.
func (l *rigLocation) locationGone(ctx context.Context, tenant string) error {
	if err := l.firstFault(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rigProbeTimeout)
	defer cancel()
	_, err := l.Location.Stat(ctx, tenant+"/config")
	return err
}

// ProbeServers connects to every configured restore-test server with its
// own DSN (for `kluis config check --online`) and returns one error per
// server that refuses the login or does not answer, naming the config
// field (never the DSN, host or role). Servers that answer are checked
// further by CheckServers.
func ProbeServers(ctx context.Context, c *config.Config) []error {
	var out []error
	for _, fam := range []string{familyPostgres, familyMariaDB} {
		if serverFile(c, fam) == "" {
			continue
		}
		dsn, err := serverDSN(c, fam)
		if err == nil {
			err = probeServer(ctx, fam, dsn)
		}
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// probeServer connects to a restore-test server and says, without its
// DSN, why it cannot be used.
func probeServer(ctx context.Context, fam, dsn string) error {
	if p := serverProbe(ctx, fam, dsn); p != "" {
		return fmt.Errorf("the restore-test server (%s) %s", serverField(fam), p)
	}
	return nil
}

// serverProbe connects to a restore-test server: "" when it answers,
// else why not (serverProblem).
func serverProbe(ctx context.Context, fam, dsn string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rigProbeTimeout)
	defer cancel()
	if _, err := serverIdentity(ctx, fam, dsn); err != nil {
		return serverProblem(err)
	}
	return ""
}

// serverProblem words a failed connection to a restore-test server
// without its address, role or database (they can be in a driver's
// message): the server's error code, or what the network said.
func serverProblem(err error) string {
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	var oe *net.OpError
	switch {
	case errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
		return fmt.Sprintf("refused the login (SQLSTATE %s): wrong password or role in its DSN file", pe.Code)
	case errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044):
		return fmt.Sprintf("refused the login (error %d): wrong password or user in its DSN file", me.Number)
	case errors.As(err, &pe):
		return "answered " + reducedText(pe)
	case errors.As(err, &me):
		return "answered " + reducedText(me)
	case errors.As(err, &oe) && oe.Err != nil:
		return "does not answer: " + oe.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("does not answer within %s", rigProbeTimeout)
	}
	return "does not answer"
}

// scratchWhere names where scratch databases are made, for a cause.
func (rt *run) scratchWhere() string {
	if fam := family(rt.t.Engine); fam != "" {
		return "the restore-test server (" + serverField(fam) + ")"
	}
	return "the scratch directory (policy.restore_test.scratch_dir)"
}

// scratchProblem words why the scratch database could not be created.
func (rt *run) scratchProblem(err error) string {
	if fam := family(rt.t.Engine); fam != "" {
		if p := serverProbe(context.Background(), fam, rt.server); p != "" {
			return p
		}
	}
	return describe(err, rt.secret)
}

// readStats says where the packs came from, for the restore's detail.
func (l *rigLocation) readStats() string {
	if l == nil {
		return "no pack reads"
	}
	return fmt.Sprintf("packs read from the location: %d (%d bytes), from the verified pack cache: %d (%d bytes)",
		l.misses.Load(), l.missBytes.Load(), l.hits.Load(), l.hitBytes.Load())
}
