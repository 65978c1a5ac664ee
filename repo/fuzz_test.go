package repo

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/chunk"
)

// Fuzz targets, one per decoder of hostile input (DESIGN.md, "Security
// stance"). Each asserts properties, not only the absence of panics:
// decoders allocate in proportion to their input, and what decodes
// re-encodes to the same thing. Seed corpora live in testdata/fuzz/<Name>;
// `go test -run TestFuzzSeedCorpus -update` rewrites them from real
// structures.

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora under testdata/fuzz")

// Fixed keys, so seeds written once keep decrypting.
var (
	fuzzDataKey = bytes.Repeat([]byte{0xd1}, chunk.KeySize)
	fuzzIDKey   = bytes.Repeat([]byte{0x1d}, chunk.KeySize)
	fuzzMaster  = MasterKey(bytes.Repeat([]byte{0x3a}, MasterKeySize))
)

const (
	fuzzTenant = "praktijk-a"
	fuzzRepoID = "00112233445566778899aabbccddeeff"
)

func fuzzMeta(t testing.TB) *metaSealer {
	ms, err := newMetaSealer(fuzzDataKey)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// allocBound fails when fn allocates more than perByte times n plus slack:
// a decoder that trusts a count in its input allocates far more.
func allocBound(t *testing.T, n int, perByte int, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(perByte*n+256<<10); got > limit {
		t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", n, got, limit)
	}
}

// FuzzPackHeader feeds decodePackHeader a header plaintext and the data
// length it must cover, parsePack a whole pack (named by its own hash, so
// the name check passes), and parsePack again a pack built around plain
// sealed under the test key, which must agree with decodePackHeader.
func FuzzPackHeader(f *testing.F) {
	ms := fuzzMeta(f)
	f.Add([]byte{}, uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, plain []byte, dataLen uint32, pack []byte) {
		var entries []BlobEntry
		var err error
		allocBound(t, len(plain), 4, func() { entries, err = decodePackHeader(plain, int(dataLen)) })
		if err == nil {
			if !bytes.Equal(encodePackHeader(entries), plain) {
				t.Fatal("a decoded header does not re-encode to its input")
			}
			var end uint64
			for _, e := range entries {
				if uint64(e.Offset) != end || e.Length == 0 {
					t.Fatalf("entry %+v out of place", e)
				}
				end += uint64(e.Length)
			}
			if end != uint64(dataLen) {
				t.Fatalf("entries cover %d of %d bytes", end, dataLen)
			}
		}

		name := Hash(sha256.Sum256(pack))
		if pe, err := parsePack(ms, name, pack); err == nil {
			for _, e := range pe {
				if uint64(e.Offset)+uint64(e.Length) > uint64(len(pack)) {
					t.Fatalf("entry %+v beyond a %d-byte pack", e, len(pack))
				}
			}
		} else if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("parsePack error is neither corrupt nor unsupported: %v", err)
		}
		if _, err := parsePack(ms, Hash{}, pack); err == nil {
			t.Fatal("parsePack accepted a pack whose name is not its hash")
		}

		if dataLen > 1<<20 {
			return
		}
		built := make([]byte, dataLen, int(dataLen)+len(plain)+64)
		hdr := ms.seal(adPackHeader, plain)
		built = append(built, hdr...)
		built = binary.LittleEndian.AppendUint32(built, uint32(len(hdr)))
		be, berr := parsePack(ms, sha256.Sum256(built), built)
		if (berr == nil) != (err == nil) {
			t.Fatalf("parsePack (%v) and decodePackHeader (%v) disagree", berr, err)
		}
		if err == nil && !bytes.Equal(encodePackHeader(be), plain) {
			t.Fatal("parsePack returned other entries than decodePackHeader")
		}
	})
}

// FuzzIndex: decodeIndex (versions 1 and 2) never trusts a count beyond
// its input, and what it accepts re-encodes byte for byte in its version.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var x *indexObject
		var err error
		allocBound(t, len(b), 4, func() { x, err = decodeIndex(b) })
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "not supported") {
				t.Fatalf("error is neither corrupt nor unsupported: %v", err)
			}
			return
		}
		if !bytes.Equal(encodeIndexVersion(x), b) {
			t.Fatal("a decoded index does not re-encode to its input")
		}
	})
}

