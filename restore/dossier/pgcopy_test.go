package dossier

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kluis-nl/kluis/rowindex"
)

func TestParseCopyLine(t *testing.T) {
	cases := []struct {
		name string
		line string
		want []string // "<NULL>" for NULL
		bad  bool
	}{
		{name: "plain", line: "1\tAnna\t2026-01-05", want: []string{"1", "Anna", "2026-01-05"}},
		{name: "null and empty", line: "\\N\t\t\\N", want: []string{"<NULL>", "", "<NULL>"}},
		{name: "escapes", line: `a\tb\nc\rd\\e\bf\fg\vh`, want: []string{"a\tb\nc\rd\\e\bf\fg\vh"}},
		{name: "literal backslash N inside text", line: `\\N`, want: []string{`\N`}},
		{name: "octal and hex", line: `\101\x42\x4a\7`, want: []string{"ABJ\x07"}},
		{name: "other escaped byte", line: `\q\.`, want: []string{"q."}},
		{name: "bytea hex", line: `\\x0aff`, want: []string{`\x0aff`}},
		{name: "utf8 and hostile", line: "Cliënt \"ID\"; 2024", want: []string{"Cliënt \"ID\"; 2024"}},
		{name: "trailing backslash", line: `abc\`, bad: true},
		{name: "raw CR", line: "a\rb", bad: true},
		{name: "raw LF", line: "a\nb", bad: true},
		{name: "empty line is one empty field", line: "", want: []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCopyLine(nil, []byte(c.line))
			if c.bad {
				if !errors.Is(err, ErrBadCopyLine) {
					t.Fatalf("want ErrBadCopyLine, got %q, %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d fields %q, want %q", len(got), got, c.want)
			}
			for i, w := range c.want {
				if w == "<NULL>" {
					if got[i] != nil {
						t.Errorf("field %d: want NULL, got %q", i, got[i])
					}
					continue
				}
				if got[i] == nil || string(got[i]) != w {
					t.Errorf("field %d: got %q, want %q", i, got[i], w)
				}
			}
		})
	}
}

// FuzzParseCopyLine checks that the decoder never panics, that whatever it
// accepts re-encodes (as PostgreSQL would write it) to a line that decodes
// to the same fields, and that encode-then-decode is the identity.
func FuzzParseCopyLine(f *testing.F) {
	f.Add([]byte("1\tAnna\t\\N"))
	f.Add([]byte(`a\tb\nc\\d\101\x4`))
	f.Fuzz(func(t *testing.T, line []byte) {
		fields, err := ParseCopyLine(nil, line)
		if err != nil {
			if !errors.Is(err, ErrBadCopyLine) {
				t.Fatalf("error not ErrBadCopyLine: %v", err)
			}
			return
		}
		var enc []byte
		for i, fl := range fields {
			if i > 0 {
				enc = append(enc, '\t')
			}
			enc = AppendCopyField(enc, fl)
		}
		again, err := ParseCopyLine(nil, enc)
		if err != nil {
			t.Fatalf("re-encoded line %q does not decode: %v", enc, err)
		}
		if len(again) != len(fields) {
			t.Fatalf("field count %d -> %d", len(fields), len(again))
		}
		for i := range fields {
			if (fields[i] == nil) != (again[i] == nil) || !bytes.Equal(fields[i], again[i]) {
				t.Fatalf("field %d: %q -> %q", i, fields[i], again[i])
			}
		}
		if bytes.IndexByte(enc, '\n') >= 0 || bytes.IndexByte(enc, '\r') >= 0 {
			t.Fatalf("encoding %q holds a raw line break", enc)
		}
	})
}

func TestFieldPrefix(t *testing.T) {
	for _, c := range []struct {
		line string
		n    int
		want string
	}{
		{"a\tb\tc", 1, "a"},
		{"a\tb\tc", 2, "a\tb"},
		{"a\tb\tc", 3, "a\tb\tc"},
		{"a\tb\tc", 9, "a\tb\tc"},
		{"\t\t", 2, "\t"},
		{"", 1, ""},
	} {
		if got := string(rowindex.FieldPrefix([]byte(c.line), c.n)); got != c.want {
			t.Errorf("fieldPrefix(%q, %d) = %q, want %q", c.line, c.n, got, c.want)
		}
	}
}
