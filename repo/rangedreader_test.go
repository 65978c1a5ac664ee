package repo_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// rangedFixture is a snapshot of three streams spread over many packs.
func rangedFixture(t *testing.T) (*fixture, []stream) {
	t.Helper()
	streams := []stream{
		randomStream("random", 21, 3<<20),
		textStream("text", loremParagraph, 2<<20),
		randomStream("more", 22, 2<<20),
	}
	f := newFixture(t)
	backup(t, f.init(), streams...)
	return f, streams
}

// With a read budget of one byte every stream reader is over budget from
// its first segment: each may still fetch the segment its consumer waits
// for, so streams read at once, in small steps turn about, all finish
// and restore exactly.
func TestStreamReaderTinyBudget(t *testing.T) {
	ctx := context.Background()
	f, streams := rangedFixture(t)
	r := f.open()
	r.SetReadBudget(1)
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	type open struct {
		rd   io.ReadCloser
		h    []byte
		want [32]byte
		n    int64
	}
	var all []*open
	for _, s := range streams {
		ms, _ := si.Manifest.Stream(s.name)
		want, n := digest(t, s.open())
		all = append(all, &open{rd: r.StreamReader(ctx, ms), want: want, n: n})
	}
	sums := make([]interface {
		io.Writer
		Sum([]byte) []byte
	}, len(all))
	for i := range sums {
		sums[i] = sha256.New()
	}
	got := make([]int64, len(all))
	buf := make([]byte, 7000)
	for live := len(all); live > 0; {
		live = 0
		for i, o := range all {
			if o.rd == nil {
				continue
			}
			n, err := o.rd.Read(buf)
			sums[i].Write(buf[:n])
			got[i] += int64(n)
			switch {
			case err == io.EOF:
				o.rd.Close()
				o.rd = nil
				continue
			case err != nil:
				t.Fatalf("stream %s: %v", streams[i].name, err)
			}
			live++
		}
	}
	for i, o := range all {
		if got[i] != o.n || [32]byte(sums[i].Sum(nil)) != o.want {
			t.Errorf("stream %s: read %d bytes that differ from the %d backed up", streams[i].name, got[i], o.n)
		}
	}
}

// A reader closed early, or never read, gives its read-ahead back: a
// second round of readers under the same small budget still gets going.
func TestStreamReaderCloseReleasesBudget(t *testing.T) {
	ctx := context.Background()
	f, streams := rangedFixture(t)
	r := f.open()
	r.SetReadBudget(256 << 10)
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		for _, s := range streams {
			ms, _ := si.Manifest.Stream(s.name)
			rd := r.StreamReader(ctx, ms)
			if round%2 == 0 {
				io.CopyN(io.Discard, rd, 100<<10)
			}
			rd.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		verifyRestore(t, r, repo.Hash{}, streams...)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("readers after closed ones did not finish: budget not given back")
	}
}

// flipBlob flips a byte in the middle of one blob of stream name, at the
// given locations, and returns the blob's ID and its place in the stream.
func flipBlob(t *testing.T, f *fixture, r *repo.Repo, name string, locs ...int) (string, int) {
	t.Helper()
	ctx := context.Background()
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := si.Manifest.Stream(name)
	idx, err := r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := len(ms.Blobs) / 2
	bl, ok := idx.Lookup(ms.Blobs[k])
	if !ok {
		t.Fatal("blob not in the index")
	}
	for _, i := range locs {
		var pack string
		for _, n := range f.names(i, "data") {
			if strings.HasSuffix(n, bl.Pack.String()) {
				pack = n
			}
		}
		b, ok := f.mems[i].Bytes(pack)
		if !ok {
			t.Fatalf("pack %s not at location %d", bl.Pack, i)
		}
		b = append([]byte(nil), b...)
		b[bl.Offset+bl.Length/2] ^= 0x10
		f.mems[i].Replace(pack, b)
	}
	return ms.Blobs[k].String(), k
}

// A blob damaged at one location is read from the other and the damage
// is recorded; damaged at both, the restore fails naming the stream, the
// blob, its place and the pack, as ErrCorrupt.
func TestStreamReaderDamagedBlob(t *testing.T) {
	f, streams := rangedFixture(t)
	r := f.open()
	flipBlob(t, f, r, "text", 0)
	r = f.open()
	verifyRestore(t, r, repo.Hash{}, streams...)
	if d := r.Damage(); len(d) == 0 || d[0].Location != "amsterdam" {
		t.Errorf("damage at amsterdam not recorded: %+v", d)
	}

	id, k := flipBlob(t, f, r, "text", 1)
	err := tryRestore(t, f.open(), repo.Hash{}, streams...)
	if err == nil {
		t.Fatal("restore succeeded with a blob damaged at both locations")
	}
	t.Log(err)
	for _, want := range []string{"stream text", id, "blob " + strconv.Itoa(k+1) + " of "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("error is not ErrCorrupt: %v", err)
	}
}

// A location that goes down in the middle of a restore: the readers go on
// at the other. When the other goes down too, the restore fails with an
// error that is not "not found", promptly, instead of hanging.
func TestStreamReaderLocationDiesMidRestore(t *testing.T) {
	ctx := context.Background()
	f, streams := rangedFixture(t)
	r := f.open()
	r.SetReadBudget(512 << 10)
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string, half func()) ([32]byte, int64, error) {
		ms, _ := si.Manifest.Stream(name)
		rd := r.StreamReader(ctx, ms)
		defer rd.Close()
		h := sha256.New()
		n, err := io.CopyN(h, rd, ms.Size/2)
		if err != nil {
			return [32]byte{}, n, err
		}
		half()
		m, err := io.Copy(h, rd)
		return [32]byte(h.Sum(nil)), n + m, err
	}
	var once sync.Once
	for _, s := range streams {
		want, wantN := digest(t, s.open())
		got, n, err := read(s.name, func() { once.Do(func() { f.faults[0].SetDown(errors.New("connection reset by peer")) }) })
		if err != nil {
			t.Fatalf("stream %s with amsterdam down halfway: %v", s.name, err)
		}
		if got != want || n != wantN {
			t.Fatalf("stream %s: read %d bytes that differ from the %d backed up", s.name, n, wantN)
		}
	}

	f.faults[0].SetUp()
	start := time.Now()
	_, _, err = read("random", func() {
		f.faults[0].SetDown(errors.New("connection reset by peer"))
		f.faults[1].SetDown(errors.New("connection reset by peer"))
	})
	if err == nil {
		t.Fatal("read with both locations down succeeded")
	}
	t.Log(err)
	if errors.Is(err, repo.ErrNotFound) {
		t.Errorf("both locations down reads as not found: %v", err)
	}
	if !strings.Contains(err.Error(), "stream random") {
		t.Errorf("error does not name the stream: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing took %s", d)
	}
}
