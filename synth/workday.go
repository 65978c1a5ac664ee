package synth

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"
)

// Changes counts the rows a working day's own statements inserted, updated
// and deleted; rows the trigger writes to audit_log are not counted.
type Changes struct {
	Inserted, Updated, Deleted int
}

// WorkingDay applies day n's changes (n ≥ 0; the day is BaseDate plus n
// days) to a database generated with the same seed and scale, in one
// transaction:
//
//   - Clients/200 (at least 1) new clients, each with an intake: a
//     treatment, a planned appointment, a report, two measurements, an
//     invoice, sometimes an attachment and a note;
//   - for Clients/50 existing clients a planned appointment and two
//     measurements, for half of them a report; Clients/100 new invoices and
//     audit_log rows;
//   - about 1% of reports (text appended), appointments (moved) and
//     measurements (corrected) updated at scattered ids, 0.2% of clients
//     (e-mail changed) and 0.5% of invoices (paid);
//   - about 0.1% of appointments deleted (cancelled).
//
// New rows get ids just past the largest in use. The result is determined
// by seed, day and the database's contents, so replaying days 0, 1, 2… on two
// copies of the same database yields the same contents.
func WorkingDay(ctx context.Context, db *sql.DB, d Dialect, s Scale, seed uint64, day int) (Changes, error) {
	var ch Changes
	di, err := d.impl()
	if err != nil {
		return ch, err
	}
	if err := s.validate(); err != nil {
		return ch, err
	}
	if day < 0 {
		return ch, fmt.Errorf("synth: working day %d before BaseDate", day)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return ch, fmt.Errorf("synth: begin: %w", err)
	}
	defer tx.Rollback()
	wd := &workday{tx: tx, d: di, g: newGen(seed, s), rng: newRand(seed, streamDay, int64(day))}
	start := baseDate.AddDate(0, 0, day)
	wd.w = window{from: start, to: start.AddDate(0, 0, 1)}
	if err := wd.run(ctx, &ch); err != nil {
		return Changes{}, err
	}
	if err := execAll(ctx, tx, di.resync(allTables())); err != nil {
		return Changes{}, err
	}
	if err := tx.Commit(); err != nil {
		return Changes{}, fmt.Errorf("synth: commit: %w", err)
	}
	return ch, nil
}

type workday struct {
	tx  *sql.Tx
	d   dialect
	g   *gen
	rng *rand.Rand
	w   window
}

