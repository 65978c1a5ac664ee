package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// selectRows returns the query that streams a table's columns, each
// behind a unary "+" (a no-op on every SQLite value) so that the result has
// no declared type and the driver hands back the stored value as it is,
// instead of parsing DATETIME text into a time. orderBy holds quoted
// expressions.
func selectRows(table string, cols []source.Column, orderBy []string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("+")
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(" FROM main.")
	b.WriteString(quoteIdent(table))
	if len(orderBy) > 0 {
		b.WriteString(" ORDER BY ")
		b.WriteString(strings.Join(orderBy, ", "))
	}
	return b.String()
}

// queryer is what both a *sql.Conn and a *sql.DB offer.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ctxCheckEvery is how many rows stream between checks of the context.
const ctxCheckEvery = 256

// streamRows runs query and encodes every row with enc.
func streamRows(ctx context.Context, q queryer, query string, ncols int, enc *source.RowEncoder) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	raw := make([]any, ncols)
	ptrs := make([]any, ncols)
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	vals := make([]source.Value, ncols)
	var n int64
	for rows.Next() {
		n++
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		for i, x := range raw {
			v, err := toValue(x)
			if err != nil {
				return fmt.Errorf("row %d column %d: %w", n, i+1, err)
			}
			vals[i] = v
		}
		if err := enc.Encode(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// toValue converts what the driver returns for a SQLite value.
func toValue(x any) (source.Value, error) {
	switch x := x.(type) {
	case nil:
		return source.NullValue(), nil
	case int64:
		return source.IntValue(x), nil
	case float64:
		return source.FloatValue(x), nil
	case string:
		return source.TextValue([]byte(x)), nil
	case []byte:
		return source.BlobValue(x), nil
	}
	return source.Value{}, fmt.Errorf("unexpected driver value of type %T", x)
}

// toArg converts a decoded value into an argument the driver binds with
// the same storage class.
func toArg(v source.Value) (any, error) {
	switch v.Kind {
	case source.KindNull:
		return nil, nil
	case source.KindInt:
		return v.Int, nil
	case source.KindFloat:
		return v.Float, nil
	case source.KindText:
		return string(v.Bytes), nil
	case source.KindBlob:
		if v.Bytes == nil {
			return []byte{}, nil // the driver binds a nil []byte as NULL
		}
		return v.Bytes, nil
	}
	return nil, fmt.Errorf("unknown value kind %v", v.Kind)
}
