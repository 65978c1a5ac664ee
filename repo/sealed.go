package repo

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/poly1305" //nolint:staticcheck // the streaming half of XChaCha20-Poly1305, checked against the AEAD in tests
)

// Reading the repository's sealed structures (indexes, manifests) from a
// location that may be hostile: an object is used only when its bytes match
// its name, it is within its kind's size cap, it authenticates under this
// repository's key and associated data, and it decodes. Nothing else is
// ever decrypted, decoded or copied to another location.

// errPlanted: the bytes match the object's name (so this is exactly the
// object stored under it) but do not authenticate under this repository's
// key. kluis never writes such an object, so it was planted: random bytes,
// another tenant's object, or another repository's.
var errPlanted = errors.New("matches its name but was not sealed by this repository (planted, or another tenant's)")

// streamThreshold: objects up to this size are read whole; a larger one is
// first authenticated while streaming (a fixed buffer), and read into
// memory only when genuine, so a planted object costs no more than this.
const streamThreshold = 4 << 20

// Associated data of the sealed structures. Version 2 binds tenant and
// repository id (docs/format.md, "Sealed structures"); version 1 objects,
// written before, are still read.
const (
	adIndexV2    = "kluis index v2"
	adManifestV2 = "kluis manifest v2"
)

func boundAD(base, tenant, repoID string) string {
	return base + "\x00" + tenant + "\x00" + repoID
}

// sealedSpec describes one kind of sealed structure.
type sealedSpec struct {
	kind   string
	max    int64
	ads    []string // the current one first
	decode func(plain []byte) (any, error)
}

func (r *Repo) spec(kind string) sealedSpec {
	switch kind {
	case kindIndex:
		return sealedSpec{kind: kindIndex, max: maxIndexObject, ads: []string{r.adIndex, adIndex},
			decode: func(b []byte) (any, error) { return decodeIndex(b) }}
	case kindSnapshot:
		return sealedSpec{kind: kindSnapshot, max: maxManifest, ads: []string{r.adManifest, adManifest},
			decode: func(b []byte) (any, error) {
				m, err := decodeManifest(b, r.tenant)
				if err == nil {
					r.noteDict(m)
				}
				return m, err
			}}
	}
	panic("repo: no sealed spec for " + kind)
}

// openAt reads, verifies, authenticates and decodes one sealed object at
// one location, without falling back. A copy that is there but unusable
// is ErrCorrupt (and errPlanted when proven planted).
func (r *Repo) openAt(ctx context.Context, l Location, sp sealedSpec, h Hash) (any, error) {
	name := objectName(r.tenant, sp.kind, h)
	plain, err := r.readSealed(ctx, l, name, h, sp.max, sp.ads)
	if err != nil {
		return nil, err
	}
	v, err := sp.decode(plain)
	if err != nil {
		return nil, fmt.Errorf("authenticates but does not decode: %v: %w", err, ErrCorrupt)
	}
	return v, nil
}

// readSealed returns the plaintext of the sealed object name at l.
func (r *Repo) readSealed(ctx context.Context, l Location, name string, h Hash, max int64, ads []string) ([]byte, error) {
	raw, ad, plain, err := r.readSealedRaw(ctx, l, name, h, max, ads)
	if err != nil || plain != nil {
		return plain, err
	}
	plain, err = r.meta.openInPlace(ad, raw)
	if err != nil {
		return nil, fmt.Errorf("does not decrypt: %w", ErrCorrupt)
	}
	return plain, nil
}

// readSealedRaw reads the sealed object name at l and checks its size, its
// name and its tag, returning its bytes and the associated data it
// authenticates under. A small object is also decrypted (plain), as a side
// effect of finding its associated data. At a versioned location a current
// version that does not match the name does not shadow an earlier one that
// does (readContent).
func (r *Repo) readSealedRaw(ctx context.Context, l Location, name string, h Hash, max int64, ads []string) (raw []byte, ad string, plain []byte, err error) {
	raw, ad, plain, err = r.readSealedCurrent(ctx, l, name, h, max, ads)
	vl, versioned := l.(VersionedLocation)
	if err == nil || !versioned || !errors.Is(err, ErrCorrupt) || errors.Is(err, errPlanted) || ctx.Err() != nil {
		return raw, ad, plain, err
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
		return nil, "", nil, err
	}
	for _, ad := range ads {
		if plain, oerr := r.meta.open(ad, good); oerr == nil {
			return good, ad, plain, nil
		}
	}
	return nil, "", nil, fmt.Errorf("%w: %w", errPlanted, ErrCorrupt)
}

