package chunk

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	study    = flag.Bool("study", false, "run TestChunkSizeStudy (slow; not for CI)")
	studyMiB = flag.Int("study.mib", 64, "size in MiB of the stream TestChunkSizeStudy cuts")
)

const studySeed = 20250601

// TestChunkSizeStudy measures, for several average chunk sizes, what a
// nightly backup of a database table costs after 1% of its rows changed at
// scattered places: the bytes of new chunks, the number of chunks (index
// entries) and the chunk+ID+seal throughput. It picked DefaultParams.
//
//	go test ./chunk -run TestChunkSizeStudy -v -study -study.mib=200
func TestChunkSizeStudy(t *testing.T) {
	if !*study {
		t.Skip("chunk-size study: run with -study")
	}
	size := *studyMiB << 20
	v1 := tableStream(studySeed, size, false)
	v2 := tableStream(studySeed, size, true)
	changed := 0
	for range lineDiffs(v1, v2) {
		changed++
	}
	t.Logf("stream: %d MiB, %d rows, %d changed (%.2f%%), second version %+d bytes",
		len(v1)>>20, bytes.Count(v1, []byte("\n")), changed,
		100*float64(changed)/float64(bytes.Count(v1, []byte("\n"))), len(v2)-len(v1))

	s := newTestSealer(t)
	var table strings.Builder
	fmt.Fprintf(&table, "\n| avg | min | max | chunks | mean chunk | index (80 B/chunk) | sealed/raw | new chunks | new raw %% | new sealed %% | chunk+ID+seal MB/s (wall) | MB/s per CPU second |\n")
	fmt.Fprintf(&table, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	// 8 KiB is beyond the brief's range, to show where the curve goes.
	for _, avg := range []uint{8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20} {
		p := Params{Min: avg / 4, Avg: avg, Max: min(avg*8, MaxChunkSize)}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		r := runStudy(t, s, p, v1, v2)
		fmt.Fprintf(&table, "| %s | %s | %s | %d | %.1f KiB | %s | %.1f%% | %d | %.1f%% | %.1f%% | %.0f | %.0f |\n",
			sizeName(int(p.Avg)), sizeName(int(p.Min)), sizeName(int(p.Max)),
			r.chunks, float64(len(v1))/float64(r.chunks)/1024, byteSize(80*r.chunks),
			100*float64(r.sealed)/float64(len(v1)),
			r.newChunks, 100*float64(r.newRaw)/float64(len(v2)), 100*float64(r.newSealed)/float64(len(v2)),
			float64(len(v1))/1e6/r.elapsed.Seconds(), float64(len(v1))/1e6/r.cpu.Seconds())
	}
	t.Log(table.String())
}

type studyResult struct {
	chunks    int
	sealed    int64         // sealed bytes of the first version
	newChunks int           // chunks of the second version not in the first
	newRaw    int64         // their plaintext bytes
	newSealed int64         // their sealed bytes
	elapsed   time.Duration // wall time of the first version
	cpu       time.Duration // process CPU time of the first version
}

// runStudy backs up v1 (chunk, ID, seal, in one goroutine, timed) and then
// v2 against v1's IDs.
func runStudy(t *testing.T, s *Sealer, p Params, v1, v2 []byte) studyResult {
	t.Helper()
	var r studyResult
	seen := map[ID]bool{}
	buf := make([]byte, 0, MaxSealedSize)
	runtime.GC()
	start, startCPU := time.Now(), processCPU()
	c := NewChunker(bytes.NewReader(v1), testPol, 0, p)
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		id := s.ID(ch)
		sealed, err := s.Seal(buf[:0], id, ch)
		if err != nil {
			t.Fatal(err)
		}
		r.chunks++
		r.sealed += int64(len(sealed))
		seen[id] = true
	}
	r.elapsed, r.cpu = time.Since(start), processCPU()-startCPU
	c = NewChunker(bytes.NewReader(v2), testPol, 0, p)
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		id := s.ID(ch)
		if seen[id] {
			continue
		}
		seen[id] = true
		sealed, err := s.Seal(buf[:0], id, ch)
		if err != nil {
			t.Fatal(err)
		}
		r.newChunks++
		r.newRaw += int64(len(ch))
		r.newSealed += int64(len(sealed))
	}
	return r
}