func (wd *workday) run(ctx context.Context, ch *Changes) error {
	g, rng, q := wd.g, wd.rng, wd.d.quote
	for t, def := range schemaTables {
		if !def.hasID() {
			continue
		}
		var max sql.NullInt64
		if err := wd.tx.QueryRowContext(ctx, "SELECT MAX("+q("id")+") FROM "+q(def.name)).Scan(&max); err != nil {
			return fmt.Errorf("synth: largest id of %s: %w", def.name, err)
		}
		g.next[t] = max.Int64
	}
	before := g.next // ids that existed before today
	if before[tClients] == 0 {
		return fmt.Errorf("synth: working day on a database without clients")
	}
	clients := g.scale.Clients

	b := new(batch)
	for range max(1, clients/200) {
		g.dossier(b, g.id(tClients), wd.w, true)
	}
	staff := func() int64 { return 1 + rng.Int64N(int64(len(g.staffNames))) }
	for range max(1, clients/50) {
		c := 1 + rng.Int64N(before[tClients])
		at := wd.w.from.AddDate(0, 0, between(rng, 1, 28)).Add(8*time.Hour + time.Duration(rng.IntN(40))*15*time.Minute)
		b.add(tAppointments, g.id(tAppointments), c, staff(), stampTZ{at}, "gepland")
		for range 2 {
			at := stamp{wd.w.officeTime(rng, wd.w.from)}
			kind, value := measurement(rng)
			b.add(tMeasurements, g.id(tMeasurements), c, at, kind, value)
		}
		if rng.IntN(2) == 0 {
			continue
		}
		var treatment sql.NullInt64
		if err := wd.tx.QueryRowContext(ctx, "SELECT MIN("+q("id")+") FROM "+q("treatments")+" WHERE "+q("client_id")+" = "+wd.d.param(1), c).Scan(&treatment); err != nil {
			return fmt.Errorf("synth: treatment of client %d: %w", c, err)
		}
		body := reportBody(rng, between(rng, 200, 4000))
		if treatment.Valid {
			b.add(tReports, g.id(tReports), c, treatment.Int64, stamp{wd.w.officeTime(rng, wd.w.from)}, body)
		}
	}
	for range max(1, clients/100) {
		g.invoice(b, rng, 1+rng.Int64N(before[tClients]), wd.w, wd.w.from)
	}
	for range max(1, clients/100) {
		c := 1 + rng.Int64N(before[tClients])
		g.audit(b, rng, wd.w, wd.w.from, fmt.Sprintf("%s (cliënt %d)", pick(rng, auditActions), c))
	}
	snk := newSQLSink(wd.tx, wd.d)
	err := snk.write(ctx, b)
	snk.close()
	if err != nil {
		return err
	}
	for _, rows := range b.rows {
		ch.Inserted += len(rows)
	}

	day := wd.w.from.Format("02-01-2006")
	p := wd.d.param
	updates := []struct {
		table int
		per   int64 // one row in per
		sql   string
		args  func() []any
	}{
		{tReports, 100,
			"UPDATE " + q("reports") + " SET " + q("body") + " = " + wd.d.concat(q("body"), p(1)) + " WHERE " + q("id") + " = " + p(2),
			func() []any { return []any{"\n[aanvulling " + day + "] " + pick(rng, reportSentences)} }},
		{tAppointments, 100,
			"UPDATE " + q("appointments") + " SET " + q("at") + " = " + p(1) + ", " + q("status") + " = 'verzet' WHERE " + q("id") + " = " + p(2),
			func() []any {
				at := wd.w.from.AddDate(0, 0, between(rng, 1, 28)).Add(8*time.Hour + time.Duration(rng.IntN(40))*15*time.Minute)
				return []any{wd.d.arg(stampTZ{at})}
			}},
		{tMeasurements, 100,
			"UPDATE " + q("measurements") + " SET " + q("value") + " = " + p(1) + " WHERE " + q("id") + " = " + p(2),
			func() []any { _, v := measurement(rng); return []any{v} }},
		{tClients, 500,
			"UPDATE " + q("clients") + " SET " + q("email") + " = " + p(1) + ", " + q("updated_at") + " = " + p(2) + " WHERE " + q("id") + " = " + p(3),
			func() []any {
				var email any
				if rng.IntN(3) != 0 {
					email = emailFor(pick(rng, firstNames), pick(rng, lastNames), rng.IntN(100))
				}
				return []any{email, wd.d.arg(stamp{wd.w.officeTime(rng, wd.w.from)})}
			}},
		{tInvoices, 200,
			"UPDATE " + q("invoices") + " SET " + q("paid_at") + " = " + p(1) + " WHERE " + q("id") + " = " + p(2) + " AND " + q("paid_at") + " IS NULL",
			func() []any { return []any{wd.d.arg(date{wd.w.from})} }},
	}
	for _, u := range updates {
		n, err := wd.each(ctx, u.sql, before[u.table], u.per, u.args)
		if err != nil {
			return fmt.Errorf("synth: update %s: %w", schemaTables[u.table].name, err)
		}
		ch.Updated += n
	}
	n, err := wd.each(ctx, "DELETE FROM "+q("appointments")+" WHERE "+q("id")+" = "+p(1), before[tAppointments], 1000, nil)
	if err != nil {
		return fmt.Errorf("synth: delete appointments: %w", err)
	}
	ch.Deleted += n
	return nil
}

// each runs query, whose last parameter is an id, for max(1, n/per)
// distinct random ids in 1..n, with the other arguments from args, and
// returns the rows affected.
func (wd *workday) each(ctx context.Context, query string, n, per int64, args func() []any) (int, error) {
	if n == 0 {
		return 0, nil
	}
	ids := scatter(wd.rng, n, max(1, n/per))
	st, err := wd.tx.PrepareContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	total := 0
	for _, id := range ids {
		var a []any
		if args != nil {
			a = args()
		}
		res, err := st.ExecContext(ctx, append(a, id)...)
		if err != nil {
			return total, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += int(k)
	}
	return total, nil
}

// scatter returns k distinct random ids in 1..n, in the order drawn.
func scatter(rng *rand.Rand, n, k int64) []int64 {
	k = min(k, n)
	seen := make(map[int64]bool, k)
	out := make([]int64, 0, k)
	for int64(len(out)) < k {
		id := 1 + rng.Int64N(n)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