// FuzzManifest decodes a manifest's JSON (compressed as the encoder
// does, so the fuzzer works on the JSON) and a raw compressed plaintext.
// What decodes must survive encode and decode unchanged.
func FuzzManifest(f *testing.F) {
	f.Add([]byte("{}"), []byte{})
	f.Fuzz(func(t *testing.T, js []byte, raw []byte) {
		if m, err := decodeManifest(raw, fuzzTenant); err == nil {
			roundTripManifest(t, m)
		}
		m, err := decodeManifest(manifestEnc.EncodeAll(js, nil), fuzzTenant)
		if err != nil {
			return
		}
		if m.Tenant != fuzzTenant || m.Version != manifestVersion {
			t.Fatalf("accepted a manifest of tenant %q version %d", m.Tenant, m.Version)
		}
		roundTripManifest(t, m)
	})
}

func roundTripManifest(t *testing.T, m *Manifest) {
	t.Helper()
	enc, err := encodeManifest(m)
	if err != nil {
		return // a time json cannot write (year beyond 9999): not ours to fix
	}
	m2, err := decodeManifest(enc, m.Tenant)
	if err != nil {
		t.Fatalf("a decoded manifest does not decode after encoding: %v", err)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(m2)
	if !bytes.Equal(a, b) {
		t.Fatalf("manifest changed in a round trip:\n%s\n%s", a, b)
	}
}

// FuzzKeyFile decodes the envelope, unwraps it with the test master key,
// and tries the recovery copy with the test identity. Only the seeds' own
// key ever unwraps. Inputs that unwrap cost a millisecond (the chunker
// polynomial is checked), so run it with -fuzzminimizetime=2s or so.
func FuzzKeyFile(f *testing.F) {
	id := fuzzIdentity(f)
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		allocBound(t, len(data), 64, func() { _, _ = decodeKeyFileEnvelope(data) })
		_, _ = decodeRecovery(data, []age.Identity{id}, fuzzTenant, fuzzRepoID)
		k, err := decodeKeyFile(data, fuzzMaster, fuzzTenant, fuzzRepoID)
		if err != nil {
			return
		}
		// The sealed key is authenticated: whatever unwraps is the seeds'
		// key. (Its round trip is in TestEncodersRoundTrip: checking the
		// polynomial takes a millisecond, too slow to repeat per input.)
		if k.Tenant != fuzzTenant || k.RepoID != fuzzRepoID || !bytes.Equal(k.DataKey, fuzzDataKey) {
			t.Fatalf("unwrapped another key: %+v", k)
		}
	})
}

// fuzzIdentity is a fixed age identity for the recovery seeds (a test
// fixture, protecting nothing).
func fuzzIdentity(t testing.TB) *age.X25519Identity {
	id, err := age.ParseX25519Identity("AGE-SECRET-KEY-1VJKHMTEHDU6TKJXXUDREND55UER0387GTJQ29NE4KHDZ93S2NMPQFRTRXP")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// FuzzRepoConfig: decodeConfig accepts only valid configs, and those
// survive encode and decode unchanged.
func FuzzRepoConfig(f *testing.F) {
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *Config
		var err error
		allocBound(t, len(data), 64, func() { c, err = decodeConfig(data, fuzzTenant) })
		if err != nil {
			return
		}
		if c.validate(fuzzTenant) != nil || c.Chunker.Validate() != nil {
			t.Fatal("accepted an invalid config")
		}
		enc, err := c.encode()
		if err != nil {
			return // a time json cannot write
		}
		c2, err := decodeConfig(enc, fuzzTenant)
		if err != nil {
			t.Fatalf("a decoded config does not decode after encoding: %v", err)
		}
		a, _ := json.Marshal(c)
		b, _ := json.Marshal(c2)
		if !bytes.Equal(a, b) {
			t.Fatal("config changed in a round trip")
		}
	})
}

