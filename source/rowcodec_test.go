package source

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRowEncodingVectors(t *testing.T) {
	tests := []struct {
		name string
		row  []Value
		line string
	}{
		{name: "no fields", row: nil, line: ""},
		{name: "null", row: []Value{NullValue()}, line: `\N`},
		{name: "int bounds", row: []Value{IntValue(math.MinInt64), IntValue(0), IntValue(math.MaxInt64)},
			line: "i-9223372036854775808\ti0\ti9223372036854775807"},
		{name: "floats", row: []Value{FloatValue(0.1), FloatValue(math.Copysign(0, -1)), FloatValue(1e21), FloatValue(5e-324), FloatValue(2)},
			line: "r0.1\tr-0\tr1e+21\tr5e-324\tr2"},
		{name: "float specials", row: []Value{FloatValue(math.NaN()), FloatValue(math.Inf(1)), FloatValue(math.Inf(-1))},
			line: "rNaN\tr+Inf\tr-Inf"},
		{name: "empty text and blob", row: []Value{TextValue(nil), BlobValue(nil)}, line: "t\tb"},
		{name: "text escapes", row: []Value{TextValue([]byte("a\\b\tc\nd\re"))}, line: `ta\\b\tc\nd\re`},
		{name: "text verbatim bytes", row: []Value{TextValue([]byte("\x00\xff\xfe é \\N"))}, line: "t\x00\xff\xfe é \\\\N"},
		{name: "text looking like null", row: []Value{TextValue([]byte(`\N`))}, line: `t\\N`},
		{name: "blob", row: []Value{BlobValue([]byte{0, 1, 0xab, 0xff, '\n'})}, line: "b0001abff0a"},
		{name: "mixed", row: []Value{IntValue(-7), NullValue(), TextValue([]byte("x")), BlobValue([]byte{0})},
			line: "i-7\t\\N\ttx\tb00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendRow(nil, tt.row)
			if string(got) != tt.line+"\n" {
				t.Fatalf("AppendRow = %q, want %q", got, tt.line+"\n")
			}
			back, err := ParseRow(nil, []byte(tt.line))
			if err != nil {
				t.Fatalf("ParseRow(%q): %v", tt.line, err)
			}
			if !rowsEqual(back, tt.row) {
				t.Fatalf("ParseRow(%q) = %v, want %v", tt.line, back, tt.row)
			}
		})
	}
}

