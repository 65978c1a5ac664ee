package chunk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrCorrupt is returned when a sealed blob does not authenticate or does
// not decode to the plaintext its ID names.
var ErrCorrupt = errors.New("blob is corrupt or sealed under another key")

// IDSize is the length of a blob ID in bytes.
const IDSize = 32

// ID names a blob: HMAC-SHA256 of its plaintext under the tenant's ID key.
type ID [IDSize]byte

// String returns the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses a hex blob ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("blob id of %d characters: want %d hex digits", len(s), 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("blob id %q: %w", s, err)
	}
	return id, nil
}

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// KeySize is the length of the data key and the ID key.
const KeySize = 32

// Sealer computes blob IDs and seals and opens blobs for one tenant. It is
// safe for concurrent use.
type Sealer struct {
	aead    aeadCipher
	macPool sync.Pool

	dictMu sync.RWMutex
	dicts  map[uint32]*Dict // by zstd ID
}

type aeadCipher interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	NonceSize() int
	Overhead() int
}

// NewSealer returns a Sealer for a tenant's data key and ID key.
func NewSealer(dataKey, idKey []byte) (*Sealer, error) {
	if len(dataKey) != KeySize || len(idKey) != KeySize {
		return nil, fmt.Errorf("chunk: keys must be %d bytes", KeySize)
	}
	aead, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return nil, err
	}
	idk := append([]byte(nil), idKey...)
	s := &Sealer{aead: aead}
	s.macPool.New = func() any { return hmac.New(sha256.New, idk) }
	return s, nil
}

// ID returns the blob ID of plaintext.
func (s *Sealer) ID(plaintext []byte) ID {
	m := s.macPool.Get().(hash.Hash)
	m.Reset()
	m.Write(plaintext)
	var id ID
	m.Sum(id[:0])
	s.macPool.Put(m)
	return id
}

// Inner plaintext layout (docs/format.md, "Sealed blob"):
//
//	kind (1 byte) ‖ payload length (uint32 LE) ‖ payload ‖ zero padding
const (
	kindRaw  = 0
	kindZstd = 1

	innerHeader = 5
	nonceSize   = chacha20poly1305.NonceSizeX
	tagSize     = chacha20poly1305.Overhead
)

// Overhead is the most a sealed blob exceeds its padded payload by.
const Overhead = nonceSize + innerHeader + tagSize

// encoder and decoder are shared by every Sealer; EncodeAll and DecodeAll
// are safe for concurrent use and run at most GOMAXPROCS calls at once
// (concurrency 0). A concurrency of 1 would serialise all sealing.
//
// Frames carry no zstd checksum (an xxhash of the plaintext), and one in
// an older blob is not checked: the AEAD authenticates the frame and Open
// checks the plaintext's keyed ID, which the checksum could only repeat.
var (
	encoder, _ = zstd.NewWriter(nil, encoderOptions()...)
	decoder, _ = zstd.NewReader(nil, decoderOptions()...)
)

func encoderOptions(more ...zstd.EOption) []zstd.EOption {
	return append([]zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(0),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(false)}, more...)
}

func decoderOptions(more ...zstd.DOption) []zstd.DOption {
	return append([]zstd.DOption{
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxChunkSize + 1),
		zstd.IgnoreChecksum(true)}, more...)
}

var blobAD = []byte("kluis blob v1\x00")

func additionalData(id ID) []byte {
	ad := make([]byte, 0, len(blobAD)+IDSize)
	return append(append(ad, blobAD...), id[:]...)
}

// Seal compresses (when that pays), pads and encrypts plaintext whose ID is
// id, appending the sealed blob to dst.
func (s *Sealer) Seal(dst []byte, id ID, plaintext []byte) ([]byte, error) {
	return s.SealDict(dst, id, plaintext, nil)
}