// Decoders refuse counts their input cannot hold, before allocating.
func TestDecodersRejectHugeCounts(t *testing.T) {
	huge := func(magic string) []byte {
		b := append([]byte(magic), 1)
		return binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	indexOnePackHugeBlobs := append(binary.LittleEndian.AppendUint32(append([]byte(indexMagic), indexVersion1), 1), make([]byte, 32)...)
	indexHugeSupersedes := binary.LittleEndian.AppendUint32(append([]byte(indexMagic), indexVersion), 0xffffffff)
	indexOnePackHugeBlobs = binary.LittleEndian.AppendUint32(indexOnePackHugeBlobs, 0xffffffff)
	cases := []struct {
		name string
		fn   func() error
		n    int
	}{
		{"pack header with 2^32-1 entries", func() error { _, err := decodePackHeader(huge(packHeaderMagic), 1<<30); return err }, 9},
		{"index with 2^32-1 packs", func() error { _, err := decodeIndex(huge(indexMagic)); return err }, 9},
		{"index pack with 2^32-1 blobs", func() error { _, err := decodeIndex(indexOnePackHugeBlobs); return err }, len(indexOnePackHugeBlobs)},
		{"index superseding 2^32-1 indexes", func() error { _, err := decodeIndex(indexHugeSupersedes); return err }, len(indexHugeSupersedes)},
		{"pack with a 4 GiB header length", func() error {
			p := []byte{0xff, 0xff, 0xff, 0xff}
			_, err := parsePack(fuzzMeta(t), sha256.Sum256(p), p)
			return err
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			allocBound(t, c.n, 4, func() { err = c.fn() })
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// Decode(encode(x)) == x for every encoder, on real structures.
func TestEncodersRoundTrip(t *testing.T) {
	seeds := buildSeeds(t)
	for _, p := range seeds.indexes {
		sup := []Hash{{7}, {8}}
		got, err := decodeIndex(encodeIndex(sup, p))
		if err != nil || fmt.Sprint(got.Packs) != fmt.Sprint(p) || fmt.Sprint(got.Supersedes) != fmt.Sprint(sup) {
			t.Errorf("index round trip: %v", err)
		}
		got, err = decodeIndex(encodeIndexVersion(&indexObject{Version: indexVersion1, Packs: p}))
		if err != nil || fmt.Sprint(got.Packs) != fmt.Sprint(p) || got.Supersedes != nil {
			t.Errorf("version 1 index round trip: %v", err)
		}
	}
	for _, ph := range seeds.packs {
		entries, err := parsePack(fuzzMeta(t), sha256.Sum256(ph.pack), ph.pack)
		if err != nil || fmt.Sprint(entries) != fmt.Sprint(ph.entries) {
			t.Errorf("pack round trip: %v", err)
		}
	}
	for _, m := range seeds.manifests {
		enc, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeManifest(enc, fuzzTenant)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(m)
		b, _ := json.Marshal(got)
		if !bytes.Equal(a, b) {
			t.Errorf("manifest round trip:\n%s\n%s", a, b)
		}
	}
	for _, kf := range seeds.keyFiles {
		k, err := decodeKeyFile(kf, fuzzMaster, fuzzTenant, fuzzRepoID)
		if err != nil || !bytes.Equal(k.DataKey, seeds.key.DataKey) || k.Pol != seeds.key.Pol {
			t.Errorf("key file round trip: %v", err)
		}
	}
}

// Changing any byte of a key file never yields another key: it fails, or
// (a change JSON ignores, such as the case of a field name) gives the
// same key. Recovery copies likewise.
func TestKeyFileMalleability(t *testing.T) {
	seeds := buildSeeds(t)
	id := fuzzIdentity(t)
	want, _ := json.Marshal(seeds.key)
	check := func(what string, i int, bit byte, k *TenantKey, err error) {
		if err != nil {
			return
		}
		if got, _ := json.Marshal(k); !bytes.Equal(got, want) {
			t.Fatalf("flipping byte %d (^%#x) of a key file yields another key (%s)", i, bit, what)
		}
	}
	// A flip that decodes costs a millisecond (the polynomial is checked):
	// the key file with a recovery copy, where flips in the (separately
	// authenticated) copy leave the master wrap intact, is sampled.
	for n, kf := range seeds.keyFiles {
		for i := range kf {
			for _, bit := range []byte{0x01, 0x20} {
				b := bytes.Clone(kf)
				b[i] ^= bit
				if n == 0 || i%7 == 0 {
					k, err := decodeKeyFile(b, fuzzMaster, fuzzTenant, fuzzRepoID)
					check("master", i, bit, k, err)
				}
				// An X25519 operation each: every few bytes will do.
				if n > 0 && i%5 == 0 {
					k, err := decodeRecovery(b, []age.Identity{id}, fuzzTenant, fuzzRepoID)
					check("recovery", i, bit, k, err)
				}
			}
		}
	}
}

type packSeed struct {
	plain   []byte
	entries []BlobEntry
	pack    []byte
}

type seedSet struct {
	key       *TenantKey
	packs     []packSeed
	indexes   [][]PackBlobs
	manifests []*Manifest
	keyFiles  [][]byte
	configs   [][]byte
}

func buildSeeds(t testing.TB) *seedSet {
	t.Helper()
	s := &seedSet{}
	sealer, err := chunk.NewSealer(fuzzDataKey, fuzzIDKey)
	if err != nil {
		t.Fatal(err)
	}
	ms := fuzzMeta(t)
	blobs := [][]byte{[]byte("a"), bytes.Repeat([]byte("compressible "), 300), []byte(strings.Repeat("x", 1000)), {}}
	for n := 1; n <= len(blobs); n++ {
		var p packer
		for _, b := range blobs[:n] {
			id := sealer.ID(b)
			sealed, err := sealer.Seal(nil, id, b)
			if err != nil {
				t.Fatal(err)
			}
			p.add(id, sealed, len(b))
		}
		data, h, entries := p.finish(ms)
		s.packs = append(s.packs, packSeed{plain: encodePackHeader(entries), entries: entries, pack: data})
		s.indexes = append(s.indexes, []PackBlobs{{Pack: h, Blobs: entries}})
	}
	s.indexes = append(s.indexes, nil, []PackBlobs{{Pack: Hash{1}}}, []PackBlobs{
		{Pack: Hash{2}, Blobs: s.packs[1].entries}, {Pack: Hash{3}, Blobs: s.packs[3].entries},
	})

	start := time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC)
	var ids []chunk.ID
	for _, b := range blobs {
		ids = append(ids, sealer.ID(b))
	}
	s.manifests = []*Manifest{
		{Version: manifestVersion, Tenant: fuzzTenant, Engine: "files", Started: start, Finished: start.Add(time.Minute), Locations: []string{"amsterdam", "groningen"}},
		{
			Version: manifestVersion, Tenant: fuzzTenant, Appliance: "kluis-1", Engine: "postgres", ServerVersion: "16.4",
			Started: start, Finished: start.Add(time.Hour), Parent: strings.Repeat("ab", 32), Locations: []string{"amsterdam"},
			Streams: []Stream{
				{Name: "schema/pre", Kind: KindSchemaPre, Size: 1001, Blobs: ids[:1]},
				{Name: "table/public.clients", Kind: KindTable, Size: 5000, Blobs: ids, Meta: json.RawMessage(`{"columns":["id","bsn"],"rows":2}`)},
				{Name: "empty", Kind: KindFile, Size: 0},
			},
		},
	}

	pol, err := chunk.RandomPol()
	if err != nil {
		t.Fatal(err)
	}
	s.key = &TenantKey{
		Tenant: fuzzTenant, RepoID: fuzzRepoID, Created: start, Pol: pol,
		DataKey: fuzzDataKey, IDKey: fuzzIDKey, FingerprintKey: bytes.Repeat([]byte{0xf1}, chunk.KeySize),
		ConfigSHA256: strings.Repeat("cd", 32),
	}
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize))
	for _, v := range []struct {
		recipient string
		signer    ed25519.PrivateKey
	}{{"", nil}, {fuzzIdentity(t).Recipient().String(), nil}, {fuzzIdentity(t).Recipient().String(), signer}} {
		kf, err := encodeKeyFile(s.key, fuzzMaster, v.recipient, v.signer)
		if err != nil {
			t.Fatal(err)
		}
		s.keyFiles = append(s.keyFiles, kf)
	}

	for _, p := range []chunk.Params{chunk.DefaultParams, {Min: 64, Avg: 64, Max: 64}, {Min: 1 << 20, Avg: 4 << 20, Max: chunk.MaxChunkSize}, chunk.RowDeltaParams} {
		version := configVersion
		if p.Cut != "" {
			version = configVersionCut
		}
		c := &Config{Version: version, ID: fuzzRepoID, Tenant: fuzzTenant, Created: start, Chunker: p,
			BlobID: blobIDName, AEAD: aeadName, Compression: compName, Padding: paddingName, PackSize: 16 << 20}
		b, err := c.encode()
		if err != nil {
			t.Fatal(err)
		}
		s.configs = append(s.configs, b)
	}
	return s
}

// seedCorpus is what testdata/fuzz holds: valid structures, and a few
// near misses of each.
func seedCorpus(t testing.TB) map[string]map[string][]any {
	s := buildSeeds(t)
	out := map[string]map[string][]any{
		"FuzzPackHeader": {}, "FuzzIndex": {}, "FuzzManifest": {}, "FuzzKeyFile": {}, "FuzzRepoConfig": {},
	}
	for i, p := range s.packs {
		dataLen := uint32(len(p.pack) - 4 - int(binary.LittleEndian.Uint32(p.pack[len(p.pack)-4:])))
		out["FuzzPackHeader"][fmt.Sprintf("pack-%d-blobs", len(p.entries))] = []any{p.plain, dataLen, p.pack}
		out["FuzzPackHeader"][fmt.Sprintf("truncated-%d", i)] = []any{p.plain[:len(p.plain)-1], dataLen, p.pack[:len(p.pack)-1]}
		out["FuzzPackHeader"][fmt.Sprintf("short-data-%d", i)] = []any{p.plain, dataLen - 1, p.pack[len(p.pack)/2:]}
	}
	out["FuzzPackHeader"]["empty"] = []any{[]byte{}, uint32(0), []byte{}}
	out["FuzzPackHeader"]["no-entries"] = []any{encodePackHeader(nil), uint32(0), []byte{}}
	for i, p := range s.indexes {
		enc := encodeIndexVersion(&indexObject{Version: indexVersion1, Packs: p})
		out["FuzzIndex"][fmt.Sprintf("index-%d", i)] = []any{enc}
		if len(enc) > 9 {
			out["FuzzIndex"][fmt.Sprintf("trailing-%d", i)] = []any{append(bytes.Clone(enc), 0)}
		}
		enc2 := encodeIndex([]Hash{{byte(i)}, {0xff}}, p)
		out["FuzzIndex"][fmt.Sprintf("index-v2-%d", i)] = []any{enc2}
		out["FuzzIndex"][fmt.Sprintf("v2-truncated-%d", i)] = []any{enc2[:len(enc2)-1]}
	}
	for i, m := range s.manifests {
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		out["FuzzManifest"][fmt.Sprintf("manifest-%d", i)] = []any{js, enc}
		other := bytes.Replace(js, []byte(fuzzTenant), []byte("praktijk-b"), 1)
		out["FuzzManifest"][fmt.Sprintf("other-tenant-%d", i)] = []any{other, []byte{}}
	}
	out["FuzzManifest"]["repeated-stream"] = []any{[]byte(`{"version":1,"tenant":"praktijk-a","engine":"x","started":"2025-01-01T00:00:00Z","finished":"2025-01-01T00:00:00Z","locations":[],"streams":[{"name":"a","kind":"file","size":0,"blobs":null},{"name":"a","kind":"file","size":0,"blobs":null}]}`), []byte{}}
	for i, kf := range s.keyFiles {
		out["FuzzKeyFile"][fmt.Sprintf("keyfile-%d", i)] = []any{kf}
	}
	out["FuzzKeyFile"]["unknown-field"] = []any{bytes.Replace(s.keyFiles[0], []byte(`"version"`), []byte(`"versio"`), 1)}
	for i, c := range s.configs {
		out["FuzzRepoConfig"][fmt.Sprintf("config-%d", i)] = []any{c}
	}
	out["FuzzRepoConfig"]["other-tenant"] = []any{bytes.Replace(s.configs[0], []byte(fuzzTenant), []byte("praktijk-b"), 1)}
	return out
}

// marshalCorpus writes a `go test fuzz v1` file.
func marshalCorpus(vals []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpus value of type %T", v))
		}
	}
	return b.Bytes()
}

