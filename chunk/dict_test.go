package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// testDictRows is table-like text to train and test dictionaries on.
func testDictRows(n, seed int) [][]byte {
	var chunks [][]byte
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%d\t%d\tconsult\t2026-%02d-%02d 09:%02d:00+00\tPatient reports %s; advice: rest and %s.\t\\N\n",
			seed*100000+i, i%977, 1+i%12, 1+i%28, i%60, []string{"headache", "back pain", "a cough", "fatigue"}[i%4], []string{"fluids", "paracetamol", "a follow-up"}[i%3])
		if b.Len() > 16<<10 {
			chunks = append(chunks, bytes.Clone(b.Bytes()))
			b.Reset()
		}
	}
	return chunks
}

// fixedDict is a dictionary with a fixed zstd ID, so seeds are stable:
// testdata/dict/fixed, which -update writes (building it is slow under
// the fuzzer's instrumentation).
func fixedDict(t testing.TB) []byte {
	t.Helper()
	name := filepath.Join("testdata", "dict", "fixed")
	if !*update {
		d, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeedCorpus -update)", err)
		}
		return d
	}
	chunks := testDictRows(3000, 1)
	var hist []byte
	for _, c := range chunks {
		hist = append(hist, c[:1024]...)
	}
	d, err := zstd.BuildDict(zstd.BuildDictOptions{ID: 0x6b6c7531, Contents: chunks, History: hist, Offsets: [3]int{1, 4, 8}, Level: zstd.SpeedFastest})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, d, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDictSealOpen(t *testing.T) {
	s := newTestSealer(t)
	chunks := testDictRows(80000, 2)
	plain, err := TrainDict(chunks, MinDictTraining)
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadDict(plain)
	if err != nil {
		t.Fatal(err)
	}
	var with, without int
	for _, c := range testDictRows(3000, 3) {
		id := s.ID(c)
		a, err := s.SealDict(nil, id, c, d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Seal(nil, id, c)
		with, without = with+len(a), without+len(b)
		// Not loaded: the error names the dictionary and is ErrCorrupt.
		var de *DictError
		if _, err := s.Open(nil, id, a); !errors.As(err, &de) || de.ZstdID != d.ZstdID() || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open without the dictionary: %v", err)
		}
		s.AddDict(d)
		got, err := s.Open(nil, id, a)
		if err != nil || !bytes.Equal(got, c) {
			t.Fatalf("open with the dictionary: %v", err)
		}
		// Into a destination with room (decoded in place) and after a prefix.
		roomy := append(make([]byte, 0, 3+len(c)), "pre"...)
		if got, err := s.Open(roomy, id, a); err != nil || string(got[:3]) != "pre" || !bytes.Equal(got[3:], c) {
			t.Fatalf("open with the dictionary after a prefix: %v", err)
		}
		s = newTestSealer(t)
	}
	if with >= without {
		t.Errorf("sealed with the dictionary %d bytes, without %d", with, without)
	}
	t.Logf("sealed with the dictionary %d bytes, without %d (%.2f×)", with, without, float64(with)/float64(without))

	// A blob compressed with another dictionary does not open where that
	// one is not loaded.
	other, err := LoadDict(fixedDict(t))
	if err != nil {
		t.Fatal(err)
	}
	c := chunks[0]
	sealed, _ := s.SealDict(nil, s.ID(c), c, other)
	s2 := newTestSealer(t)
	if _, err := s2.Open(nil, s.ID(c), sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened without its dictionary: %v", err)
	}
}

func TestTrainDictRefusesTooLittle(t *testing.T) {
	if _, err := TrainDict(testDictRows(100, 1), MinDictTraining); err == nil {
		t.Fatal("trained on too little")
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), append([]byte{0x37, 0xa4, 0x30, 0xec, 0, 0, 0, 0}, make([]byte, 100)...)} {
		if _, err := LoadDict(bad); err == nil {
			t.Errorf("LoadDict accepted %q", bad)
		}
	}
}

// dictSeeds is FuzzOpenDict's seed corpus (testdata/fuzz/FuzzOpenDict).
func dictSeeds(t testing.TB) map[string][]any {
	dplain := fixedDict(t)
	d, err := LoadDict(dplain)
	if err != nil {
		t.Fatal(err)
	}
	sample := testDictRows(200, 5)[0]
	frame := d.enc.EncodeAll(sample, nil)
	other := bytes.Clone(frame)
	other[5] ^= 0x40 // the frame header's dictionary ID
	zeroID := bytes.Clone(dplain)
	copy(zeroID[4:8], []byte{0, 0, 0, 0})
	return map[string][]any{
		"inner-dict":            {inner(kindZstdDict, uint32(len(frame)), frame, 3), byte(0)},
		"inner-dict-other-id":   {inner(kindZstdDict, uint32(len(other)), other, 0), byte(0)},
		"inner-dict-garbage":    {inner(kindZstdDict, 8, []byte("\x28\xb5\x2f\xfd\x23garb"), 0), byte(0)},
		"inner-dict-plain-zstd": {inner(kindZstdDict, uint32(len(frame)), encoder.EncodeAll(sample, nil), 0), byte(0)},
		"dict":                  {dplain, byte(1)},
		"dict-truncated":        {dplain[:len(dplain)/2], byte(1)},
		"dict-zero-id":          {zeroID, byte(1)},
	}
}

