package rowdelta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// table is a test table: key (int, then text) → rest of the row.
type table map[[2]string]string

func (t table) stream() []byte {
	keys := make([][2]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i][0])
		b, _ := strconv.Atoi(keys[j][0])
		if a != b {
			return a < b
		}
		return keys[i][1] < keys[j][1]
	})
	var b bytes.Buffer
	for _, k := range keys {
		// the key is in fields 2 and 0: key order is not field order
		fmt.Fprintf(&b, "%s\t%s\t%s\n", k[1], t[k], k[0])
	}
	return b.Bytes()
}

var testKey = Key{Fields: []int{2, 0}, Order: []string{OrderInt, OrderBytes}}

func mutate(rng *rand.Rand, t table) table {
	out := table{}
	for k, v := range t {
		switch rng.IntN(20) {
		case 0: // deleted
		case 1:
			out[k] = v + "x" // changed
		case 2: // key changed
			out[[2]string{strconv.Itoa(rng.IntN(2000) - 1000), k[1]}] = v
		default:
			out[k] = v
		}
	}
	for range rng.IntN(10) {
		out[[2]string{strconv.Itoa(rng.IntN(2000) - 1000), string(rune('a' + rng.IntN(3)))}] = "new\\t" + strconv.Itoa(rng.IntN(9))
	}
	return out
}

// TestChainsReproduceEveryGeneration diffs random generations against the
// previous one's merged chain and merges them back.
func TestChainsReproduceEveryGeneration(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 1))
		cur := table{}
		for range rng.IntN(50) {
			cur[[2]string{strconv.Itoa(rng.IntN(2000) - 1000), "a"}] = "v"
		}
		base := cur.stream()
		var deltas [][]byte
		for gen := range 8 {
			next := mutate(rng, cur)
			parent := chain(base, deltas)
			var d bytes.Buffer
			st, err := Diff(testKey, parent, bytes.NewReader(next.stream()), &d)
			if err != nil {
				t.Fatalf("seed %d gen %d: %v", seed, gen, err)
			}
			if st.DeltaSize != int64(d.Len()) || st.Size != int64(len(next.stream())) || st.Rows != int64(len(next)) {
				t.Fatalf("seed %d: stats %+v, delta %d bytes", seed, st, d.Len())
			}
			deltas = append(deltas, d.Bytes())
			got, err := io.ReadAll(chain(base, deltas))
			if err != nil {
				t.Fatalf("seed %d gen %d: merge: %v", seed, gen, err)
			}
			if !bytes.Equal(got, next.stream()) {
				t.Fatalf("seed %d gen %d: merged\n%q\nwant\n%q", seed, gen, got, next.stream())
			}
			cur = next
		}
	}
}

func chain(base []byte, deltas [][]byte) *Merger {
	src := []Source{{Name: "base", R: bytes.NewReader(base)}}
	for i, d := range deltas {
		src = append(src, Source{Name: "delta " + strconv.Itoa(i), R: bytes.NewReader(d)})
	}
	return Merge(testKey, src)
}

func TestDiffRefusesUnorderedFresh(t *testing.T) {
	_, err := Diff(Key{Fields: []int{0}, Order: []string{OrderInt}}, strings.NewReader("1\ta\n"), strings.NewReader("1\ta\n10\tb\n9\tc\n"), io.Discard)
	if !errors.Is(err, ErrNotAscending) {
		t.Fatalf("got %v", err)
	}
	// byte order would accept "10" < "9"; integer order does not
	_, err = Diff(Key{Fields: []int{0}, Order: []string{OrderBytes}}, strings.NewReader(""), strings.NewReader("10\tb\n9\tc\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Diff(Key{Fields: []int{0}, Order: []string{OrderInt}}, strings.NewReader("2\ta\n1\tb\n"), strings.NewReader("1\ta\n"), io.Discard)
	if !errors.Is(err, ErrParent) {
		t.Fatalf("unordered parent: got %v", err)
	}
}

func TestMergeRefusesBadSources(t *testing.T) {
	k := Key{Fields: []int{0}, Order: []string{OrderInt}}
	for name, c := range map[string][2]string{
		"unordered delta":   {"1\ta\n", "+3\tx\n-2\n"},
		"repeated key":      {"1\ta\n", "+3\tx\n-3\n"},
		"unknown op":        {"1\ta\n", "*3\tx\n"},
		"no LF":             {"1\ta\n", "+3\tx"},
		"not an integer":    {"1\ta\n", "-03\n"},
		"too many fields":   {"1\ta\n", "-3\t4\n"},
		"unordered base":    {"2\ta\n1\tb\n", ""},
		"negative zero key": {"-0\ta\n", ""},
	} {
		_, err := io.ReadAll(Merge(k, []Source{{Name: "base", R: strings.NewReader(c[0])}, {Name: "d1", R: strings.NewReader(c[1])}}))
		if err == nil {
			t.Errorf("%s: merged without error", name)
		}
	}
}

func TestCompareInt(t *testing.T) {
	vals := []string{"-100", "-20", "-3", "0", "4", "9", "10", "99", "100", "9223372036854775807"}
	for i := range vals {
		for j := range vals {
			c, err := compareInt([]byte(vals[i]), []byte(vals[j]))
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if err != nil || c != want {
				t.Errorf("compare %s %s = %d, %v; want %d", vals[i], vals[j], c, err, want)
			}
		}
	}
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte("1\ta\n2\tb\n"), []byte("+1\tz\n-2\n+3\tc\n"), []byte("-1\n"))
	f.Add([]byte(""), []byte("+-5\tq\n"), []byte("+-5\tr\n"))
	f.Fuzz(func(t *testing.T, base, d1, d2 []byte) {
		k := Key{Fields: []int{0}, Order: []string{OrderInt}}
		m := Merge(k, []Source{{"b", bytes.NewReader(base)}, {"d1", bytes.NewReader(d1)}, {"d2", bytes.NewReader(d2)}})
		out, err := io.ReadAll(m)
		if err != nil {
			return
		}
		// What merges is strictly ascending rows, and diffing the base
		// against it and merging again gives it back.
		var d bytes.Buffer
		if _, err := Diff(k, bytes.NewReader(base), bytes.NewReader(out), &d); err != nil {
			if errors.Is(err, ErrParent) {
				t.Fatalf("base merged but does not diff: %v", err)
			}
			t.Fatalf("merge output does not diff: %v", err)
		}
		again, err := io.ReadAll(Merge(k, []Source{{"b", bytes.NewReader(base)}, {"d", &d}}))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-merge: %v\n%q\n%q", err, again, out)
		}
	})
}

