package synth

import (
	"encoding/hex"
	"strconv"
	"time"
)

// Generated rows hold these Go values: nil (NULL), int64, float64, bool,
// string, []byte, and the types below. A dialect converts them for its
// driver (arg) or renders them as literals (appendLiteral).

// date is a calendar day.
type date struct{ t time.Time }

// stamp is a wall-clock time in the practice's time zone (Europe/Amsterdam),
// to whole seconds, stored without zone.
type stamp struct{ t time.Time }

// stampTZ is a wall-clock time in Europe/Amsterdam stored as an instant
// where the engine can (PostgreSQL timestamptz).
type stampTZ struct{ t time.Time }

// money is an amount in euro cents, stored as NUMERIC(10,2).
type money int64

const (
	dateLayout  = "2006-01-02"
	stampLayout = "2006-01-02 15:04:05"
	// practiceZone is the zone of every generated wall-clock time.
	practiceZone = "Europe/Amsterdam"
)

func (d date) String() string    { return d.t.Format(dateLayout) }
func (s stamp) String() string   { return s.t.Format(stampLayout) }
func (s stampTZ) String() string { return s.t.Format(stampLayout) }

func (m money) String() string {
	b := strconv.AppendInt(nil, int64(m)/100, 10)
	c := int64(m) % 100
	if c < 0 {
		c = -c
	}
	b = append(b, '.', byte('0'+c/10), byte('0'+c%10))
	return string(b)
}

// commonArg converts the values every dialect passes as text.
func commonArg(v any) any {
	switch x := v.(type) {
	case date:
		return x.String()
	case stamp:
		return x.String()
	case stampTZ:
		return x.String()
	case money:
		return x.String()
	}
	return v
}

// appendQuoted appends s in single quotes, doubling single quotes.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b = append(b, '\'')
		}
		b = append(b, s[i])
	}
	return append(b, '\'')
}

// appendCommonLiteral renders the literals that look the same in every
// dialect; ok is false for the rest (strings, bytes, booleans).
func appendCommonLiteral(b []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "NULL"...), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), true
	case money:
		return append(b, x.String()...), true
	case date:
		return appendQuoted(b, x.String()), true
	case stamp:
		return appendQuoted(b, x.String()), true
	case stampTZ:
		return appendQuoted(b, x.String()), true
	}
	return b, false
}

// appendHexLiteral appends X'…'.
func appendHexLiteral(b []byte, p []byte) []byte {
	b = append(b, "X'"...)
	b = hex.AppendEncode(b, p)
	return append(b, '\'')
}

// textSize approximates the bytes v takes in a plain text dump (PostgreSQL
// COPY text format: tab, newline, carriage return and backslash escaped,
// bytea as \x and hex digits, NULL as \N), without the separator.
func textSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 2
	case string:
		n := len(x)
		for i := 0; i < len(x); i++ {
			switch x[i] {
			case '\t', '\n', '\r', '\\':
				n++
			}
		}
		return n
	case []byte:
		return 3 + 2*len(x)
	case bool:
		return 1
	case int64:
		return len(strconv.AppendInt(nil, x, 10))
	case int:
		return len(strconv.AppendInt(nil, int64(x), 10))
	case float64:
		return len(strconv.AppendFloat(nil, x, 'g', -1, 64))
	case money:
		return len(x.String())
	case date:
		return len(dateLayout)
	case stamp:
		return len(stampLayout)
	case stampTZ:
		return len(stampLayout) + 3 // "+01"
	}
	return 0
}
