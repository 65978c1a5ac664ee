package display

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "public.clients", "public.clients"},
		{"non-ASCII letters kept", "cliënten_ß", "cliënten_ß"},
		{"escape sequence", "t\x1b[2J\x1b[1;1Hok", `t\x1b[2J\x1b[1;1Hok`},
		{"newline forges a line", "a\nrestored 0 rows", `a\nrestored 0 rows`},
		{"carriage return", "x\rclients", `x\rclients`},
		{"C1 CSI", "a\u009bb", `a\u009bb`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"backslash doubled", `a\x1b`, `a\\x1b`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"DEL", "a\x7f", `a\x7f`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("public.clients")
	f.Add("t\x1b[2J\u202e\xff\\")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for _, r := range e {
			if unsafe(r) || r == '\uFFFD' && !containsRune(s, '\uFFFD') {
				t.Fatalf("Escape(%q) = %q keeps %U", s, e, r)
			}
		}
	})
}

func containsRune(s string, r rune) bool {
	for _, x := range s {
		if x == r {
			return true
		}
	}
	return false
}
