package chunk

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// A per-tenant zstd dictionary (docs/format.md, "Sealed blob" and "Zstd
// dictionary"). Table streams are cut into chunks of about 20 KiB, and each
// chunk compressed alone sees none of the rows before it; a dictionary
// trained on the tenant's first night gives every chunk that history.

// kindZstdDict marks a payload that is a zstd frame compressed with a
// dictionary; the frame header names the dictionary by its zstd ID.
const kindZstdDict = 2

// Dictionary bounds.
const (
	// MaxDictSize bounds a dictionary's plaintext.
	MaxDictSize = 1 << 20
	// dictHistory is the raw content a trained dictionary holds.
	dictHistory = 112 << 10
	// dictSamples bounds the chunks whose statistics train it.
	dictSamples = 2000
	// dictSampleMax bounds one sample: zstd.BuildDict panics on samples
	// above 128 KiB.
	dictSampleMax = 16 << 10
	// MinDictTraining is the least data worth training a dictionary on:
	// below it a dictionary costs more than it saves.
	MinDictTraining = 1 << 20
)

// Dict is a loaded zstd dictionary.
type Dict struct {
	zid   uint32
	plain []byte
	enc   *zstd.Encoder
	dec   *zstd.Decoder
}

// Close releases the dictionary's decoder; it must not be used after.
func (d *Dict) Close() { d.dec.Close() }

// ZstdID returns the dictionary's zstd ID, which the frames compressed with
// it carry.
func (d *Dict) ZstdID() uint32 { return d.zid }

// DictError reports a blob compressed with a dictionary the Sealer does
// not hold. It wraps ErrCorrupt: the blob cannot be opened.
type DictError struct{ ZstdID uint32 }

func (e *DictError) Error() string {
	return fmt.Sprintf("compressed with zstd dictionary %08x, which is not loaded", e.ZstdID)
}

// Unwrap makes a DictError an ErrCorrupt.
func (e *DictError) Unwrap() error { return ErrCorrupt }

// DictZstdID returns the zstd ID a dictionary's plaintext declares.
func DictZstdID(plain []byte) (uint32, error) {
	if len(plain) < 8 || binary.LittleEndian.Uint32(plain) != 0xEC30A437 {
		return 0, errors.New("not a zstd dictionary (magic)")
	}
	zid := binary.LittleEndian.Uint32(plain[4:8])
	if zid == 0 {
		return 0, errors.New("zstd dictionary with ID 0")
	}
	return zid, nil
}

// LoadDict parses a dictionary's plaintext. Any failure, including a
// panic of the zstd library on hostile tables, is an error.
func LoadDict(plain []byte) (d *Dict, err error) {
	if len(plain) > MaxDictSize {
		return nil, fmt.Errorf("zstd dictionary of %d bytes exceeds %d", len(plain), MaxDictSize)
	}
	zid, err := DictZstdID(plain)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("zstd dictionary %08x: %v", zid, p)
		}
	}()
	enc, err := zstd.NewWriter(nil, encoderOptions(zstd.WithEncoderDict(plain))...)
	if err != nil {
		return nil, fmt.Errorf("zstd dictionary %08x: %v", zid, err)
	}
	dec, err := zstd.NewReader(nil, decoderOptions(zstd.WithDecoderDicts(plain))...)
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("zstd dictionary %08x: %v", zid, err)
	}
	// A dictionary whose tables do not compress and decompress a sample
	// faithfully is refused here, not found out blob by blob.
	probe := []byte("kluis dictionary probe 0123456789\t\\N\t2026-01-01 00:00:00+00\n")
	back, err := dec.DecodeAll(enc.EncodeAll(probe, nil), nil)
	if err != nil || string(back) != string(probe) {
		dec.Close()
		return nil, fmt.Errorf("zstd dictionary %08x does not round-trip", zid)
	}
	// plain is kept for the encoders at the best level (BestEncoders).
	return &Dict{zid: zid, plain: slices.Clone(plain), enc: enc, dec: dec}, nil
}

// TrainDict builds a dictionary from chunks of a tenant's data (at least
// least bytes, and never less than 64 KiB): raw history of 1 KiB slices
// spread over the chunks, and the statistics of up to 2,000 of them. Its
// zstd ID is random and never 0.
func TrainDict(chunks [][]byte, least int) (dict []byte, err error) {
	var total int
	for _, c := range chunks {
		total += len(c)
	}
	if least = max(least, 64<<10); total < least {
		return nil, fmt.Errorf("%d bytes are too few to train a dictionary on (at least %d)", total, least)
	}
	var hist []byte
	step := max(1, len(chunks)/(dictHistory>>10))
	for i := 0; i < len(chunks) && len(hist) < dictHistory; i += step {
		c := chunks[i]
		off := len(c) / 3
		hist = append(hist, c[off:min(len(c), off+1<<10)]...)
	}
	var samples [][]byte
	sstep := max(1, len(chunks)/dictSamples)
	for i := 0; i < len(chunks) && len(samples) < dictSamples; i += sstep {
		samples = append(samples, chunks[i][:min(len(chunks[i]), dictSampleMax)])
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	zid := binary.LittleEndian.Uint32(b[:])%(math.MaxUint32-1) + 1
	defer func() {
		if p := recover(); p != nil {
			dict, err = nil, fmt.Errorf("training a zstd dictionary: %v", p)
		}
	}()
	dict, err = zstd.BuildDict(zstd.BuildDictOptions{ID: zid, Contents: samples, History: hist,
		Offsets: [3]int{1, 4, 8}, Level: zstd.SpeedFastest})
	if err != nil {
		return nil, fmt.Errorf("training a zstd dictionary: %w", err)
	}
	if _, err := LoadDict(dict); err != nil {
		return nil, err
	}
	return dict, nil
}

// AddDict makes d available to Open. Adding a dictionary whose zstd ID is
// already held keeps the first.
func (s *Sealer) AddDict(d *Dict) {
	s.dictMu.Lock()
	defer s.dictMu.Unlock()
	if s.dicts == nil {
		s.dicts = map[uint32]*Dict{}
	}
	if _, ok := s.dicts[d.zid]; !ok {
		s.dicts[d.zid] = d
	}
}

func (s *Sealer) dict(zid uint32) *Dict {
	s.dictMu.RLock()
	defer s.dictMu.RUnlock()
	return s.dicts[zid]
}

// openDict decompresses a kind 2 payload.
func (s *Sealer) openDict(payload, dst []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(payload); err != nil {
		return nil, fmt.Errorf("frame header: %v: %w", err, ErrCorrupt)
	}
	if h.DictionaryID == 0 {
		return nil, fmt.Errorf("a dictionary frame that names no dictionary: %w", ErrCorrupt)
	}
	d := s.dict(h.DictionaryID)
	if d == nil {
		return nil, &DictError{ZstdID: h.DictionaryID}
	}
	out, err := d.dec.DecodeAll(payload, dst)
	if err != nil {
		return nil, fmt.Errorf("decompress with dictionary %08x: %v: %w", h.DictionaryID, err, ErrCorrupt)
	}
	return out, nil
}

// Dict returns the loaded dictionary with zstd ID zid, or nil.
func (s *Sealer) Dict(zid uint32) *Dict { return s.dict(zid) }
