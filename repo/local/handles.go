package local

import (
	"io"
	"os"
	"sync"
	"time"
)

// Ranged reads of one pack come in bursts: a restore or a row delta reads
// a table's blobs one ranged read each, most from a few packs. Opening the
// file for each read (open, fstat, close) cost as much CPU as the read, so
// recently opened objects are kept open for a moment and read with pread.
// A handle is used and kept for at most handleTTL after it was opened, so
// a file replaced behind this process's back (a repair by another kluis)
// is seen, and a deleted one's space freed, within that time; Replace and
// Delete through this Location drop it at once.
const (
	handleTTL  = time.Second
	maxHandles = 16
)

type handle struct {
	f      *os.File
	opened time.Time
	used   time.Time
	refs   int  // open readers
	gone   bool // dropped from the cache: closed when refs reaches 0
}

// handles is a Location's small cache of open files, by path.
type handles struct {
	mu sync.Mutex
	m  map[string]*handle
	// drops counts drop calls: a file opened while one ran may be the
	// object before a Replace or Delete, so get does not cache it.
	drops uint64
}

// get returns an open handle of path (a regular file), opening it with
// open when no fresh one is cached. The caller must call put when done.
func (hs *handles) get(path string, open func() (*os.File, error)) (*handle, error) {
	now := time.Now()
	hs.mu.Lock()
	if h, ok := hs.m[path]; ok && now.Sub(h.opened) < handleTTL {
		h.refs++
		h.used = now
		hs.mu.Unlock()
		return h, nil
	}
	drops := hs.drops
	hs.mu.Unlock()
	f, err := open()
	if err != nil {
		return nil, err
	}
	h := &handle{f: f, opened: now, used: now, refs: 1}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.drops != drops {
		// A Replace or Delete ran while the file was opened: this read
		// may see the object before it (it is authenticated, so at worst
		// it fails and is read again), but later reads must not.
		h.gone = true
		return h, nil
	}
	// Closed at handleTTL whether or not it is used again (at the last
	// reader's put if one is reading): a file deleted by another process
	// (prune) does not keep its disk space.
	time.AfterFunc(handleTTL, func() { hs.expire(path, h) })
	if hs.m == nil {
		hs.m = map[string]*handle{}
	}
	if old, ok := hs.m[path]; ok {
		hs.dropLocked(path, old)
	}
	hs.m[path] = h
	if len(hs.m) > maxHandles {
		hs.evictLocked(now)
	}
	return h, nil
}

// put releases a handle get returned.
func (hs *handles) put(h *handle) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.refs--
	if h.refs == 0 && h.gone {
		h.f.Close()
	}
}

// expire drops h if it is still path's handle.
func (hs *handles) expire(path string, h *handle) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m[path] == h {
		hs.dropLocked(path, h)
	}
}

// drop forgets path's handle (the object was replaced or deleted).
func (hs *handles) drop(path string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.drops++
	if h, ok := hs.m[path]; ok {
		hs.dropLocked(path, h)
	}
}

func (hs *handles) dropLocked(path string, h *handle) {
	delete(hs.m, path)
	h.gone = true
	if h.refs == 0 {
		h.f.Close()
	}
}

// evictLocked drops expired handles, then the least recently used, until
// at most maxHandles are cached.
func (hs *handles) evictLocked(now time.Time) {
	for p, h := range hs.m {
		if now.Sub(h.opened) >= handleTTL {
			hs.dropLocked(p, h)
		}
	}
	for len(hs.m) > maxHandles {
		var oldest string
		var at time.Time
		for p, h := range hs.m {
			if oldest == "" || h.used.Before(at) {
				oldest, at = p, h.used
			}
		}
		hs.dropLocked(oldest, hs.m[oldest])
	}
}

// rangeReader reads length bytes from offset of a cached handle.
type rangeReader struct {
	hs   *handles
	h    *handle
	off  int64
	end  int64
	done bool
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, os.ErrClosed
	}
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.h.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err != nil && n > 0 && r.off < r.end {
		err = nil // a short read: the next Read reports what is wrong
	}
	if err == nil && r.off >= r.end {
		return n, nil
	}
	return n, err
}

func (r *rangeReader) Close() error {
	if !r.done {
		r.done = true
		r.hs.put(r.h)
	}
	return nil
}