func byteSize(n int) string {
	switch {
	case n >= 10<<20:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 10<<10:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// tableStream returns about size bytes of a patients table as PostgreSQL
// COPY ... TO STDOUT (text format) would write it, in primary-key order.
// Every row is a function of (seed, row number) only. With changed set, 1%
// of the rows, chosen at random, are edited in place the way a day of use
// edits them (a word of a note, a phone number, an address), each staying
// within a few bytes of its old length.
func tableStream(seed uint64, size int, changed bool) []byte {
	out := make([]byte, 0, size+size/64)
	var row []byte
	for id := 1; len(out) < size; id++ {
		row = tableRow(row[:0], seed, id, changed)
		out = append(out, row...)
	}
	return out
}

// rowFields are the columns of the synthetic table.
const (
	colID = iota
	colBSN
	colFirst
	colInfix
	colLast
	colBirth
	colPostcode
	colCity
	colPhone
	colCreated
	colNote
	numCols
)

var (
	firstNames = strings.Fields("Anna Bram Cor Daan Eva Fleur Gijs Hanna Iris Jan Kees Lotte Mohammed Noor Olga Pieter Quinten Rik Sanne Thijs Ufuk Vera Willem Yara Zoë Fatima Sem Julia Lucas Tess")
	infixes    = []string{`\N`, `\N`, `\N`, "de", "van", "van der", "van den", "ter", "in 't"}
	lastNames  = strings.Fields("Jansen Vries Bakker Visser Smit Meijer Mulder Boer Bos Vos Peters Hendriks Dekker Dijkstra Brouwer Koster Yılmaz Öztürk El-Amrani Wouters Postma Kramer Verhoeven Schouten")
	cities     = strings.Fields("Amsterdam Rotterdam Utrecht Groningen Zwolle Leeuwarden Eindhoven Tilburg Nijmegen Haarlem Amersfoort Delft Deventer Assen Middelburg Maastricht")
	noteWords  = strings.Fields(`cliënt patiënt meldt klachten pijn rug schouder knie hoofdpijn sinds weken dagen
		controle bloeddruk verhoogd normaal medicatie gestart gestopt aangepast paracetamol ibuprofen
		metoprolol doorverwezen fysiotherapie huisarts specialist cardioloog afspraak gemaakt over
		twee drie vier zes maanden telefonisch contact gehad met partner dochter zoon mantelzorger
		slaapt slecht eet goed beweegt weinig voldoende stemming somber stabiel verbeterd verslechterd
		uitleg gegeven leefstijl advies roken gestopt alcohol matig gewicht lengte BMI glucose HbA1c
		nuchter bloedonderzoek aangevraagd uitslag volgt besproken akkoord geen bijzonderheden
		wondzorg verband verwisseld genezing voorspoedig rood zwelling koorts temperatuur 38,2 37,9
		vervolg volgende week evaluatie plan van aanpak; zie ook eerdere notitie. zie brief.`)
)

func tableRow(dst []byte, seed uint64, id int, changed bool) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	var cols [numCols]string
	cols[colID] = strconv.Itoa(id)
	cols[colBSN] = bsn(r)
	cols[colFirst] = pick(r, firstNames)
	cols[colInfix] = pick(r, infixes)
	cols[colLast] = pick(r, lastNames)
	cols[colBirth] = fmt.Sprintf("%04d-%02d-%02d", 1930+r.IntN(90), 1+r.IntN(12), 1+r.IntN(28))
	cols[colPostcode] = fmt.Sprintf("%04d %c%c", 1000+r.IntN(9000), 'A'+r.IntN(26), 'A'+r.IntN(26))
	cols[colCity] = pick(r, cities)
	cols[colPhone] = fmt.Sprintf("06-%08d", r.IntN(1e8))
	cols[colCreated] = fmt.Sprintf("20%02d-%02d-%02d %02d:%02d:%02d.%06d+01",
		10+r.IntN(15), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e6))
	words := noteLength(r)
	if words == 0 {
		cols[colNote] = `\N`
	} else {
		note := make([]string, words)
		for i := range note {
			note[i] = pick(r, noteWords)
		}
		cols[colNote] = strings.Join(note, " ")
	}

	m := rand.New(rand.NewPCG(seed^0x6b6c756973, uint64(id))) // independent of the row's own stream
	if changed && m.IntN(100) == 0 {
		switch k := m.IntN(4); {
		case k < 2 && cols[colNote] != `\N`:
			note := strings.Fields(cols[colNote])
			note[m.IntN(len(note))] = pick(m, noteWords)
			cols[colNote] = strings.Join(note, " ")
		case k == 2:
			cols[colPhone] = fmt.Sprintf("06-%08d", m.IntN(1e8))
		default:
			cols[colPostcode] = fmt.Sprintf("%04d %c%c", 1000+m.IntN(9000), 'A'+m.IntN(26), 'A'+m.IntN(26))
			cols[colCity] = pick(m, cities)
		}
	}
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, '\t')
		}
		dst = append(dst, c...)
	}
	return append(dst, '\n')
}

