package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kluis-nl/kluis/source"
)

// This file runs a post-data section beside the table loads, as pg_restore
// -j does (StartPostData): an index or a constraint starts once every table
// it locks is loaded and read back, on one of up to parallel connections of
// its own, while the other tables still load (so up to twice parallel
// server sessions work at once: on the shared 2-core machine that was
// faster than letting post-data wait for a loader's connection, see
// docs/benchmarks.md). What it may not do:
//
//   - start before its tables are loaded: an index or a foreign key built
//     on a table that a later COPY fills would be maintained row by row
//     (slow), and a table still loading holds its exclusive lock;
//   - change what was proven: each entry's row writes are counted in its
//     own transaction and the storage files of the tables proven are
//     compared at the end, as when the section ran after the loads
//     (ApplyPostData, "stale"), so an entry that writes rows of any table,
//     loaded or not, makes the restore read every table back;
//   - deadlock with a load: an entry that starts while tables still load
//     runs with a short lock_timeout (overlapLockTimeout), so if its code
//     waits for a table that a load holds (a function in an index
//     expression reading a table being loaded), the entry gives way — it
//     rolls back and runs again after the loads — instead of waiting on a
//     load that may be waiting on it;
//   - lock what another entry locks: an entry locks each table it names
//     (an index attachment: the two indexes' tables) and, for a table in
//     an inheritance or partition tree, every member of the tree; it
//     starts once every earlier entry that locks one of them finished
//     (index builds excepted, which share), and once every table it locks
//     is loaded — a trigger therefore never exists while its table loads;
//   - run anything else early: entries that are not indexes, constraints,
//     triggers or index attachments (rules, policies, comments, sequence
//     values, refreshes, anything the splitter cannot read), and every
//     entry after one of them, wait until every table is loaded (Finish)
//     and run alone, in order.

// overlapLockTimeout bounds a lock wait of an entry that runs while tables
// still load: shorter than the server's default deadlock_timeout (1 s), so
// that the entry, not the load, gives way.
const overlapLockTimeout = "200ms"

// lockNotAvailable is SQLSTATE 55P03, lock_timeout expired.
const lockNotAvailable = "55P03"

// postJob is one post-data entry.
type postJob struct {
	sql    string
	tables []qname // tables it locks (parallel entries)
	share  bool    // only CREATE INDEX: runs beside other index builds on its table
	// early: only CREATE INDEX statements. It may start once its tables'
	// loads committed, beside their read-back (an index build takes a
	// SHARE lock, which the read-back's ACCESS SHARE does not conflict
	// with), and need not wait for an earlier primary key, unique or check
	// constraint of its table: it only never runs beside one.
	early bool
	kind  string
	// serial: runs alone, in order, on the first connection, after every
	// table is loaded and every entry before it finished.
	serial bool
}

func (a postJob) conflicts(b postJob) bool {
	if a.share && b.share {
		return false
	}
	for _, x := range a.tables {
		for _, y := range b.tables {
			if x == y {
				return true
			}
		}
	}
	return false
}

// postRun is a post-data section running (StartPostData). One goroutine
// (loop) owns the schedule; Loaded, Finish and the loads' commits send it
// events.
type postRun struct {
	t        *Target
	parent   context.Context // the caller's
	ctx      context.Context
	cancel   context.CancelFunc
	parallel int
	pre      string // the section's SET preamble, run on every connection
	jobs     []postJob
	first    *pgx.Conn

	events chan postEvent
	done   chan struct{} // closed when loop returns
	stale  bool          // loop's result, read after done
	err    error
	// failed is closed when an entry failed (or a connection could not
	// be opened); Loaded then returns the error.
	failed  chan struct{}
	failErr error
}

type postEvent struct {
	loaded    *qname
	committed *qname
	finish    bool
}

var _ source.PostData = (*postRun)(nil)

// StartPostData starts a post-data section (DDL from Snapshot.Schema) that
// runs beside the loads of the tables in load (see the top of this file
// and ApplyPostData). The pre-data section must be applied.
func (t *Target) StartPostData(ctx context.Context, ddl io.Reader, parallel int, load []source.Table) (source.PostData, error) {
	return t.startPostData(ctx, ddl, parallel, load)
}

