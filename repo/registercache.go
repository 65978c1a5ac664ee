package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// registerCache keeps the sealed register records this appliance has read
// or written, so that reading a tenant's register (RegisterRecords, which
// every dossier and erasure command runs, twice) reads from the locations
// only the records it has not seen (docs/format.md, "Register record
// cache"). The file, CacheDir/register-records-TENANT, holds the records
// exactly as they are stored at a location: sealed under the tenant's
// data key, so it holds nothing a location does not.
//
// It is only ever an optimisation and never decides anything: the
// listing of the locations says which records exist (a record deleted
// there is not brought back from the cache), and a cached copy is used
// for a listed name only when its SHA-256 is that name, so it is
// byte-for-byte the object at the location; it must still open under
// the tenant's key like a fresh read. Whoever edits, renames, swaps or
// pads the file gets copies that match no listed name (read again from
// the locations, and the file rewritten); a missing or unwritable cache
// directory costs the reads, with a warning.
type registerCache struct {
	path string // "": in memory only
	log  *slog.Logger

	mu sync.Mutex
	// sealed holds records whose SHA-256 is their key, read from the file
	// and not yet opened, or not yet in the file; plain the plaintext of
	// records opened under the tenant's key, by name (in memory only).
	sealed map[Hash][]byte
	plain  map[Hash][]byte
	// inFile names the records the file holds (as far as this process
	// knows); rewrite is set when it holds damage or stale copies.
	inFile  map[Hash]bool
	loaded  bool
	rewrite bool
	warned  bool
}

// registerCacheMagic starts the file; a file that does not start with it
// is ignored and rewritten.
const registerCacheMagic = "kluis register record cache v1\n"

func newRegisterCache(dir, tenant string, log *slog.Logger) *registerCache {
	c := &registerCache{log: log, sealed: map[Hash][]byte{}, plain: map[Hash][]byte{}, inFile: map[Hash]bool{}}
	if dir != "" {
		c.path = filepath.Join(dir, "register-records-"+tenant)
	}
	return c
}

// load reads the file once, keeping the copies of the listed records: a
// copy is kept under the SHA-256 of its bytes, so one that was edited
// or belongs to another tenant matches no listed name. A missing file is
// an empty cache; a damaged one (not the format, a torn frame) or one
// holding many copies of records not listed is rewritten at the next
// save.
func (c *registerCache) load(listed map[Hash]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded || c.path == "" {
		return
	}
	c.loaded = true
	f, err := os.OpenFile(c.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		c.warnLocked("register record cache not read: reading every record from the locations", err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		c.warnLocked("register record cache ignored: not a regular file", err)
		return
	}
	// An append holds an exclusive lock: a shared one means no frame is
	// read half written.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		c.warnLocked("register record cache not read: reading every record from the locations", err)
		return
	}
	stale, damaged := c.readFramesLocked(bufio.NewReaderSize(f, 64<<10), listed)
	if damaged {
		c.log.Warn("register record cache damaged: records not in it are read from the locations, and it is rewritten", "file", c.path)
	}
	c.rewrite = damaged || stale > len(listed)/4+16
}

// readFramesLocked reads the file's frames, returning the number of
// copies of records not listed and whether the file is damaged.
func (c *registerCache) readFramesLocked(rd *bufio.Reader, listed map[Hash]bool) (stale int, damaged bool) {
	magic := make([]byte, len(registerCacheMagic))
	if _, err := io.ReadFull(rd, magic); err != nil || string(magic) != registerCacheMagic {
		return 0, true
	}
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			return stale, err != io.EOF
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxRegisterObject {
			return stale, true
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return stale, true
		}
		h := Hash(sha256.Sum256(b))
		if !listed[h] || c.inFile[h] {
			stale++
			// A file padded with what is not listed is not read to
			// its end.
			if stale > len(listed)+64 {
				return stale, true
			}
			continue
		}
		c.inFile[h] = true
		if _, ok := c.plain[h]; !ok {
			c.sealed[h] = b
		}
	}
}

// get returns the plaintext of record h when it was opened before, or
// its sealed bytes when the cache holds a copy (whose SHA-256 is h).
func (c *registerCache) get(h Hash) (plain, sealed []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.plain[h]; ok {
		return p, nil
	}
	return nil, c.sealed[h]
}

// opened keeps plain as the plaintext of record h, whose sealed bytes
// are in the cache or, when sealed is not nil, were read from a
// location (or written there) and go into the file at the next save.
func (c *registerCache) opened(h Hash, plain, sealed []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plain[h] = plain
	if sealed != nil && !c.inFile[h] {
		c.sealed[h] = sealed
	} else if !c.rewrite {
		delete(c.sealed, h) // in the file: the plaintext is enough
	}
}

// drop forgets the cached copy of h (it did not open): it is read from
// the locations instead.
func (c *registerCache) drop(h Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sealed, h)
	if c.inFile[h] {
		delete(c.inFile, h)
		c.rewrite = true
	}
}

// save brings the file up to date: the records not in it yet are
// appended, or, when it is damaged or stale, it is replaced by the
// records listed (listed nil: append only). A failure costs the next
// command the reads, and is logged once.
func (c *registerCache) save(listed map[Hash]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" {
		return
	}
	var err error
	if c.rewrite && listed != nil {
		err = c.rewriteLocked(listed)
	} else {
		err = c.appendLocked()
	}
	if err != nil {
		c.warnLocked("register record cache not written: the next command reads the new records from the locations", err)
	}
}

// appendLocked appends the frames of the records not in the file under
// an exclusive lock (a file that does not exist is created).
func (c *registerCache) appendLocked() error {
	var buf bytes.Buffer
	var added []Hash
	for h, b := range c.sealed {
		if !c.inFile[h] {
			added = append(added, h)
			appendFrame(&buf, b)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", c.path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	data := buf.Bytes()
	if fi.Size() == 0 {
		data = append([]byte(registerCacheMagic), data...)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	c.markInFileLocked(added)
	return nil
}

// rewriteLocked replaces the file by the listed records held (a
// temporary file renamed into place: a reader sees the old file or the
// new one).
func (c *registerCache) rewriteLocked(listed map[Hash]bool) error {
	var buf bytes.Buffer
	buf.WriteString(registerCacheMagic)
	var kept []Hash
	for h, b := range c.sealed {
		if listed[h] {
			kept = append(kept, h)
			appendFrame(&buf, b)
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".register-records-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(buf.Bytes())
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.inFile = map[Hash]bool{}
	c.markInFileLocked(kept)
	c.rewrite = false
	return nil
}

// markInFileLocked notes that the file holds hs: their sealed bytes are
// no longer needed once opened.
func (c *registerCache) markInFileLocked(hs []Hash) {
	for _, h := range hs {
		c.inFile[h] = true
		if _, ok := c.plain[h]; ok {
			delete(c.sealed, h)
		}
	}
}

func appendFrame(buf *bytes.Buffer, b []byte) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	buf.Write(hdr[:])
	buf.Write(b)
}

func (c *registerCache) warnLocked(msg string, err error) {
	if c.warned {
		return
	}
	c.warned = true
	c.log.Warn(msg, "file", c.path, "err", err)
}