func (r *Repo) readSealedCurrent(ctx context.Context, l Location, name string, h Hash, max int64, ads []string) (raw []byte, ad string, plain []byte, err error) {
	rc, err := l.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, "", nil, err
	}
	head, err := readHead(rc, streamThreshold+1)
	if err != nil {
		rc.Close()
		return nil, "", nil, err
	}
	if len(head) <= streamThreshold {
		rc.Close()
		if int64(len(head)) > max {
			return nil, "", nil, fmt.Errorf("larger than %d bytes: %w", max, ErrCorrupt)
		}
		if sha256.Sum256(head) != h {
			return nil, "", nil, fmt.Errorf("content does not match its name: %w", ErrCorrupt)
		}
		for _, ad := range ads {
			// not in place: a failed Open zeroes its output
			if plain, err := r.meta.open(ad, head); err == nil {
				return head, ad, plain, nil
			}
		}
		return nil, "", nil, fmt.Errorf("%w: %w", errPlanted, ErrCorrupt)
	}
	// Large: authenticate while streaming, then read the genuine object.
	v := newSealedVerifier(r.meta.key, ads, head)
	head = nil
	buf := make([]byte, 64<<10)
	total := int64(streamThreshold + 1)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > max {
				rc.Close()
				return nil, "", nil, fmt.Errorf("larger than %d bytes: %w", max, ErrCorrupt)
			}
			v.write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rc.Close()
			return nil, "", nil, err
		}
	}
	rc.Close()
	if Hash(v.sum()) != h {
		return nil, "", nil, fmt.Errorf("content does not match its name: %w", ErrCorrupt)
	}
	ad, ok := v.verify()
	if !ok {
		return nil, "", nil, fmt.Errorf("%w: %w", errPlanted, ErrCorrupt)
	}
	data, err := ReadAllSized(ctx, l, name, total)
	if err != nil {
		return nil, "", nil, err
	}
	if sha256.Sum256(data) != h {
		return nil, "", nil, fmt.Errorf("content changed while it was read: %w", ErrCorrupt)
	}
	return data, ad, nil, nil
}

// readSealedVerified returns the bytes of a sealed structure, for copying
// to another location, from the first location whose copy verifies,
// authenticates and decodes.
func (r *Repo) readSealedVerified(ctx context.Context, kind string, h Hash) ([]byte, error) {
	sp := r.spec(kind)
	name := objectName(r.tenant, kind, h)
	return r.firstGoodCopy(ctx, name, func(l Location) ([]byte, error) {
		raw, ad, plain, err := r.readSealedRaw(ctx, l, name, h, sp.max, sp.ads)
		if err == nil && plain == nil {
			if plain, err = r.meta.open(ad, raw); err != nil {
				err = fmt.Errorf("does not decrypt: %w", ErrCorrupt)
			}
		}
		if err == nil {
			if _, derr := sp.decode(plain); derr != nil {
				err = fmt.Errorf("authenticates but does not decode: %v: %w", derr, ErrCorrupt)
			}
		}
		return raw, err
	})
}