// SealDict is Seal compressing with dictionary d (when not nil). Blobs
// sealed so open only where d is loaded (AddDict).
func (s *Sealer) SealDict(dst []byte, id ID, plaintext []byte, d *Dict) ([]byte, error) {
	zkind, enc := byte(kindZstd), encoder
	if d != nil {
		zkind, enc = kindZstdDict, d.enc
	}
	return s.seal(dst, id, plaintext, zkind, enc)
}

// SealBest is SealDict at zstd's best level, with be's encoders: about
// 8 % smaller than a backup's own level (the fastest) on table data and
// some twenty times slower, for re-sealing what a backup stored once it is
// committed (repo.Backup.Reseal). Open needs nothing new: the level is not
// recorded.
func (s *Sealer) SealBest(dst []byte, id ID, plaintext []byte, d *Dict, be *BestEncoders) ([]byte, error) {
	enc, err := be.encoder(d)
	if err != nil {
		return nil, err
	}
	zkind := byte(kindZstd)
	if d != nil {
		zkind = kindZstdDict
	}
	return s.seal(dst, id, plaintext, zkind, enc)
}

// BestEncoders are zstd encoders at the best level, one per dictionary
// (and one for none), made on first use. Each holds some 70 MB of match
// tables per concurrent call: make one for a re-seal and drop it after,
// so that a long-running daemon does not keep them.
type BestEncoders struct {
	mu    sync.Mutex
	byZID map[uint32]*zstd.Encoder // 0: no dictionary
}

// NewBestEncoders returns an empty set.
func NewBestEncoders() *BestEncoders { return &BestEncoders{byZID: map[uint32]*zstd.Encoder{}} }

func (be *BestEncoders) encoder(d *Dict) (*zstd.Encoder, error) {
	be.mu.Lock()
	defer be.mu.Unlock()
	var zid uint32
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression)}
	if d != nil {
		zid = d.zid
		opts = append(opts, zstd.WithEncoderDict(d.plain))
	}
	if e, ok := be.byZID[zid]; ok {
		return e, nil
	}
	e, err := zstd.NewWriter(nil, encoderOptions(opts...)...)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder at the best level (dictionary %08x): %v", zid, err)
	}
	be.byZID[zid] = e
	return e, nil
}