func TestParseRowRejects(t *testing.T) {
	tests := []struct{ name, line string }{
		{"empty field", "i1\t"},
		{"leading tab", "\ti1"},
		{"only a tab", "\t"},
		{"unknown tag", "x1"},
		{"upper-case tag", "I1"},
		{"null lower-case", `\n`},
		{"null with suffix", `\NN`},
		{"lone backslash", `\`},
		{"int empty", "i"},
		{"int minus only", "i-"},
		{"int plus", "i+1"},
		{"int leading zero", "i01"},
		{"int minus zero", "i-0"},
		{"int space", "i 1"},
		{"int overflow", "i9223372036854775808"},
		{"int underflow", "i-9223372036854775809"},
		{"int huge", "i99999999999999999999999999"},
		{"int hex", "i0x10"},
		{"int underscore", "i1_000"},
		{"float empty", "r"},
		{"float not shortest", "r0.10"},
		{"float exponent form", "r1e1"},
		{"float plus", "r+1"},
		{"float lower nan", "rnan"},
		{"float inf without sign", "rInf"},
		{"float infinity", "r+Infinity"},
		{"float hex", "r0x1p-2"},
		{"float out of range", "r1e400"},
		{"float long", "r" + strings.Repeat("1", 40)},
		{"text unknown escape", `ta\x`},
		{"text escaped N", `t\N`},
		{"text trailing backslash", `ta\`},
		{"text raw CR", "ta\rb"},
		{"blob odd", "babc"},
		{"blob upper", "bAB"},
		{"blob non-hex", "bzz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if vals, err := ParseRow(nil, []byte(tt.line)); err == nil {
				t.Fatalf("ParseRow(%q) = %v, want an error", tt.line, vals)
			} else if !errors.Is(err, ErrBadRow) {
				t.Fatalf("ParseRow(%q) error %v does not wrap ErrBadRow", tt.line, err)
			}
		})
	}
}

func TestRowDecoderStream(t *testing.T) {
	rows := [][]Value{
		{IntValue(1), TextValue([]byte("first"))},
		{IntValue(2), BlobValue(bytes.Repeat([]byte{0xab}, 200<<10))}, // longer than the reader's buffer
		{IntValue(3), NullValue()},
		{},
	}
	var buf bytes.Buffer
	enc := NewRowEncoder(&buf, []byte("key"))
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := enc.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != int64(len(rows)) {
		t.Fatalf("Rows = %d, want %d", res.Rows, len(rows))
	}
	want, err := FingerprintStream([]byte("key"), bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res != want {
		t.Fatalf("encoder fingerprint %v != stream fingerprint %v", res, want)
	}

	dec := NewRowDecoder(iotest.OneByteReader(bytes.NewReader(buf.Bytes())))
	fp := NewFingerprinter([]byte("key"))
	for i, wantRow := range rows {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("row %d: %v", i+1, err)
		}
		if !rowsEqual(got, wantRow) {
			t.Fatalf("row %d differs", i+1)
		}
		fp.AddRow(dec.Line())
	}
	if _, err := dec.Next(); err != io.EOF {
		t.Fatalf("after the last row: %v, want io.EOF", err)
	}
	if fp.Result() != want {
		t.Fatal("fingerprint of decoded lines differs")
	}
}

func TestRowDecoderErrors(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		max    int
		ok     int // rows decoded before the error
	}{
		{name: "unterminated", stream: "i1\ni2", max: 100, ok: 1},
		{name: "too long", stream: "i1\nt" + strings.Repeat("x", 100) + "\ni3\n", max: 50, ok: 1},
		{name: "too long unterminated", stream: "t" + strings.Repeat("x", 100<<10), max: 1 << 10},
		{name: "CRLF", stream: "i1\r\n", max: 100},
		{name: "bad second row", stream: "i1\nq\n", max: 100, ok: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := NewRowDecoderSize(strings.NewReader(tt.stream), tt.max)
			for i := 0; i < tt.ok; i++ {
				if _, err := dec.Next(); err != nil {
					t.Fatalf("row %d: %v", i+1, err)
				}
			}
			_, err := dec.Next()
			if err == nil || err == io.EOF || !errors.Is(err, ErrBadRow) {
				t.Fatalf("got %v, want an ErrBadRow", err)
			}
			if _, err2 := dec.Next(); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("error is not sticky: %v then %v", err, err2)
			}
		})
	}
}

func TestRowEncoderLimit(t *testing.T) {
	enc := NewRowEncoder(io.Discard, nil)
	enc.max = 10
	if err := enc.Encode([]Value{TextValue([]byte("0123456789"))}); err == nil {
		t.Fatal("an 11-byte line passed a 10-byte limit")
	}
	if err := enc.Encode([]Value{TextValue([]byte("012345678"))}); err != nil {
		t.Fatal(err)
	}
	if res, _ := enc.Finish(); res.Rows != 1 {
		t.Fatalf("Rows = %d, want 1 (the refused row is not counted)", res.Rows)
	}
}

// TestFuzzCorpusLoads checks that the seed corpus is where go test -fuzz
// looks for it.
func TestFuzzCorpusLoads(t *testing.T) {
	for _, target := range []string{"FuzzRowDecode", "FuzzRowRoundTrip"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no seed corpus for %s (%v)", target, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Fatalf("%s is not a fuzz corpus file", f)
			}
		}
	}
}

func FuzzRowDecode(f *testing.F) {
	for _, s := range []string{"", `\N`, "i-1\tr0.5\ttx\\ty\tb00ff", "t\x00\xff", "rNaN\tr-0", "i01", "b", "\t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		vals, err := ParseRow(nil, line)
		// The streaming decoder agrees with ParseRow on a single line.
		dec := NewRowDecoderSize(bytes.NewReader(append(line[:len(line):len(line)], '\n')), 1<<20)
		dvals, derr := dec.Next()
		if bytes.IndexByte(line, '\n') < 0 && (err == nil) != (derr == nil) {
			t.Fatalf("ParseRow err %v, RowDecoder err %v", err, derr)
		}
		if err != nil {
			return
		}
		if derr == nil && !rowsEqual(vals, dvals) {
			t.Fatal("ParseRow and RowDecoder decode differently")
		}
		// Canonical: re-encoding a valid line gives back its bytes.
		enc := AppendRow(nil, vals)
		if !bytes.Equal(enc[:len(enc)-1], line) {
			t.Fatalf("decode→encode changed %q into %q", line, enc)
		}
		again, err := ParseRow(nil, enc[:len(enc)-1])
		if err != nil || !rowsEqual(again, vals) {
			t.Fatalf("decode→encode→decode unstable: %v", err)
		}
	})
}

func FuzzRowRoundTrip(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4}, int64(math.MinInt64), 0.1, []byte("a\tb\\c\r\n\x00\xff"))
	f.Add([]byte{2, 2, 2}, int64(0), math.Copysign(0, -1), []byte{})
	f.Add([]byte{}, int64(1), math.Inf(-1), []byte(`\N`))
	f.Fuzz(func(t *testing.T, kinds []byte, i int64, x float64, b []byte) {
		if len(kinds) > 32 {
			kinds = kinds[:32] // rows of len(kinds) slices of b: keep them small
		}
		row := make([]Value, 0, len(kinds))
		for j, k := range kinds {
			switch k % 5 {
			case 0:
				row = append(row, NullValue())
			case 1:
				row = append(row, IntValue(i+int64(j)))
			case 2:
				row = append(row, FloatValue(x))
			case 3:
				row = append(row, TextValue(b[j%(len(b)+1):]))
			case 4:
				row = append(row, BlobValue(b[:len(b)-j%(len(b)+1)]))
			}
		}
		line := AppendRow(nil, row)
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("encoded row is not one line: %q", line)
		}
		back, err := ParseRow(nil, line[:len(line)-1])
		if err != nil {
			t.Fatalf("ParseRow(%q): %v", line, err)
		}
		if !rowsEqual(back, row) {
			t.Fatalf("round trip of %q changed the row", line)
		}
	})
}

func BenchmarkRowDecode(b *testing.B) {
	var stream []byte
	for i := 0; i < 1000; i++ {
		stream = AppendRow(stream, []Value{
			IntValue(int64(i) * 7919),
			TextValue([]byte("Jansen-de Vries\tBSN 123456782\nnotitie: pijn in de rug, \\ verwijzing fysio")),
			FloatValue(float64(i) / 3),
			NullValue(),
			BlobValue(bytes.Repeat([]byte{byte(i)}, 32)),
			TextValue([]byte("2024-05-17 10:15:00")),
		})
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		dec := NewRowDecoder(bytes.NewReader(stream))
		for {
			if _, err := dec.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

func rowsEqual(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
