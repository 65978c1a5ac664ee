// Package display makes names that come from a tenant's database (tables,
// columns, schema names, dossier ids) or from an operator safe to print on
// a terminal: Escape is the one helper every human-readable output of
// kluis uses for them. JSON output needs no escaping (encoding/json
// escapes control characters itself).
package display

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every control character (C0, DEL, C1, and the
// Unicode line and paragraph separators), every bidirectional override and
// every invalid UTF-8 byte replaced by a Go escape (\x1b, \u202e, \xff), and
// a backslash doubled, so a hostile name cannot move the cursor, rewrite
// the screen, hide text or forge another line. Printable text, including
// non-ASCII letters, is unchanged.
func Escape(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == '\\':
			b.WriteString(`\\`)
		case unsafe(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			return !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unsafe(r) }) && utf8.ValidString(s)
		}
	}
	return true
}

func unsafe(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
		return true // bidirectional controls (CVE-2021-42574, "Trojan Source")
	}
	return false
}

// Text is Escape for a message of several lines (an error that joins
// others): line feeds and tabs stay, every other control character is
// escaped.
func Text(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = Escape(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}
