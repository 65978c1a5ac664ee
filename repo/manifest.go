package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/rowdelta"
)

// Manifest describes one snapshot: its object, sealed, is the commit point
// of a backup at a location (docs/format.md, "Manifest"). It is written
// after every pack and index it refers to.
type Manifest struct {
	Version       int       `json:"version"`
	Tenant        string    `json:"tenant"`
	Appliance     string    `json:"appliance,omitempty"`
	Engine        string    `json:"engine"`
	ServerVersion string    `json:"server_version,omitempty"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	Parent        string    `json:"parent,omitempty"`
	// SourceIdentity names the database the snapshot was read from
	// (source.Identifier); empty in snapshots of files tenants and of
	// kluis before it was recorded.
	SourceIdentity string `json:"source_identity,omitempty"`
	// Locations are the locations the backup wrote to; which of them hold
	// the snapshot is found by looking (Repo.Snapshots).
	Locations []string `json:"locations"`
	Streams   []Stream `json:"streams"`
	// Dictionary names the zstd dictionary blobs of the snapshot may be
	// compressed with (dict.go); absent in snapshots without one.
	Dictionary *DictRef `json:"dictionary,omitempty"`
}

// Stream is one named byte stream in a snapshot: a file, a schema part or a
// table.
type Stream struct {
	Name string `json:"name"`
	// Kind is "file", "schema-pre", "schema-post" or "table".
	Kind  string     `json:"kind"`
	Size  int64      `json:"size"`
	Blobs []chunk.ID `json:"blobs"`
	// Meta is the engine's description of a table (columns, keys, row
	// count, fingerprint); the repository stores it without interpreting it.
	Meta json.RawMessage `json:"meta,omitempty"`
	// RowIndex, when set, is the stream's row index (docs/format.md, "Row
	// index"), stored as blobs like a stream; the repository stores it
	// without interpreting it.
	RowIndex *RowIndexRef `json:"row_index,omitempty"`
	// Keyed is set on a table stream whose rows are strictly ascending by
	// a key: a later snapshot may store the table as a row delta against
	// it. With a non-empty Chain the stream is such a delta
	// (docs/format.md, "Row deltas"): Blobs hold this snapshot's
	// kluis-row-delta-v1 records, the table is Chain[0]'s rows with
	// Chain[1:] and then Blobs applied, and Size is the table's size.
	Keyed *Keyed `json:"keyed,omitempty"`
}

// RowIndexRef locates a stream's row index: its size and blobs, and for
// a paged index (docs/format.md, "Row index") its pages, one blob each,
// read one at a time (Repo.RowIndexPage).
type RowIndexRef struct {
	Size  int64      `json:"size"`
	Blobs []chunk.ID `json:"blobs"`
	Pages []chunk.ID `json:"pages,omitempty"`
}

// maxRowIndexPages bounds a paged index's page count.
const maxRowIndexPages = 1 << 16

func (ri *RowIndexRef) valid() bool {
	return ri == nil || ri.Size >= 0 && ri.Size <= maxRowIndex && len(ri.Pages) <= maxRowIndexPages
}

// Keyed describes a key-ordered table stream and, for a delta, its chain.
type Keyed struct {
	Key rowdelta.Key `json:"key"`
	// DeltaSize is the size of a delta's own records (Blobs).
	DeltaSize int64 `json:"delta_size,omitempty"`
	// Chain is what a delta applies to, oldest first: the base (row
	// lines), then earlier deltas. Each link lists its blobs, so a
	// snapshot needs no other manifest to be restored.
	Chain []Link `json:"chain,omitempty"`
}

// Link is one earlier part of a delta's chain, written by Snapshot.
type Link struct {
	Snapshot string     `json:"snapshot"`
	Size     int64      `json:"size"`
	Blobs    []chunk.ID `json:"blobs"`
	// RowIndex is the link's row index (Stream.RowIndex of the stream
	// that wrote it), when it has one.
	RowIndex *RowIndexRef `json:"row_index,omitempty"`
}

// MaxChain bounds a delta chain's length in a manifest.
const MaxChain = 64

// IsDelta reports whether the stream is a row delta over a chain.
func (s *Stream) IsDelta() bool { return s.Keyed != nil && len(s.Keyed.Chain) > 0 }

// StreamPart is a list of blobs a stream needs, with what it is.
type StreamPart struct {
	// What is "" for the stream's own blobs, else e.g. "delta base written
	// by snapshot 1a2b3c4d".
	What  string
	Blobs []chunk.ID
}

// Parts returns every blob list the stream needs to be read: a delta's
// chain, oldest first, then its own blobs.
func (s *Stream) Parts() []StreamPart {
	var out []StreamPart
	if s.IsDelta() {
		for i, l := range s.Keyed.Chain {
			out = append(out, StreamPart{What: linkWhat(i, l), Blobs: l.Blobs})
		}
	}
	return append(out, StreamPart{Blobs: s.Blobs})
}

func linkWhat(i int, l Link) string {
	short := l.Snapshot
	if len(short) > 8 {
		short = short[:8]
	}
	if i == 0 {
		return "delta base written by snapshot " + short
	}
	return "delta written by snapshot " + short
}

// AllBlobs returns every blob the stream needs, chain included (with
// repetitions).
func (s *Stream) AllBlobs() []chunk.ID {
	if !s.IsDelta() && s.RowIndex == nil {
		return s.Blobs
	}
	var out []chunk.ID
	for _, p := range s.Parts() {
		out = append(out, p.Blobs...)
	}
	for _, ri := range s.RowIndexes() {
		out = append(append(out, ri.Blobs...), ri.Pages...) // the row indexes too
	}
	return out
}

// RowIndexes returns the row indexes the stream carries: its chain's,
// oldest first, then its own.
func (s *Stream) RowIndexes() []*RowIndexRef {
	var out []*RowIndexRef
	if s.IsDelta() {
		for _, l := range s.Keyed.Chain {
			if l.RowIndex != nil {
				out = append(out, l.RowIndex)
			}
		}
	}
	if s.RowIndex != nil {
		out = append(out, s.RowIndex)
	}
	return out
}

func (k *Keyed) validate() error {
	if err := k.Key.Validate(); err != nil {
		return err
	}
	if len(k.Chain) > MaxChain || k.DeltaSize < 0 || (len(k.Chain) == 0 && k.DeltaSize != 0) {
		return fmt.Errorf("row delta: chain of %d links (at most %d), delta size %d", len(k.Chain), MaxChain, k.DeltaSize)
	}
	for _, l := range k.Chain {
		if _, err := ParseHash(l.Snapshot); err != nil || l.Size < 0 || !l.RowIndex.valid() {
			return fmt.Errorf("row delta: link %q invalid", l.Snapshot)
		}
	}
	return nil
}

// Stream kinds.
const (
	KindFile       = "file"
	KindSchemaPre  = "schema-pre"
	KindSchemaPost = "schema-post"
	KindTable      = "table"
)

const (
	manifestVersion = 1
	maxManifest     = 256 << 20
	// maxRowIndex bounds a stream's row index, which is read whole.
	maxRowIndex = 256 << 20
)

// Bytes returns the total plaintext size of all streams.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, s := range m.Streams {
		n += s.Size
	}
	return n
}

// Stream returns the stream with the given name.
func (m *Manifest) Stream(name string) (*Stream, bool) {
	for i := range m.Streams {
		if m.Streams[i].Name == name {
			return &m.Streams[i], true
		}
	}
	return nil, false
}

var (
	manifestEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	manifestDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxManifest))
)

func encodeManifest(m *Manifest) ([]byte, error) {
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return manifestEnc.EncodeAll(js, nil), nil
}

func decodeManifest(plain []byte, tenant string) (*Manifest, error) {
	js, err := manifestDec.DecodeAll(plain, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest: %v: %w", err, ErrCorrupt)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %v: %w", err, ErrCorrupt)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest version %d is not supported by this kluis", m.Version)
	}
	if m.Tenant != tenant {
		return nil, fmt.Errorf("manifest belongs to tenant %q, not %q: %w", m.Tenant, tenant, ErrCorrupt)
	}
	if m.Dictionary != nil && m.Dictionary.ZstdID == 0 {
		return nil, fmt.Errorf("manifest: zstd dictionary with ID 0: %w", ErrCorrupt)
	}
	seen := map[string]bool{}
	for _, s := range m.Streams {
		if s.Name == "" || seen[s.Name] || s.Size < 0 || !s.RowIndex.valid() {
			return nil, fmt.Errorf("manifest: stream %q invalid or repeated: %w", s.Name, ErrCorrupt)
		}
		seen[s.Name] = true
		if s.Keyed != nil {
			if s.Kind != KindTable {
				return nil, fmt.Errorf("manifest: stream %q: a key order on a %s stream: %w", s.Name, s.Kind, ErrCorrupt)
			}
			if err := s.Keyed.validate(); err != nil {
				return nil, fmt.Errorf("manifest: stream %q: %v: %w", s.Name, err, ErrCorrupt)
			}
		}
	}
	return &m, nil
}