// FuzzKeyForm: two lines' keys have the same KeyForm exactly when Compare
// finds them equal (what a dossier reading a chain through its indexes
// relies on to match a row with its later change or deletion), and
// Compare refuses what is not a canonical integer in an int field.
func FuzzKeyForm(f *testing.F) {
	f.Add([]byte("+7\tab\tx"), []byte("-7\tab"))
	f.Add([]byte("+07\tab\tx"), []byte("-7\tab"))
	f.Add([]byte("+-0\t\t"), []byte("-0\t"))
	f.Add([]byte("+1\ta\\tb"), []byte("+1\ta\\tb\tz"))
	k := Key{Fields: []int{0, 1}, Order: []string{OrderInt, OrderBytes}}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		_, ka, err := k.ParseLine(nil, a, true)
		if err != nil {
			return
		}
		_, kb, err := k.ParseLine(nil, b, true)
		if err != nil {
			return
		}
		c, err := k.Compare(ka, kb)
		if err != nil {
			if canonicalInt(ka[0]) && canonicalInt(kb[0]) {
				t.Fatalf("canonical keys refused: %v", err)
			}
			return
		}
		if same := bytes.Equal(KeyForm(nil, ka), KeyForm(nil, kb)); same != (c == 0) {
			t.Fatalf("%q / %q: same form %v, compare %d", a, b, same, c)
		}
	})
}

// FuzzDiff: for any ascending parent and any fresh stream (ordered or
// not, with rows equal to the parent's or not), Diff fails with
// ErrNotAscending exactly when the fresh keys are not strictly ascending,
// and otherwise its records turn the parent into the fresh stream.
func FuzzDiff(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{1, 2, 3})
	f.Add([]byte{1, 2, 3}, []byte{1, 2, 2})
	f.Add([]byte{1, 3}, []byte{1, 3, 3})
	f.Add([]byte{5, 6}, []byte{5, 4, 6})
	f.Add([]byte{}, []byte{2, 1})
	f.Fuzz(func(t *testing.T, p, q []byte) {
		k := Key{Fields: []int{0}, Order: []string{OrderInt}}
		// A byte b is row b/4 with value b%4: rows repeat, change or not.
		line := func(b byte) string { return fmt.Sprintf("%d\tv%d\n", int(b/4)-20, b%4) }
		keys := map[int]byte{}
		for _, b := range p {
			keys[int(b/4)] = b
		}
		var ps []int
		for kk := range keys {
			ps = append(ps, kk)
		}
		sort.Ints(ps)
		var parent, fresh strings.Builder
		for _, kk := range ps {
			parent.WriteString(line(keys[kk]))
		}
		ascending := true
		for i, b := range q {
			fresh.WriteString(line(b))
			if i > 0 && b/4 <= q[i-1]/4 {
				ascending = false
			}
		}
		var d bytes.Buffer
		st, err := Diff(k, strings.NewReader(parent.String()), strings.NewReader(fresh.String()), &d)
		if !ascending {
			if !errors.Is(err, ErrNotAscending) {
				t.Fatalf("unordered fresh %q: %v", fresh.String(), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("parent %q fresh %q: %v", parent.String(), fresh.String(), err)
		}
		if st.Rows != int64(len(q)) {
			t.Fatalf("rows %d, want %d", st.Rows, len(q))
		}
		got, err := io.ReadAll(Merge(k, []Source{{Name: "base", R: strings.NewReader(parent.String())}, {Name: "d", R: &d}}))
		if err != nil || string(got) != fresh.String() {
			t.Fatalf("merged %q (%v), want %q", got, err, fresh.String())
		}
	})
}