// readCorpus reads a `go test fuzz v1` file of []byte and uint32 values.
func readCorpus(path string) ([]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || sc.Text() != "go test fuzz v1" {
		return nil, errors.New("not a `go test fuzz v1` file")
	}
	var vals []any
	for sc.Scan() {
		line := sc.Text()
		open := strings.Index(line, "(")
		if open < 0 || !strings.HasSuffix(line, ")") {
			return nil, fmt.Errorf("bad line %q", line)
		}
		typ, arg := line[:open], line[open+1:len(line)-1]
		switch typ {
		case "[]byte":
			s, err := strconv.Unquote(arg)
			if err != nil {
				return nil, fmt.Errorf("bad []byte literal: %v", err)
			}
			vals = append(vals, []byte(s))
		case "uint32":
			n, err := strconv.ParseUint(arg, 0, 32)
			if err != nil {
				return nil, fmt.Errorf("bad uint32: %v", err)
			}
			vals = append(vals, uint32(n))
		default:
			return nil, fmt.Errorf("unexpected type %s", typ)
		}
	}
	return vals, sc.Err()
}

func corpusTypes(vals []any) string {
	var types []string
	for _, v := range vals {
		types = append(types, fmt.Sprintf("%T", v))
	}
	return strings.Join(types, " ")
}

