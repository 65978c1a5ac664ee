package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kluis-nl/kluis/chunk"
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
}

// RowIndexRef locates a stream's row index: its size and blobs.
type RowIndexRef struct {
	Size  int64      `json:"size"`
	Blobs []chunk.ID `json:"blobs"`
}

// AllBlobs returns the blobs the stream needs: its own and its row
// index's.
func (s *Stream) AllBlobs() []chunk.ID {
	if s.RowIndex == nil {
		return s.Blobs
	}
	return append(append([]chunk.ID(nil), s.Blobs...), s.RowIndex.Blobs...)
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
	seen := map[string]bool{}
	for _, s := range m.Streams {
		if s.Name == "" || seen[s.Name] || s.Size < 0 || s.RowIndex != nil && (s.RowIndex.Size < 0 || s.RowIndex.Size > maxRowIndex) {
			return nil, fmt.Errorf("manifest: stream %q invalid or repeated: %w", s.Name, ErrCorrupt)
		}
		seen[s.Name] = true
	}
	return &m, nil
}