// noteLength returns the number of words of a free-text note: many rows
// have none, most a line, some a page.
func noteLength(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 25:
		return 0
	case x < 80:
		return 2 + r.IntN(12)
	case x < 95:
		return 15 + r.IntN(50)
	default:
		return 80 + r.IntN(250)
	}
}

// bsn returns a 9-digit number that passes the BSN eleven test.
func bsn(r *rand.Rand) string {
	for {
		var d [9]int
		sum := 0
		for i := range 8 {
			d[i] = r.IntN(10)
			sum += (9 - i) * d[i]
		}
		if d[0] == 0 {
			continue
		}
		if last := sum % 11; last < 10 { // 9*d0 + ... + 2*d7 - d8 ≡ 0 (mod 11)
			d[8] = last
			var b [9]byte
			for i := range d {
				b[i] = byte('0' + d[i])
			}
			return string(b[:])
		}
	}
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

// lineDiffs yields the pairs of lines that differ between a and b, which
// must have the same number of lines.
func lineDiffs(a, b []byte) func(yield func(string, string) bool) {
	return func(yield func(string, string) bool) {
		la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
		for i := range min(len(la), len(lb)) {
			if !bytes.Equal(la[i], lb[i]) && !yield(string(la[i]), string(lb[i])) {
				return
			}
		}
	}
}

func TestTableStream(t *testing.T) {
	a := tableStream(studySeed, 1<<20, false)
	if !bytes.Equal(a, tableStream(studySeed, 1<<20, false)) {
		t.Fatal("tableStream is not deterministic")
	}
	b := tableStream(studySeed, 1<<20, true)
	rows := bytes.Count(a, []byte("\n"))
	var changed int
	for l1, l2 := range lineDiffs(a, b) {
		changed++
		if d := len(l1) - len(l2); d < -20 || d > 20 {
			t.Errorf("changed row length differs by %d bytes:\n%s\n%s", d, l1, l2)
		}
		if f1, f2 := strings.Split(l1, "\t"), strings.Split(l2, "\t"); len(f1) != numCols || len(f2) != numCols || f1[colID] != f2[colID] {
			t.Errorf("changed row lost its shape:\n%s\n%s", l1, l2)
		}
	}
	if frac := float64(changed) / float64(rows); frac < 0.003 || frac > 0.02 {
		t.Errorf("%d of %d rows changed; want about 1%%", changed, rows)
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(a), "\n"), "\n") {
		if f := strings.Split(line, "\t"); len(f) != numCols {
			t.Fatalf("row with %d columns: %q", len(f), line)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		if n := bsn(r); !elevenProof(n) {
			t.Fatalf("bsn %s fails the eleven test", n)
		}
	}
}

func elevenProof(s string) bool {
	sum := 0
	for i, c := range s[:8] {
		sum += (9 - i) * int(c-'0')
	}
	return len(s) == 9 && (sum-int(s[8]-'0'))%11 == 0
}