// FuzzOpenDict feeds the dictionary decoder hostile input: mode 0, data
// is the payload of a kind 2 blob sealed by a key holder and opened with a
// fixed dictionary loaded (it must open only to a plaintext with the ID it
// was asked for, else fail with ErrCorrupt); mode 1, data is a dictionary
// (LoadDict must refuse it or round-trip a sample with it).
func FuzzOpenDict(f *testing.F) {
	s := newTestSealer(f)
	dplain := fixedDict(f)
	d, err := LoadDict(dplain)
	if err != nil {
		f.Fatal(err)
	}
	s.AddDict(d)
	sample := testDictRows(200, 5)[0]
	id := s.ID(sample)
	good, err := s.SealDict(nil, id, sample, d)
	if err != nil {
		f.Fatal(err)
	}
	in, err := s.aead.Open(nil, good[:nonceSize], good[nonceSize:], additionalData(id))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(in, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		if mode&1 == 0 {
			plain, err := s.Open(nil, id, sealInner(s, id, data))
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				return
			}
			if s.ID(plain) != id {
				t.Fatal("opened to a plaintext of another ID")
			}
			return
		}
		dd, err := LoadDict(data)
		if err != nil {
			return
		}
		defer dd.Close()
		s2 := newTestSealer(t)
		sealed, err := s2.SealDict(nil, id, sample, dd)
		if err != nil {
			t.Fatal(err)
		}
		s2.AddDict(dd)
		got, err := s2.Open(nil, id, sealed)
		if err != nil || !bytes.Equal(got, sample) {
			t.Fatalf("a dictionary LoadDict accepted does not round-trip: %v", err)
		}
	})
}

// BenchmarkSealDict seals and opens ~16 KiB chunks of table-like rows
// with and without a dictionary trained on other rows of the same kind:
//
//	go test ./chunk -run '^$' -bench SealDict
func BenchmarkSealDict(b *testing.B) {
	s := newTestSealer(b)
	d, err := LoadDict(fixedDict(b))
	if err != nil {
		b.Fatal(err)
	}
	s.AddDict(d)
	chunks := testDictRows(4000, 9)
	for _, v := range []struct {
		name string
		d    *Dict
	}{{"without", nil}, {"dictionary", d}} {
		b.Run("seal/"+v.name, func(b *testing.B) {
			var n, sealed int
			for i := 0; b.Loop(); i++ {
				c := chunks[i%len(chunks)]
				out, err := s.SealDict(nil, ID{}, c, v.d)
				if err != nil {
					b.Fatal(err)
				}
				n, sealed = n+len(c), sealed+len(out)
			}
			b.SetBytes(int64(n / b.N))
			b.ReportMetric(float64(sealed)/float64(n), "sealed/raw")
		})
		b.Run("open/"+v.name, func(b *testing.B) {
			c := chunks[0]
			id := s.ID(c)
			out, _ := s.SealDict(nil, id, c, v.d)
			b.SetBytes(int64(len(c)))
			for b.Loop() {
				if _, err := s.Open(nil, id, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSealBest: a blob re-sealed at the best level opens as before, with
// the same dictionary or none, and the best level stores less.
func TestSealBest(t *testing.T) {
	s := newTestSealer(t)
	d, err := LoadDict(fixedDict(t))
	if err != nil {
		t.Fatal(err)
	}
	s.AddDict(d)
	be := NewBestEncoders()
	for _, dict := range []*Dict{nil, d} {
		var fast, best int
		for _, c := range testDictRows(2000, 4) {
			id := s.ID(c)
			a, err := s.SealDict(nil, id, c, dict)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.SealBest(nil, id, c, dict, be)
			if err != nil {
				t.Fatal(err)
			}
			fast, best = fast+len(a), best+len(b)
			got, err := s.Open(nil, id, b)
			if err != nil || !bytes.Equal(got, c) {
				t.Fatalf("dict %v: a blob sealed at the best level does not open as it was: %v", dict != nil, err)
			}
			if k, _ := peekInner(t, s, id, b); dict != nil && k != kindZstdDict || dict == nil && k != kindZstd {
				t.Fatalf("dict %v: kind %d", dict != nil, k)
			}
		}
		if best >= fast {
			t.Errorf("dict %v: best level stored %d bytes, fastest %d", dict != nil, best, fast)
		}
		t.Logf("dict %v: fastest %d bytes, best %d (%.3f)", dict != nil, fast, best, float64(best)/float64(fast))
	}
}