// readHead reads up to limit bytes, growing its buffer sixteenfold at a
// time (64 KiB, 1 MiB, …): a small object costs little, a big one at most
// about limit plus a sixteenth.
func readHead(rd io.Reader, limit int) ([]byte, error) {
	buf := make([]byte, 0, min(limit, 64<<10))
	for {
		n, err := io.ReadFull(rd, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == limit {
			return buf, nil
		}
		grown := make([]byte, len(buf), min(limit, 16*cap(buf)))
		copy(grown, buf)
		buf = grown
	}
}

// ReadAllSized reads an object expected to be exactly size bytes into one
// buffer of that size.
func ReadAllSized(ctx context.Context, l Location, name string, size int64) ([]byte, error) {
	rc, err := l.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("%s at %s: %v: %w", name, l.Name(), err, ErrCorrupt)
	}
	var one [1]byte
	if n, _ := rc.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("%s at %s: longer than %d bytes: %w", name, l.Name(), size, ErrCorrupt)
	}
	return data, nil
}

// sealedVerifier computes, over a stream, the SHA-256 of a sealed object
// and its XChaCha20-Poly1305 tag under each candidate associated data,
// without holding the object (RFC 8439 section 2.8, with the XChaCha20
// subkey and nonce of draft-irtf-cfrg-xchacha).
type sealedVerifier struct {
	sha   hash.Hash
	ads   []string
	macs  []*poly1305.MAC
	held  []byte // the last Overhead bytes seen: possibly the tag
	ctLen uint64
	bad   bool
}

func newSealedVerifier(key []byte, ads []string, head []byte) *sealedVerifier {
	v := &sealedVerifier{sha: sha256.New(), ads: ads, held: make([]byte, 0, 2*chacha20poly1305.Overhead)}
	v.sha.Write(head)
	ns := chacha20poly1305.NonceSizeX
	if len(head) < ns+chacha20poly1305.Overhead {
		v.bad = true
		return v
	}
	for _, ad := range ads {
		c, err := chacha20.NewUnauthenticatedCipher(key, head[:ns])
		if err != nil {
			v.bad = true
			return v
		}
		var pk [32]byte
		c.XORKeyStream(pk[:], pk[:])
		m := poly1305.New(&pk)
		m.Write([]byte(ad))
		writePad16(m, uint64(len(ad)))
		v.macs = append(v.macs, m)
	}
	v.mac(head[ns:])
	return v
}

func writePad16(m *poly1305.MAC, n uint64) {
	var zero [16]byte
	if r := n % 16; r != 0 {
		m.Write(zero[:16-r])
	}
}

// write feeds the bytes after the head.
func (v *sealedVerifier) write(p []byte) {
	v.sha.Write(p)
	if !v.bad {
		v.mac(p)
	}
}

// mac feeds ciphertext bytes, holding back the last 16 (the tag).
func (v *sealedVerifier) mac(p []byte) {
	o := chacha20poly1305.Overhead
	if len(p) >= o {
		// everything held, and all of p but its last o bytes, is ciphertext
		v.feed(v.held)
		v.feed(p[:len(p)-o])
		v.held = append(v.held[:0], p[len(p)-o:]...)
		return
	}
	v.held = append(v.held, p...)
	if extra := len(v.held) - o; extra > 0 {
		v.feed(v.held[:extra])
		v.held = append(v.held[:0], v.held[extra:]...)
	}
}

func (v *sealedVerifier) feed(ct []byte) {
	if len(ct) == 0 {
		return
	}
	for _, m := range v.macs {
		m.Write(ct)
	}
	v.ctLen += uint64(len(ct))
}

func (v *sealedVerifier) sum() []byte { return v.sha.Sum(nil) }

// verify returns the associated data the object authenticates under.
func (v *sealedVerifier) verify() (string, bool) {
	if v.bad || len(v.held) != chacha20poly1305.Overhead {
		return "", false
	}
	var tag [16]byte
	copy(tag[:], v.held)
	for i, m := range v.macs {
		writePad16(m, v.ctLen)
		var lens [16]byte
		binary.LittleEndian.PutUint64(lens[:8], uint64(len(v.ads[i])))
		binary.LittleEndian.PutUint64(lens[8:], v.ctLen)
		m.Write(lens[:])
		var got [16]byte
		m.Sum(got[:0])
		if subtle.ConstantTimeCompare(got[:], tag[:]) == 1 {
			return v.ads[i], true
		}
	}
	return "", false
}
