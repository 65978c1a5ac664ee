package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the object, snapshot or repository does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: an object fails its integrity check.
	ErrCorrupt = errors.New("corrupt")
	// ErrWrongKey: the key material does not open this repository.
	ErrWrongKey = errors.New("wrong key")
	// ErrRetained: a Delete refused because the object is under Object
	// Lock retention that has not ended; prune skips such objects.
	ErrRetained = errors.New("under retention")
	// ErrForeign: a location holds, under the tenant's prefix, a
	// repository config that is not this repository's (planted by someone
	// holding that location's credential, or another installation's).
	ErrForeign = errors.New("foreign repository at this prefix")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Location is one place that stores repositories: a local directory, an S3
// bucket. Object names are slash-separated relative paths ("praktijk-a/
// data/3f/3f…"). Every object is written once: names are content addresses
// (or, for "config", written once at init), so Put never replaces an
// existing object and may be repeated safely.
//
// Implementations must be safe for concurrent use. The contract is tested
// once, for every implementation, by repo/locationtest.
type Location interface {
	// Name is the location's name from the config.
	Name() string
	// Put stores data under name unless an object of that name exists, in
	// which case it returns nil without writing (the existing object is
	// verified by check, not here). The object is durable when Put returns.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns length bytes from offset (length < 0: to the end). A
	// missing object is ErrNotFound.
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's size. A missing object is ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List calls fn for every object whose name starts with prefix, in no
	// particular order. Incomplete uploads are not listed.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, name string) error
}

// Unwrapper is a Location decorator (repo/deadline) that exposes the
// location it decorates, so that a backend's extras (ExtendRetention,
// RemoveStale, Create, Probe) stay reachable through it.
type Unwrapper interface {
	Unwrap() Location
}

// As returns the first location in l's chain of decorators (l itself
// first) that implements T.
func As[T any](l Location) (T, bool) {
	for l != nil {
		if t, ok := l.(T); ok {
			return t, true
		}
		u, ok := l.(Unwrapper)
		if !ok {
			break
		}
		l = u.Unwrap()
	}
	var zero T
	return zero, false
}

// ReadAll reads a whole object of at most max bytes.
func ReadAll(ctx context.Context, loc Location, name string, max int64) ([]byte, error) {
	rc, err := loc.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s at %s: larger than %d bytes: %w", name, loc.Name(), max, ErrCorrupt)
	}
	return data, nil
}