func (s *Sealer) seal(dst []byte, id ID, plaintext []byte, zkind byte, enc *zstd.Encoder) ([]byte, error) {
	if len(plaintext) > MaxChunkSize {
		return nil, fmt.Errorf("chunk: plaintext of %d bytes exceeds %d", len(plaintext), MaxChunkSize)
	}
	sc := getScratch()
	defer putScratch(sc)
	compressed := enc.EncodeAll(plaintext, sc.b[:0])
	sc.b = compressed[:0] // keep a buffer zstd had to grow
	kind, payload := byte(kindRaw), plaintext
	// Compression pays only when it saves at least 1/16 of the chunk.
	if len(compressed) < len(plaintext)-len(plaintext)/16 {
		kind, payload = zkind, compressed
	}
	// The blob is built in place at the end of dst: nonce, then the inner
	// plaintext, which the AEAD encrypts onto itself (exact overlap is
	// allowed) and follows with its tag.
	padded := padme(innerHeader + len(payload))
	start := len(dst)
	dst = slices.Grow(dst, nonceSize+padded+tagSize)
	out := dst[start : start+nonceSize+padded]
	nonce, inner := out[:nonceSize], out[nonceSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	inner[0] = kind
	binary.LittleEndian.PutUint32(inner[1:5], uint32(len(payload)))
	n := copy(inner[innerHeader:], payload)
	clear(inner[innerHeader+n:]) // zero padding: dst's spare capacity may hold old bytes
	return s.aead.Seal(dst[:start+nonceSize], nonce, inner, additionalData(id)), nil
}

// scratch is a reusable buffer for a compressed payload on its way into
// the AEAD, or a decrypted one on its way out of zstd: it lives only
// during one Seal or Open.
type scratch struct{ b []byte }

var scratchPool = sync.Pool{New: func() any { return &scratch{b: make([]byte, 0, 64<<10)} }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch returns sc to the pool unless it grew past what a chunk of
// the default size needs, so that one large blob does not pin its buffer.
func putScratch(sc *scratch) {
	if cap(sc.b) <= 1<<20 {
		scratchPool.Put(sc)
	}
}

// Open decrypts and decompresses a sealed blob and checks that the
// plaintext's MAC equals id. Any mismatch returns an error wrapping
// ErrCorrupt.
func (s *Sealer) Open(dst []byte, id ID, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("blob %s: sealed length %d out of range: %w", id, len(sealed), ErrCorrupt)
	}
	// The inner plaintext is needed only until it is decompressed or
	// copied into dst.
	sc := getScratch()
	defer putScratch(sc)
	inner, err := s.aead.Open(sc.b[:0], sealed[:nonceSize], sealed[nonceSize:], additionalData(id))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, ErrCorrupt)
	}
	sc.b = inner[:0]
	kind := inner[0]
	n := binary.LittleEndian.Uint32(inner[1:5]) // compared unconverted: int may be 32 bits
	if uint64(n) > uint64(len(inner)-innerHeader) {
		return nil, fmt.Errorf("blob %s: payload length %d exceeds blob: %w", id, n, ErrCorrupt)
	}
	payload := inner[innerHeader : innerHeader+int(n)]
	var plain []byte
	switch kind {
	case kindZstdDict:
		out, err := s.openDict(payload, dst[len(dst):])
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", id, err)
		}
		if len(out) > MaxChunkSize {
			return nil, fmt.Errorf("blob %s: plaintext exceeds %d bytes: %w", id, MaxChunkSize, ErrCorrupt)
		}
		plain = appendDecoded(dst, out)
	case kindRaw:
		if len(payload) > MaxChunkSize {
			return nil, fmt.Errorf("blob %s: plaintext exceeds %d bytes: %w", id, MaxChunkSize, ErrCorrupt)
		}
		plain = append(dst, payload...)
	case kindZstd:
		// Decode after dst, not onto it: DecodeAll counts the bytes already
		// in dst against its size limit when the frame declares its size,
		// so a long dst would make valid blobs fail.
		out, err := decoder.DecodeAll(payload, dst[len(dst):])
		if err != nil {
			return nil, fmt.Errorf("blob %s: decompress: %v: %w", id, err, ErrCorrupt)
		}
		if len(out) > MaxChunkSize {
			return nil, fmt.Errorf("blob %s: plaintext exceeds %d bytes: %w", id, MaxChunkSize, ErrCorrupt)
		}
		plain = appendDecoded(dst, out)
	default:
		return nil, fmt.Errorf("blob %s: unknown encoding %d: %w", id, kind, ErrCorrupt)
	}
	if s.ID(plain[len(dst):]) != id {
		return nil, fmt.Errorf("blob %s: plaintext does not match its id: %w", id, ErrCorrupt)
	}
	return plain, nil
}

// appendDecoded returns dst followed by out, which zstd decoded into dst's
// spare capacity when it fitted there: then nothing is copied.
func appendDecoded(dst, out []byte) []byte {
	n := len(dst)
	if len(out) > 0 && len(out) <= cap(dst)-n && &dst[:n+1][n] == &out[0] {
		return dst[:n+len(out)]
	}
	return append(dst, out...)
}

// MaxSealedSize bounds the length of any sealed blob.
const MaxSealedSize = nonceSize + tagSize + innerHeader + MaxChunkSize + MaxChunkSize/8 + 1024

// padme rounds n up so that at most O(log log n) bits of the length leak
// (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
// Communication with PURBs", 2019). The overhead is at most about 12 %, and
// about 3 % around 64 KiB.
func padme(n int) int {
	if n < 2 {
		return n
	}
	e := 63 - bits.LeadingZeros64(uint64(n)) // floor(log2 n)
	s := 64 - bits.LeadingZeros64(uint64(e)) // floor(log2 e) + 1
	lastBits := e - s
	mask := (1 << lastBits) - 1
	return (n + mask) &^ mask
}