func (t *Target) startPostData(ctx context.Context, ddl io.Reader, parallel int, load []source.Table) (*postRun, error) {
	text, err := io.ReadAll(ddl)
	if err != nil {
		return nil, fmt.Errorf("reading schema: %w", err)
	}
	text = stripRestrict(text)
	if parallel < 1 {
		parallel = 1
	}
	entries, ok := splitDDL(text)
	var preamble []string
	if ok && len(entries) > 0 && entries[0].kind == "" {
		for _, s := range entries[0].stmts {
			if !isSet(s) {
				ok = false
			}
			preamble = append(preamble, s.text)
		}
		entries = entries[1:]
	}
	first, err := connect(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	p := &postRun{t: t, parent: parent, ctx: ctx, cancel: cancel, parallel: parallel, first: first,
		events: make(chan postEvent), done: make(chan struct{}), failed: make(chan struct{})}
	fail := func(err error) (*postRun, error) {
		cancel()
		first.Close(context.Background())
		return nil, redactError(err, t.cfg.Password)
	}
	pending := map[qname]bool{}
	for _, tb := range load {
		pending[qname{tb.Schema, tb.Table}] = true
	}
	if !ok {
		// What the section does cannot be told: it runs whole, after the
		// loads, and the restore reads every table back.
		p.jobs = []postJob{{sql: string(text), serial: true}}
		p.stale = true
		go p.loop(pending)
		return p, nil
	}
	p.pre = strings.Join(preamble, ";\n")
	if p.pre != "" {
		if err := execSimple(ctx, first, p.pre); err != nil {
			return fail(fmt.Errorf("applying schema: %w", err))
		}
	}
	locks, err := readLockCatalog(ctx, first)
	if err != nil {
		return fail(err)
	}
	serial := false // after an entry that changes a session setting, everything runs alone
	for _, e := range entries {
		for idx, tb := range entryIndexes(e) {
			if _, ok := locks.table[idx]; !ok {
				locks.table[idx] = tb
			}
		}
		named, par := entryTables(e)
		// A name the catalog does not know cannot be matched with the
		// loads: the entry runs alone, after them.
		tables, known := locks.expand(named)
		job := postJob{sql: entrySQL(e), tables: tables, share: e.kind == "INDEX", kind: e.kind, serial: serial || !par || !known}
		job.early = job.share && onlyCreateIndex(e)
		if job.serial {
			job.tables = nil
			for _, st := range e.stmts {
				if isSet(st) {
					serial = true
				}
			}
		}
		p.jobs = append(p.jobs, job)
		if e.kind == "EVENT TRIGGER" {
			p.stale = true // it runs user code on later DDL
		}
	}
	if len(pending) > 0 {
		t.mu.Lock()
		t.post = p
		t.mu.Unlock()
	}
	go p.loop(pending)
	return p, nil
}

// onlyCreateIndex reports whether every statement of e is CREATE [UNIQUE]
// INDEX.
func onlyCreateIndex(e ddlEntry) bool {
	for _, s := range e.stmts {
		if s.isEmpty() {
			continue
		}
		t := s.tokens
		word := func(i int, w string) bool { return i < len(t) && !t[i].quoted && !t[i].punct && t[i].s == w }
		if !word(0, "create") || !(word(1, "index") || (word(1, "unique") && word(2, "index"))) {
			return false
		}
	}
	return true
}

// committed tells the post-data running beside the loads, if any, that
// tb's load committed (LoadAndFingerprint, before the read-back).
func (t *Target) committed(tb source.Table) {
	t.mu.Lock()
	p := t.post
	t.mu.Unlock()
	if p == nil {
		return
	}
	q := qname{tb.Schema, tb.Table}
	select {
	case p.events <- postEvent{committed: &q}:
	case <-p.failed:
	case <-p.done:
	}
}

// lockCatalog maps the relations a post-data entry names to the tables it
// locks.
type lockCatalog struct {
	table map[qname]qname   // every user relation: itself, or an index's table
	tree  map[qname][]qname // a table in an inheritance tree: every member
}

func readLockCatalog(ctx context.Context, conn *pgx.Conn) (*lockCatalog, error) {
	l := &lockCatalog{table: map[qname]qname{}, tree: map[qname][]qname{}}
	rows, err := conn.Query(ctx, relationsSQL)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var q, tb qname
		if err := rows.Scan(&q.schema, &q.name, &tb.schema, &tb.name); err != nil {
			rows.Close()
			return nil, err
		}
		if tb.name == "" {
			tb = q
		}
		l.table[q] = tb
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Union the trees' members under one root each.
	root := map[qname]qname{}
	var find func(q qname) qname
	find = func(q qname) qname {
		r, ok := root[q]
		if !ok || r == q {
			return q
		}
		r = find(r)
		root[q] = r
		return r
	}
	rows, err = conn.Query(ctx, inheritsSQL)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c, p qname
		if err := rows.Scan(&c.schema, &c.name, &p.schema, &p.name); err != nil {
			rows.Close()
			return nil, err
		}
		c, p = l.table[c], l.table[p]
		if rc, rp := find(c), find(p); rc != rp {
			root[rc] = rp
		}
		root[c], root[p] = find(c), find(p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	members := map[qname][]qname{}
	for q := range root {
		r := find(q)
		members[r] = append(members[r], q)
	}
	for q := range root {
		l.tree[q] = members[find(q)]
	}
	return l, nil
}

// expand returns the tables locked by an entry that names these
// relations: each one's table, with every member of its inheritance tree.
// ok is false when a name is not a relation the catalog knows.
func (l *lockCatalog) expand(named []qname) (tables []qname, ok bool) {
	seen := map[qname]bool{}
	add := func(q qname) {
		if !seen[q] {
			seen[q] = true
			tables = append(tables, q)
		}
	}
	for _, q := range named {
		tb, ok := l.table[q]
		if !ok {
			return nil, false
		}
		if m, ok := l.tree[tb]; ok {
			for _, x := range m {
				add(x)
			}
		} else {
			add(tb)
		}
	}
	return tables, true
}

// Loaded implements source.PostData.
func (p *postRun) Loaded(tb source.Table) error {
	q := qname{tb.Schema, tb.Table}
	select {
	case <-p.failed:
		return p.failErr
	default:
	}
	select {
	case p.events <- postEvent{loaded: &q}:
		return nil
	case <-p.failed:
		return p.failErr
	case <-p.done:
		return errors.New("postgres: post-data already finished")
	}
}

// Finish implements source.PostData.
func (p *postRun) Finish() (bool, error) {
	select {
	case p.events <- postEvent{finish: true}:
	case <-p.done:
		return false, errors.New("postgres: post-data finished twice")
	}
	<-p.done
	return p.stale, p.err
}

type postResult struct {
	i        int
	c        *pgx.Conn
	stale    bool
	err      error
	overlaps bool // ran while tables still loaded, under overlapLockTimeout
}

// loop schedules the jobs until Finish and every job started has
// returned. A parallel job starts when its tables are loaded (or every
// load is done), every earlier job it conflicts with has finished (see
// waits), none it conflicts with runs, no serial job before it is pending,
// and fewer than parallel jobs run; a serial job starts alone once every
// table is loaded and every job before it finished.
func (p *postRun) loop(pending map[qname]bool) {
	conns := []*pgx.Conn{p.first}
	defer func() {
		p.t.mu.Lock()
		if p.t.post == p {
			p.t.post = nil
		}
		p.t.mu.Unlock()
		p.cancel()
		for _, c := range conns {
			c.Close(context.Background())
		}
		close(p.done)
	}()
	n := len(p.jobs)
	started := make([]bool, n)
	done := make([]bool, n)
	committed := map[qname]bool{}
	deferred := make([]bool, n) // gave way to a load: waits for Finish
	free := []*pgx.Conn{p.first}
	results := make(chan postResult)
	running, finished, ndone := 0, false, 0
	var firstErr error
	setErr := func(err error) {
		if firstErr == nil {
			firstErr = err
			p.failErr = err
			close(p.failed)
			p.cancel()
		}
	}
	ready := func(i int) bool {
		if finished {
			return true
		}
		if deferred[i] {
			return false
		}
		for _, q := range p.jobs[i].tables {
			if pending[q] && !(p.jobs[i].early && committed[q]) {
				return false
			}
		}
		return true
	}
	// waits reports whether job i must wait for an earlier job j it
	// conflicts with to finish, rather than only not run beside it.
	waits := func(j, i int) bool {
		if p.jobs[i].early {
			switch p.jobs[j].kind {
			case "CONSTRAINT", "CHECK CONSTRAINT":
				return false
			}
		}
		return true
	}
	start := func(i int, c *pgx.Conn) {
		started[i] = true
		running++
		overlaps := !finished
		go func() {
			s, err := p.t.runEntry(p.ctx, c, p.jobs[i].sql, overlaps)
			results <- postResult{i, c, s, err, overlaps}
		}()
	}
	schedule := func() {
		for i := 0; i < n && firstErr == nil; i++ {
			if done[i] || started[i] {
				if !done[i] && p.jobs[i].serial {
					return // a serial job runs alone
				}
				continue
			}
			if p.jobs[i].serial {
				if finished && running == 0 && ndone == i {
					// Every connection is free: take the first out of the list.
					for k, c := range free {
						if c == p.first {
							free = append(free[:k], free[k+1:]...)
							break
						}
					}
					start(i, p.first)
				}
				return // nothing after it starts before it finished
			}
			if running >= p.parallel {
				return
			}
			if !ready(i) {
				continue
			}
			blocked := false
			for j := 0; j < n && !blocked; j++ {
				if !p.jobs[j].conflicts(p.jobs[i]) || j == i {
					continue
				}
				// Running now (started, not done: a job that gave way is not
				// started again until it runs), or earlier and to wait for.
				blocked = !done[j] && (started[j] || (j < i && waits(j, i)))
			}
			if blocked {
				continue
			}
			if len(free) == 0 {
				c, err := p.connect()
				if err != nil {
					setErr(err)
					return
				}
				conns = append(conns, c)
				free = append(free, c)
			}
			c := free[len(free)-1]
			free = free[:len(free)-1]
			start(i, c)
		}
	}
	for {
		schedule()
		if finished && running == 0 && (firstErr != nil || ndone == n) {
			break
		}
		select {
		case ev := <-p.events:
			switch {
			case ev.loaded != nil:
				delete(pending, *ev.loaded)
			case ev.committed != nil:
				committed[*ev.committed] = true
			case ev.finish:
				finished = true
				if err := p.ctx.Err(); err != nil {
					setErr(err)
				}
			}
		case r := <-results:
			running--
			free = append(free, r.c)
			var pgErr *pgconn.PgError
			switch {
			case r.err == nil:
				done[r.i] = true
				ndone++
				p.stale = p.stale || r.stale
			case r.overlaps && errors.As(r.err, &pgErr) && pgErr.Code == lockNotAvailable && p.ctx.Err() == nil:
				// It waited on a lock a load (or its code) holds: run it
				// again once every table is loaded, without the timeout.
				started[r.i], deferred[r.i] = false, true
			default:
				setErr(r.err)
			}
		}
	}
	if firstErr != nil {
		if err := p.parent.Err(); err != nil {
			firstErr = err // cancelled: say so, not how a statement died of it
		}
		p.stale, p.err = false, firstErr
		return
	}
	changed, err := p.t.filenodesChanged(p.ctx, p.first)
	if err != nil {
		p.stale, p.err = false, err
		return
	}
	p.stale = p.stale || changed
}

// connect opens one more connection for post-data entries, with the
// section's preamble applied.
func (p *postRun) connect() (*pgx.Conn, error) {
	c, err := connect(p.ctx, p.t.cfg)
	if err != nil {
		return nil, err
	}
	if p.pre != "" {
		if err := execSimple(p.ctx, c, p.pre); err != nil {
			c.Close(context.Background())
			return nil, redactError(err, p.t.cfg.Password)
		}
	}
	return c, nil
}
