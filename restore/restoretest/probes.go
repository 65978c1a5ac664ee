package restoretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
)

// DefaultProbeTimeout bounds one probe.
const DefaultProbeTimeout = 2 * time.Minute

// withheld stands for a probe result that does not enter the report: the
// probe did not ask for it (record_result), or it is not a number or a
// boolean. A single value can be personal data (a BSN is a number).
const withheld = "withheld"

// runProbes runs every probe on the scratch database, each in a read-only
// transaction of its own with a timeout.
func runProbes(ctx context.Context, sc scratch, engine string, probes []config.Probe, timeout time.Duration) ([]evidence.Probe, error) {
	db, err := sc.Open(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := make([]evidence.Probe, 0, len(probes))
	for _, p := range probes {
		out = append(out, runProbe(ctx, db, engine, p, timeout))
	}
	return out, nil
}

func runProbe(ctx context.Context, db *sql.DB, engine string, p config.Probe, timeout time.Duration) evidence.Probe {
	res := evidence.Probe{Name: p.Name, Expected: expectation(p), Got: withheld}
	got, err := queryOne(ctx, db, engine, p.SQL, timeout)
	if err != nil {
		res.Detail = describe(err)
		res.Got = ""
		return res
	}
	if shown, ok := showable(got); ok && p.RecordResult {
		res.Got = shown
	}
	res.OK, res.Detail = judge(p, got)
	return res
}

// queryOne runs a query that must return one row of one column, in a
// read-only transaction, and returns the value.
func queryOne(ctx context.Context, db *sql.DB, engine, query string, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	switch family(engine) {
	case familyMariaDB:
		// A server-side limit as well: a cancelled client does not stop
		// a running statement on MariaDB.
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION max_statement_time = %.3f", timeout.Seconds())); err != nil {
			return nil, err
		}
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if family(engine) == familyPostgres {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeout.Milliseconds())); err != nil {
			return nil, err
		}
	}
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if len(cols) != 1 {
		return nil, fmt.Errorf("the query returns %d columns; a probe returns one", len(cols))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("the query returns no row; a probe returns one")
	}
	var v any
	if err := rows.Scan(&v); err != nil {
		return nil, err
	}
	if rows.Next() {
		return nil, errors.New("the query returns more than one row; a probe returns one")
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	return v, nil
}

// number parses a value as a finite number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// showable returns the value's text when it may enter the report of a
// probe with record_result: numbers and booleans only.
func showable(v any) (string, bool) {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		if _, ok := number(x); ok {
			return strconv.FormatFloat(x, 'g', -1, 64), true
		}
	case string:
		if _, ok := number(x); ok {
			return strings.TrimSpace(x), true
		}
	}
	return "", false
}

// text is a value as a probe's expect compares it.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// expectation describes what a probe expects, for the report; a textual
// expect is withheld like a textual result.
func expectation(p config.Probe) string {
	switch {
	case p.Expect != nil:
		if _, ok := number(*p.Expect); ok {
			return strings.TrimSpace(*p.Expect)
		}
		if _, err := strconv.ParseBool(*p.Expect); err == nil {
			return *p.Expect
		}
		return "text (" + withheld + ")"
	case p.Min != nil && p.Max != nil:
		return fmt.Sprintf("between %g and %g", *p.Min, *p.Max)
	case p.Min != nil:
		return fmt.Sprintf(">= %g", *p.Min)
	case p.Max != nil:
		return fmt.Sprintf("<= %g", *p.Max)
	}
	return ""
}

// judge compares a probe's result with what it expects. The detail names
// no value.
func judge(p config.Probe, v any) (bool, string) {
	if p.Expect != nil {
		want := *p.Expect
		if text(v) == want {
			return true, ""
		}
		if g, ok := number(v); ok {
			if w, ok := number(want); ok && g == w {
				return true, ""
			}
		}
		if b, ok := v.(bool); ok {
			if w, err := strconv.ParseBool(want); err == nil && w == b {
				return true, ""
			}
		}
		return false, "result differs from expect"
	}
	g, ok := number(v)
	if !ok {
		return false, "result is not a number (min/max need one)"
	}
	if p.Min != nil && g < *p.Min {
		return false, "result below min"
	}
	if p.Max != nil && g > *p.Max {
		return false, "result above max"
	}
	return true, ""
}
