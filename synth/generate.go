package synth

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
)

// clientsPerBatch is how many dossiers go into one batch: a few multi-row
// INSERTs per table.
const clientsPerBatch = 100

// Generate creates the schema in the empty database db and fills it with
// the synthetic practice of scale s drawn from seed. The same seed and scale
// give the same rows in every dialect (up to the engine's representation)
// and on every run. Rows are loaded in one transaction (MariaDB commits the
// DDL implicitly) with multi-row INSERTs; indexes are created after the
// load and sequences moved past the ids in use.
func Generate(ctx context.Context, db *sql.DB, d Dialect, s Scale, seed uint64) error {
	di, err := d.impl()
	if err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("synth: begin: %w", err)
	}
	defer tx.Rollback()
	if err := execAll(ctx, tx, di.schema(allTables())); err != nil {
		return err
	}
	snk := newSQLSink(tx, di)
	err = fill(ctx, newGen(seed, s), snk)
	snk.close()
	if err != nil {
		return err
	}
	if err := execAll(ctx, tx, di.finish(allTables())); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("synth: commit: %w", err)
	}
	return nil
}

// WriteSQL writes what Generate would do as an SQL script for the dialect's
// command-line client (sqlite3, psql, mariadb): session settings, schema,
// the rows in one transaction, then indexes and sequence positions. Every
// statement ends with ";\n".
func WriteSQL(ctx context.Context, w io.Writer, d Dialect, s Scale, seed uint64) error {
	di, err := d.impl()
	if err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	stmts := func(ss []string) {
		for _, st := range ss {
			bw.WriteString(st)
			bw.WriteString(";\n")
		}
	}
	stmts(di.scriptHeader())
	stmts(di.schema(allTables()))
	stmts([]string{"BEGIN"})
	if err := fill(ctx, newGen(seed, s), &scriptSink{w: bw, d: di}); err != nil {
		return err
	}
	stmts([]string{"COMMIT"})
	stmts(di.finish(allTables()))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("synth: write script: %w", err)
	}
	return nil
}

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func execAll(ctx context.Context, db execer, stmts []string) error {
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("synth: %s: %w", firstLine(st), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// fill generates the whole database in batches on one goroutine while the
// sink writes the previous batch on the caller's.
func fill(ctx context.Context, g *gen, snk sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *batch, 2)
	go func() {
		defer close(ch)
		g.all(ctx, ch)
	}()
	for b := range ch {
		if err := snk.write(ctx, b); err != nil {
			cancel()
			for range ch { // let the generator see the cancellation and stop
			}
			return err
		}
	}
	return ctx.Err()
}

// all sends the shared rows, then the dossiers in batches, until done or ctx
// is cancelled.
func (g *gen) all(ctx context.Context, ch chan<- *batch) {
	send := func(b *batch) bool {
		select {
		case ch <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	b := new(batch)
	g.shared(b)
	if !send(b) {
		return
	}
	w := window{from: historyStart, to: baseDate}
	for first := 1; first <= g.scale.Clients; first += clientsPerBatch {
		b := new(batch)
		for id := first; id < first+clientsPerBatch && id <= g.scale.Clients; id++ {
			g.next[tClients]++
			g.dossier(b, int64(id), w, false)
		}
		if !send(b) {
			return
		}
	}
}
