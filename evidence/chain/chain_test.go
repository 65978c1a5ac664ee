package chain

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newLog(t *testing.T, n int) (string, ed25519.PrivateKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log.jsonl")
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for i := range n {
		if _, err := Append(path, key, t0.Add(time.Duration(i)*time.Minute), map[string]any{"i": i, "who": "anna", "why": "A & <B> — Cliënt\t\"x\""}); err != nil {
			t.Fatal(err)
		}
	}
	return path, key
}

func lines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestVerifyDetectsTampering(t *testing.T) {
	path, key := newLog(t, 5)
	pub := key.Public().(ed25519.PublicKey)
	h, err := VerifyFile(path, pub)
	if err != nil || h.Count != 5 {
		t.Fatalf("intact log: %v, %d records", err, h.Count)
	}
	ls := lines(t, path)
	fix := func(s []string) []string { // every line ends in LF
		out := append([]string(nil), s...)
		for i := range out {
			if !strings.HasSuffix(out[i], "\n") {
				out[i] += "\n"
			}
		}
		return out
	}
	ls = fix(ls)
	_, other, _ := ed25519.GenerateKey(nil)
	forged, _ := newLog(t, 6)
	cases := []struct {
		name  string
		lines []string
		pub   ed25519.PublicKey
	}{
		{"edited record", append(append(append([]string(nil), ls[:2]...), strings.Replace(ls[2], `"anna"`, `"bert"`, 1)), ls[3:]...), pub},
		{"removed record", append(append([]string(nil), ls[:2]...), ls[3:]...), pub},
		{"reordered records", []string{ls[0], ls[2], ls[1], ls[3], ls[4]}, pub},
		{"inserted copy", append(append(append([]string(nil), ls[:3]...), ls[2]), ls[3:]...), pub},
		{"inserted foreign record", append(append(append([]string(nil), ls[:3]...), fix(lines(t, forged))[3]), ls[3:]...), pub},
		{"removed first record", ls[1:], pub},
		{"other key", ls, other.Public().(ed25519.PublicKey)},
		{"cut off last line feed", append(append([]string(nil), ls[:4]...), strings.TrimSuffix(ls[4], "\n")), pub},
		{"garbage line", append(append([]string(nil), ls...), "{}\n"), pub},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(strings.NewReader(strings.Join(c.lines, "")), c.pub)
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("want ErrBroken, got %v", err)
			}
		})
	}
}

func TestAppendRepairsTornTail(t *testing.T) {
	path, key := newLog(t, 3)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"entry":{"seq":4,"pr`)
	f.Close()
	if _, err := VerifyFile(path, key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBroken) {
		t.Fatalf("torn tail verified: %v", err)
	}
	e, err := Append(path, key, time.Now(), "next")
	if err != nil || e.Seq != 4 {
		t.Fatalf("append after torn tail: seq %d, %v", e.Seq, err)
	}
	h, err := VerifyFile(path, key.Public().(ed25519.PublicKey))
	if err != nil || h.Count != 4 {
		t.Fatalf("after repair: %v, %d", err, h.Count)
	}
	es, err := Read(path)
	if err != nil || len(es) != 4 || !bytes.Equal(es[3].Body, []byte(`"next"`)) {
		t.Fatalf("read: %v %v", es, err)
	}
}

func TestConcurrentAppendsChain(t *testing.T) {
	path, key := newLog(t, 0)
	done := make(chan error)
	for i := range 8 {
		go func() {
			_, err := Append(path, key, time.Now(), i)
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if h, err := VerifyFile(path, key.Public().(ed25519.PublicKey)); err != nil || h.Count != 8 {
		t.Fatalf("%v, %d", err, h.Count)
	}
}

func FuzzVerify(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(bytes.NewReader(make([]byte, 64)))
	path := filepath.Join(f.TempDir(), "l")
	for i := range 3 {
		Append(path, key, time.Unix(int64(i), 0), i)
	}
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Verify(bytes.NewReader(data), pub)
		if err == nil && !bytes.HasPrefix(b, data) && h.Count > 0 {
			t.Fatalf("forged log of %d records verifies", h.Count)
		}
	})
}
