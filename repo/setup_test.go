package repo_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "time/tzdata" // Europe/Amsterdam on machines without a zoneinfo database

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
	"github.com/kluis-nl/kluis/repo/locationtest"
)

// Small packs, so that even a few MiB make many of them. The chunk sizes
// are the defaults: the dedup figures hold for what ships.
var testParams = chunk.Params{Min: 16 << 10, Avg: 64 << 10, Max: 512 << 10}

const (
	testPackSize = 1 << 20
	testTenant   = "praktijk-a"
)

// fixture is a tenant repository at in-memory locations, each behind a
// fault injector.
type fixture struct {
	t      testing.TB
	tenant string
	master repo.MasterKey
	mems   []*locationtest.MemLocation
	faults []*faulty.Location
	locs   []repo.Location
	opts   repo.Options
}

func newFixture(t testing.TB, names ...string) *fixture {
	t.Helper()
	if len(names) == 0 {
		names = []string{"amsterdam", "groningen"}
	}
	f := &fixture{t: t, tenant: testTenant}
	f.master = testMaster(t)
	for _, n := range names {
		m := locationtest.NewMemLocation(n)
		fl := faulty.New(m, faulty.Options{})
		f.mems = append(f.mems, m)
		f.faults = append(f.faults, fl)
		f.locs = append(f.locs, fl)
	}
	f.opts = repo.Options{Master: f.master, Chunker: testParams, PackSize: testPackSize}
	return f
}

func testMaster(t testing.TB) repo.MasterKey {
	t.Helper()
	k, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *fixture) init() *repo.Repo {
	f.t.Helper()
	r, res, err := repo.Init(context.Background(), f.tenant, f.locs, f.opts)
	if err != nil {
		f.t.Fatalf("Init: %v", err)
	}
	for _, lr := range res {
		if !lr.OK {
			f.t.Fatalf("Init at %s: %s", lr.Location, lr.Error)
		}
	}
	return r
}

func (f *fixture) open() *repo.Repo {
	f.t.Helper()
	r, err := repo.Open(context.Background(), f.tenant, f.locs, repo.Options{Master: f.master})
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return r
}

// names returns the objects of one kind ("data", "index", "snapshots",
// "keys", "config") at location i.
func (f *fixture) names(i int, kind string) []string {
	var out []string
	for _, n := range f.mems[i].Names() {
		if strings.HasPrefix(n, f.tenant+"/"+kind) {
			out = append(out, n)
		}
	}
	return out
}

// stream is one stream of a backup; open returns its content afresh.
type stream struct {
	name string
	open func() io.Reader
}

func bytesStream(name string, b []byte) stream {
	return stream{name, func() io.Reader { return bytes.NewReader(b) }}
}

// backup writes one snapshot of streams and commits it.
func backup(t testing.TB, r *repo.Repo, streams ...stream) *repo.Result {
	t.Helper()
	res, err := tryBackup(r, streams...)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res
}

func tryBackup(r *repo.Repo, streams ...stream) (*repo.Result, error) {
	ctx := context.Background()
	b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "files"})
	if err != nil {
		return nil, err
	}
	for _, s := range streams {
		if err := b.Stream(ctx, s.name, repo.KindFile, s.open(), nil); err != nil {
			return nil, err
		}
	}
	return b.Commit(ctx)
}

// digest hashes a reader.
func digest(t testing.TB, rd io.Reader) (sum [32]byte, n int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, n
}

// verifyRestore reads every stream of snapshot id (the latest when id is
// zero) through r and compares it with what was backed up.
func verifyRestore(t testing.TB, r *repo.Repo, id repo.Hash, streams ...stream) {
	t.Helper()
	if err := tryRestore(t, r, id, streams...); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

func tryRestore(t testing.TB, r *repo.Repo, id repo.Hash, streams ...stream) error {
	t.Helper()
	ctx := context.Background()
	ref := "latest"
	if id != (repo.Hash{}) {
		ref = id.String()
	}
	si, err := r.FindSnapshot(ctx, ref)
	if err != nil {
		return err
	}
	if len(si.Manifest.Streams) != len(streams) {
		t.Fatalf("snapshot has %d streams, want %d", len(si.Manifest.Streams), len(streams))
	}
	for _, s := range streams {
		ms, ok := si.Manifest.Stream(s.name)
		if !ok {
			t.Fatalf("snapshot lacks stream %s", s.name)
		}
		want, wantN := digest(t, s.open())
		rc := r.StreamReader(ctx, ms)
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.name, err)
		}
		if n != wantN || !bytes.Equal(h.Sum(nil), want[:]) || ms.Size != wantN {
			t.Fatalf("stream %s: restored %d bytes (manifest says %d) that differ from the %d backed up", s.name, n, ms.Size, wantN)
		}
	}
	return nil
}

