package repo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis/chunk"
)

// Config is a repository's plaintext config object: no secrets, only what
// a reader must know to interpret the rest (docs/format.md, "config").
// Algorithms are named, and a reader refuses names it does not know, so a
// later change of algorithm is a new name, not a silent misreading.
type Config struct {
	Version     int          `json:"version"`
	ID          string       `json:"id"`
	Tenant      string       `json:"tenant"`
	Created     time.Time    `json:"created"`
	Chunker     chunk.Params `json:"chunker"`
	BlobID      string       `json:"blob_id"`
	AEAD        string       `json:"aead"`
	Compression string       `json:"compression"`
	Padding     string       `json:"padding"`
	PackSize    int64        `json:"pack_size"`
}

const (
	// configVersion is what a config without chunker.cut records;
	// configVersionCut what one with it records (kluis before it rejects
	// the field, docs/format.md "config").
	configVersion    = 1
	configVersionCut = 2
	maxConfig        = 64 << 10
	blobIDName       = "hmac-sha256"
	compName         = "zstd"
	paddingName      = "padme"
)

func newConfig(tenant string, params chunk.Params, packSize int64, now time.Time) (*Config, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	version := configVersion
	if params.Cut != "" {
		version = configVersionCut
	}
	c := &Config{
		Version: version, ID: hex.EncodeToString(id), Tenant: tenant, Created: now.UTC(),
		Chunker: params, BlobID: blobIDName, AEAD: aeadName, Compression: compName,
		Padding: paddingName, PackSize: packSize,
	}
	return c, c.validate(tenant)
}

func (c *Config) encode() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

func decodeConfig(data []byte, tenant string) (*Config, error) {
	if len(data) > maxConfig {
		return nil, fmt.Errorf("config larger than %d bytes: %w", maxConfig, ErrCorrupt)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %v: %w", err, ErrCorrupt)
	}
	if err := c.validate(tenant); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate(tenant string) error {
	switch {
	case c.Version != configVersion && c.Version != configVersionCut:
		return fmt.Errorf("repository format version %d is not supported by this kluis (want %d or %d)", c.Version, configVersion, configVersionCut)
	case (c.Version == configVersionCut) != (c.Chunker.Cut != ""):
		return fmt.Errorf("config: version %d with chunker cut %q: %w", c.Version, c.Chunker.Cut, ErrCorrupt)
	case c.Tenant != tenant:
		return fmt.Errorf("repository belongs to tenant %q, not %q: %w", c.Tenant, tenant, ErrWrongKey)
	case len(c.ID) != 32:
		return fmt.Errorf("config: repository id %q: %w", c.ID, ErrCorrupt)
	case c.BlobID != blobIDName || c.AEAD != aeadName || c.Compression != compName || c.Padding != paddingName:
		return fmt.Errorf("repository uses algorithms this kluis does not know (blob_id %q, aead %q, compression %q, padding %q)",
			c.BlobID, c.AEAD, c.Compression, c.Padding)
	case c.PackSize < 1<<20 || c.PackSize > 1<<30:
		return fmt.Errorf("config: pack size %d out of range: %w", c.PackSize, ErrCorrupt)
	}
	if err := c.Chunker.Validate(); err != nil {
		return fmt.Errorf("config: %v: %w", err, ErrCorrupt)
	}
	return nil
}
