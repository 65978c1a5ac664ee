package source

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecodePrivileges(t *testing.T) {
	good := `{"format":"kluis-privileges-v1","roles":[{"name":"app","login":true}],"statements":[{"kind":"owner","object":"table public.t","roles":["app"],"sql":"ALTER TABLE public.t OWNER TO app;"}]}`
	if p, err := DecodePrivileges(strings.NewReader(good)); err != nil || len(p.Statements) != 1 || p.Roles[0].Name != "app" {
		t.Fatalf("good stream: %+v, %v", p, err)
	}
	for name, bad := range map[string]string{
		"empty":          ``,
		"other format":   `{"format":"x","roles":[],"statements":[]}`,
		"unknown field":  `{"format":"kluis-privileges-v1","password":"x"}`,
		"unknown kind":   `{"format":"kluis-privileges-v1","statements":[{"kind":"drop","object":"x","sql":"DROP"}]}`,
		"empty sql":      `{"format":"kluis-privileges-v1","statements":[{"kind":"owner","object":"x","sql":""}]}`,
		"empty role":     `{"format":"kluis-privileges-v1","statements":[{"kind":"owner","object":"x","roles":[""],"sql":"x"}]}`,
		"not an object":  `[1,2]`,
		"truncated JSON": good[:40],
	} {
		if _, err := DecodePrivileges(strings.NewReader(bad)); !errors.Is(err, ErrBadPrivileges) {
			t.Errorf("%s: want ErrBadPrivileges, got %v", name, err)
		}
	}
}

func TestLargeObjectReader(t *testing.T) {
	stream := "-- kluis-large-objects-v1\nlo 5 3\nabc\nlo 7 0\n\nlo 9 2\nxy\n"
	r := NewLargeObjectReader(strings.NewReader(stream))
	var got []string
	for {
		oid, size, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil || int64(len(b)) != size {
			t.Fatalf("object %d: %q, %v", oid, b, err)
		}
		got = append(got, string(b))
	}
	if strings.Join(got, ",") != "abc,,xy" {
		t.Fatalf("objects %q", got)
	}
	for name, bad := range map[string]string{
		"no header":     "lo 5 3\nabc\n",
		"truncated":     "-- kluis-large-objects-v1\nlo 5 3\nab",
		"no newline":    "-- kluis-large-objects-v1\nlo 5 3\nabcX",
		"out of order":  "-- kluis-large-objects-v1\nlo 5 0\n\nlo 5 0\n\n",
		"leading zero":  "-- kluis-large-objects-v1\nlo 05 0\n\n",
		"negative size": "-- kluis-large-objects-v1\nlo 5 -1\n\n",
		"oid too big":   "-- kluis-large-objects-v1\nlo 4294967296 0\n\n",
		"bad line":      "-- kluis-large-objects-v1\nblob 5 0\n\n",
		"line too long": "-- kluis-large-objects-v1\nlo " + strings.Repeat("1", 100) + "\n",
		"unterminated":  "-- kluis-large-objects-v1\nlo 5",
		"empty stream":  "",
	} {
		r := NewLargeObjectReader(strings.NewReader(bad))
		var err error
		for err == nil {
			_, _, err = r.Next()
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
		}
		if !errors.Is(err, ErrBadLargeObjects) {
			t.Errorf("%s: want ErrBadLargeObjects, got %v", name, err)
		}
	}
}

// FuzzDecodePrivileges: any input decodes or fails with ErrBadPrivileges,
// never panics, and a decoded stream has only known kinds and named roles.
func FuzzDecodePrivileges(f *testing.F) {
	f.Add([]byte(`{"format":"kluis-privileges-v1","roles":[{"name":"app"}],"statements":[{"kind":"grant","object":"schema s","roles":["app"],"sql":"GRANT USAGE ON SCHEMA s TO app;"}]}`))
	f.Add([]byte(`{"format":"kluis-privileges-v1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePrivileges(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range p.Statements {
			if s.SQL == "" || s.Object == "" {
				t.Fatalf("decoded an empty statement: %+v", s)
			}
		}
	})
}

// FuzzLargeObjectReader: reading any stream ends in io.EOF or an error,
// never panics, and never yields more bytes for an object than its size.
func FuzzLargeObjectReader(f *testing.F) {
	f.Add([]byte("-- kluis-large-objects-v1\nlo 5 3\nabc\nlo 7 0\n\n"))
	f.Add([]byte("-- kluis-large-objects-v1\n"))
	f.Add([]byte("-- kluis-large-objects-v1\nlo 1 10\nabc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewLargeObjectReader(bytes.NewReader(data))
		for i := 0; i < 1000; i++ {
			_, size, err := r.Next()
			if err != nil {
				return
			}
			n, err := io.Copy(io.Discard, r)
			if n > size {
				t.Fatalf("read %d bytes of an object of %d", n, size)
			}
			if err != nil {
				return
			}
		}
	})
}
