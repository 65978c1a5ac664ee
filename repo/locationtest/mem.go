package locationtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// MemLocation is a repo.Location held in memory, for fast tests. It keeps
// the whole contract (Run checks it), and adds a few methods only a test
// needs: reading and replacing the stored bytes behind the repository's
// back, as a damaged disk or a hostile provider would.
type MemLocation struct {
	name string

	mu   sync.RWMutex
	objs map[string]memObject
}

type memObject struct {
	data    []byte
	modTime time.Time
}

// NewMemLocation returns an empty location.
func NewMemLocation(name string) *MemLocation {
	return &MemLocation{name: name, objs: map[string]memObject{}}
}

// Name returns the location's name.
func (m *MemLocation) Name() string { return m.name }

// CheckName reports whether name is a valid object name: a relative,
// slash-separated path without empty, "." or ".." parts or backslashes.
// Every Location must refuse the names it refuses.
func CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("invalid object name %q", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid object name %q", name)
		}
	}
	return nil
}

func (m *MemLocation) check(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("location %s: %w", m.name, err)
	}
	return ctx.Err()
}

// Put stores a copy of data unless name exists.
func (m *MemLocation) Put(ctx context.Context, name string, data []byte) error {
	if err := m.check(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[name]; ok {
		return nil
	}
	m.objs[name] = memObject{data: bytes.Clone(data), modTime: time.Now()}
	return nil
}

// Get returns a copy of a byte range.
func (m *MemLocation) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := m.check(ctx, name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("location %s: %s: negative offset", m.name, name)
	}
	m.mu.RLock()
	o, ok := m.objs[name]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("location %s: %s: %w", m.name, name, repo.ErrNotFound)
	}
	d := o.data
	if offset >= int64(len(d)) {
		d = nil
	} else {
		d = d[offset:]
	}
	if length >= 0 && length < int64(len(d)) {
		d = d[:length]
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(d))), nil
}

// Stat returns an object's size and time of writing.
func (m *MemLocation) Stat(ctx context.Context, name string) (repo.ObjectInfo, error) {
	if err := m.check(ctx, name); err != nil {
		return repo.ObjectInfo{}, err
	}
	m.mu.RLock()
	o, ok := m.objs[name]
	m.mu.RUnlock()
	if !ok {
		return repo.ObjectInfo{}, fmt.Errorf("location %s: %s: %w", m.name, name, repo.ErrNotFound)
	}
	return repo.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

// List calls fn for every object whose name starts with prefix, in name
// order. fn may call the location's other methods.
func (m *MemLocation) List(ctx context.Context, prefix string, fn func(repo.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	var infos []repo.ObjectInfo
	for name, o := range m.objs {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, repo.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	m.mu.RUnlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	for _, oi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("location %s: list %s: %w", m.name, prefix, err)
		}
		if err := fn(oi); err != nil {
			return fmt.Errorf("location %s: list %s: %w", m.name, prefix, err)
		}
	}
	return nil
}

// Delete removes an object; a missing object is not an error.
func (m *MemLocation) Delete(ctx context.Context, name string) error {
	if err := m.check(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objs, name)
	m.mu.Unlock()
	return nil
}

// Bytes returns a copy of an object's bytes.
func (m *MemLocation) Bytes(name string) ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	o, ok := m.objs[name]
	return bytes.Clone(o.data), ok
}

// Replace overwrites (or creates) an object, which Put never does: it is
// how a test damages a stored object.
func (m *MemLocation) Replace(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = memObject{data: bytes.Clone(data), modTime: time.Now()}
}

// Remove deletes an object behind the repository's back (a lost object).
func (m *MemLocation) Remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, name)
}

// Names returns the names of every object, sorted.
func (m *MemLocation) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.objs))
	for name := range m.objs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Size returns the total bytes stored.
func (m *MemLocation) Size() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var n int64
	for _, o := range m.objs {
		n += int64(len(o.data))
	}
	return n
}