// TestFuzzSeedCorpus checks that every target's seed corpus exists, is not
// empty, and parses with the target's argument types; with -update it
// rewrites them. (`go test` itself runs every seed through its target.)
func TestFuzzSeedCorpus(t *testing.T) {
	if *update {
		for target, entries := range seedCorpus(t) {
			dir := filepath.Join("testdata", "fuzz", target)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, vals := range entries {
				if err := os.WriteFile(filepath.Join(dir, name), marshalCorpus(vals), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	ms := fuzzMeta(t)
	// valid reports whether a seed reaches its decoder's success path, so
	// a format change cannot leave the fuzzer only garbage.
	targets := []struct {
		name, types string
		valid       func(v []any) bool
	}{
		{"FuzzPackHeader", "[]uint8 uint32 []uint8", func(v []any) bool {
			p := v[2].([]byte)
			_, err := parsePack(ms, sha256.Sum256(p), p)
			return err == nil
		}},
		{"FuzzIndex", "[]uint8", func(v []any) bool { _, err := decodeIndex(v[0].([]byte)); return err == nil }},
		{"FuzzManifest", "[]uint8 []uint8", func(v []any) bool {
			_, err := decodeManifest(v[1].([]byte), fuzzTenant)
			return err == nil
		}},
		{"FuzzKeyFile", "[]uint8", func(v []any) bool {
			_, err := decodeKeyFile(v[0].([]byte), fuzzMaster, fuzzTenant, fuzzRepoID)
			return err == nil
		}},
		{"FuzzRepoConfig", "[]uint8", func(v []any) bool { _, err := decodeConfig(v[0].([]byte), fuzzTenant); return err == nil }},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target.name, "*"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) < 3 {
				t.Fatalf("%d seed files, want at least 3 (run with -update)", len(files))
			}
			valid := 0
			for _, file := range files {
				vals, err := readCorpus(file)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if got := corpusTypes(vals); got != target.types {
					t.Fatalf("%s: argument types %q, want %q", file, got, target.types)
				}
				if target.valid(vals) {
					valid++
				}
			}
			if valid == 0 || valid == len(files) {
				t.Errorf("%d of %d seeds decode; want some valid ones and some near misses (run with -update)", valid, len(files))
			}
		})
	}
}
