package rowindex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/rowdelta"
)

// recordsKey keys testTable's rows by (id, body): an int and a text field
// that may be long and hold escapes, so keys span chunks.
var recordsKey = rowdelta.Key{Fields: []int{0, 2}, Order: []string{rowdelta.OrderInt, rowdelta.OrderBytes}}

// records makes n kluis-row-delta-v1 records of testTable, ascending by
// recordsKey: "+" rows of random clients and "-" deletions.
func records(rng *rand.Rand, n, clients int) (data []byte, keys []string, client []int) {
	var b bytes.Buffer
	for i := range n {
		body := strings.Repeat("k", rng.IntN(30))
		if rng.IntN(15) == 0 {
			body = strings.Repeat(`\\t`, rng.IntN(400))
		}
		keys = append(keys, string(rowdelta.KeyForm(nil, [][]byte{[]byte(fmt.Sprint(i)), []byte(body)})))
		if rng.IntN(4) == 0 {
			client = append(client, -1)
			fmt.Fprintf(&b, "-%d\t%s\n", i, body)
			continue
		}
		c := rng.IntN(clients)
		client = append(client, c)
		cs := fmt.Sprint(c)
		if rng.IntN(10) == 0 {
			cs, client[len(client)-1] = `\N`, -1
		}
		fmt.Fprintf(&b, "+%d\t%s\t%s\t7\n", i, cs, body)
	}
	return b.Bytes(), keys, client
}

func buildRecords(t *testing.T, chunks [][]byte) *Index {
	t.Helper()
	b, err := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
	if err != nil {
		t.Fatal(err)
	}
	x := finish(t, b, chunks)
	if !x.Records {
		t.Fatal("a records index decodes as a table's")
	}
	return x
}

// readSelected reads the runs of chunks that may hold hv and returns the
// records read whole.
func readSelected(t *testing.T, x *Index, chunks [][]byte, hv uint64) []string {
	t.Helper()
	var got []string
	for a := 0; a < len(chunks); a++ {
		if !x.MayContain(a, hv) {
			continue
		}
		b := a
		for b+1 < len(chunks) && x.MayContain(b+1, hv) {
			b++
		}
		err := x.ReadRun(bytes.NewReader(bytes.Join(chunks[a:b+1], nil)), a, b, func(line []byte) error {
			got = append(got, string(line))
			return nil
		})
		if err != nil {
			t.Fatalf("run %d..%d: %v", a, b, err)
		}
		a = b
	}
	return got
}

// TestRecordsIndexFindsEveryKeyAndRow: for random deltas cut at random
// points (records and keys spanning chunks included), the chunks whose
// filter may hold a record's key hold that record whole, and the chunks
// that may hold a client hold every "+" record of the client.
func TestRecordsIndexFindsEveryKeyAndRow(t *testing.T) {
	h := NewHasher(testKey)
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		data, keys, client := records(rng, 1+rng.IntN(300), 1+rng.IntN(30))
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		chunks := cut(rng, data, 1+rng.IntN(400))
		x := buildRecords(t, chunks)
		if err := x.Verify(ids(chunks), int64(len(keys))); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i, k := range keys {
			got := readSelected(t, x, chunks, h.Hash(KeySet, k))
			found := false
			for _, g := range got {
				found = found || g == lines[i]
			}
			if !found {
				t.Fatalf("seed %d: record %d (%.40q) not in the chunks its key selects", seed, i, lines[i])
			}
		}
		set := x.Set([]string{"client_id"})
		for c := range 30 {
			want := 0
			for _, cl := range client {
				if cl == c {
					want++
				}
			}
			got := 0
			for _, g := range readSelected(t, x, chunks, h.Hash(set, fmt.Sprint(c))) {
				if strings.HasPrefix(g, "+") && strings.Split(g, "\t")[1] == fmt.Sprint(c) {
					got++
				}
			}
			if got != want {
				t.Fatalf("seed %d client %d: %d records read, %d in the delta", seed, c, got, want)
			}
		}
	}
}

// TestRecordsBuilderRefusesWhatItCannotRead: a line that is no record, or
// a key beyond the builder's prefix, fails the index (the delta is then
// stored without one and read whole), never an index missing a key.
func TestRecordsBuilderRefusesWhatItCannotRead(t *testing.T) {
	for name, data := range map[string]string{
		"no sign":      "1\t2\tx\t3\n",
		"empty line":   "\n",
		"short delete": "-1\n",
		"huge key":     "-1\t" + strings.Repeat("k", maxPrefix+10) + "\n",
		"huge row key": "+1\t2\t" + strings.Repeat("k", maxPrefix+10) + "\t3\n",
	} {
		b, err := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, recordsKey)
		if err != nil {
			t.Fatal(err)
		}
		chunks := cut(rand.New(rand.NewPCG(1, 1)), []byte(data), 1<<16)
		for _, c := range chunks {
			b.Chunk(c)
		}
		if _, _, err := b.Finish(ids(chunks)); err == nil {
			t.Errorf("%s: indexed", name)
		}
	}
	if _, err := NewRecordsBuilder(testKey, testTable(), [][]string{{"client_id"}}, rowdelta.Key{Fields: []int{9}, Order: []string{"int"}}); err == nil {
		t.Error("a key beyond the table's columns was accepted")
	}
}

// TestRecordsIndexVersion: a records index is version 2 and says so; a
// table's stays version 1 (its bytes unchanged by this format addition).
func TestRecordsIndexVersion(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	data, _, _ := records(rng, 20, 4)
	x := buildRecords(t, cut(rng, data, 100))
	enc := x.Encode()
	if enc[len(magic)] != VersionRecords {
		t.Fatalf("records index version %d", enc[len(magic)])
	}
	x.Records = false
	enc = x.Encode()
	if enc[len(magic)] != Version {
		t.Fatalf("table index version %d", enc[len(magic)])
	}
	enc[len(magic)] = 3
	body := enc[:len(enc)-sha256.Size]
	sum := sha256.Sum256(body)
	if _, err := Decode(append(body, sum[:]...)); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("version 3: %v", err)
	}
}