// checkAll runs Check (with ReadData) and fails on any location's errors.
func checkAll(t testing.TB, r *repo.Repo) []repo.LocationCheck {
	t.Helper()
	cs, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, c := range cs {
		if !c.OK() {
			t.Errorf("Check at %s: %s", c.Location, strings.Join(c.Errors, "\n"))
		}
	}
	return cs
}

// randomStream is n pseudo-random (incompressible) bytes.
func randomStream(name string, seed uint64, n int64) stream {
	return stream{name, func() io.Reader {
		return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}), n)
	}}
}

// textStream is n bytes of one paragraph repeated: redundant and
// compressible.
func textStream(name, paragraph string, n int64) stream {
	return stream{name, func() io.Reader { return io.LimitReader(&repeatReader{s: paragraph}, n) }}
}

// repeatReader repeats s forever.
type repeatReader struct {
	s   string
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

const loremParagraph = "Consult 2024: patient reports mild headache since last week; advised rest, fluids, " +
	"follow-up in two weeks if symptoms persist. No medication changes. -- huisarts\n"

// tableStream is a table dump of n bytes, lines "id\tBSN\tname\tdate\t
// free text" (about 75 bytes each). Lines whose number is in changed get
// another date and free text, as an update of those rows would.
func tableStream(name string, n int64, changed map[int]bool) stream {
	lines := int(n/50) + 1000 // more than n bytes hold
	return stream{name, func() io.Reader {
		pr, pw := io.Pipe()
		go func() {
			w := bufio.NewWriterSize(pw, 256<<10)
			rng := rand.New(rand.NewPCG(1, 2))
			var line []byte
			for i := range lines {
				line = tableLine(line[:0], i, rng, changed[i])
				if _, err := w.Write(line); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(w.Flush())
		}()
		return &closingReader{io.LimitReader(pr, n), pr}
	}}
}

// tableLines is somewhat fewer than the lines in n bytes of a table
// stream (they average about 76 bytes).
func tableLines(n int64) int { return int(n / 80) }

// closingReader closes the pipe at the end, so its writer stops.
type closingReader struct {
	io.Reader
	pr *io.PipeReader
}

func (c *closingReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	if err == io.EOF {
		c.pr.Close()
	}
	return n, err
}

var (
	firstNames = []string{"Jan", "Anna", "Pieter", "Sanne", "Mohamed", "Fleur", "Daan", "Noor", "Bram", "Emma", "Lucas", "Sara"}
	lastNames  = []string{"de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Yilmaz", "Bos"}
	notes      = []string{"controle bloeddruk", "griepvaccinatie", "verwijzing fysiotherapie", "herhaalrecept", "telefonisch consult", "wondcontrole", "uitslag lab besproken"}
)

// tableLine draws the same random numbers whether or not the line is
// changed, so the lines after a changed one are unchanged.
func tableLine(dst []byte, i int, rng *rand.Rand, changed bool) []byte {
	bsn := fakeBSN(rng)
	fn, ln := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
	day := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(30000))
	note, n2 := notes[rng.IntN(len(notes))], rng.IntN(1000)
	if changed {
		day = day.AddDate(0, 0, 1)
		note, n2 = "GEWIJZIGD "+note, n2+1
	}
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, '\t')
	dst = append(dst, bsn...)
	dst = append(dst, '\t')
	dst = append(dst, fn+" "+ln...)
	dst = append(dst, '\t')
	dst = day.AppendFormat(dst, "2006-01-02")
	dst = append(dst, '\t')
	dst = append(dst, note...)
	dst = append(dst, ", episode "...)
	dst = strconv.AppendInt(dst, int64(n2), 10)
	return append(dst, '\n')
}

// fakeBSN returns a 9-digit number that passes the BSN eleven test
// (9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 mod 11).
func fakeBSN(rng *rand.Rand) string {
	for {
		var d [9]int
		d[0] = 1 + rng.IntN(9)
		sum := 9 * d[0]
		for i := 1; i < 8; i++ {
			d[i] = rng.IntN(10)
			sum += (9 - i) * d[i]
		}
		d9 := sum % 11
		if d9 == 10 {
			continue
		}
		d[8] = d9
		var b strings.Builder
		for _, x := range d {
			b.WriteByte(byte('0' + x))
		}
		return b.String()
	}
}

func validBSN(s string) bool {
	if len(s) != 9 {
		return false
	}
	sum := 0
	for i := range 9 {
		c := int(s[i] - '0')
		if c < 0 || c > 9 {
			return false
		}
		if i < 8 {
			sum += (9 - i) * c
		} else {
			sum -= c
		}
	}
	return sum%11 == 0
}

// big reports whether the full-size cases run: not under -short, and not
// under the race detector unless KLUIS_TEST_BIG=1 (instrumented chunking is
// about ten times slower).
func big() bool {
	if testing.Short() {
		return false
	}
	if raceEnabled {
		return os.Getenv("KLUIS_TEST_BIG") == "1"
	}
	return true
}

// size returns full when big() and small otherwise.
func size(full, small int64) int64 {
	if big() {
		return full
	}
	return small
}
