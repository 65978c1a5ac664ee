package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// schemaRuns is pg_dump's two runs (pre-data and post-data) for one
// snapshot, running beside the table streams: the snapshot takes its own
// locks once both runs hold theirs (waitLocked), and Schema waits for their
// output (await). See the package documentation for why this order never
// waits for ever.
type schemaRuns struct {
	// appName is the application_name both pg_dump sessions run under,
	// unique to this snapshot, so that their locks can be found.
	appName string
	cancel  context.CancelFunc
	done    chan struct{} // closed when both runs have ended

	mu        sync.Mutex
	ended     int
	err       error // the first run's error
	pre, post []byte
}

// startSchemaRuns starts both pg_dump runs of the exported snapshot.
func startSchemaRuns(ctx context.Context, pgDump, dsn, password, snapshotID string, lockTimeout time.Duration) (*schemaRuns, error) {
	conninfo, err := conninfoWithoutPassword(dsn, password)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	ctx, cancel := context.WithCancel(ctx)
	d := &schemaRuns{appName: "kluis-pg_dump-" + hex.EncodeToString(id[:]), cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for _, section := range []string{"pre-data", "post-data"} {
		wg.Go(func() {
			out, err := runPgDump(ctx, pgDump, conninfo, password, snapshotID, section, lockTimeout, d.appName)
			d.mu.Lock()
			defer d.mu.Unlock()
			d.ended++
			if err != nil && d.err == nil {
				d.err = err
				cancel() // the other run is of no use now
			}
			if section == "pre-data" {
				d.pre = out
			} else {
				d.post = out
			}
		})
	}
	go func() { wg.Wait(); close(d.done) }()
	return d, nil
}

// state returns how many runs have ended and the first error.
func (d *schemaRuns) state() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ended, d.err
}

// stop ends both runs and waits for them.
func (d *schemaRuns) stop() {
	d.cancel()
	<-d.done
}

// pgDumpLocksSQL counts the pg_dump sessions of this snapshot that hold an
// ACCESS SHARE lock on every one of the relations.
const pgDumpLocksSQL = `
SELECT count(*) FROM (
  SELECT l.pid FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
  WHERE a.application_name = $1 AND l.locktype = 'relation' AND l.granted
    AND l.mode = 'AccessShareLock' AND l.relation = ANY($2::oid[])
    AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
  GROUP BY l.pid HAVING count(DISTINCT l.relation) = $3) AS locked`

// waitLocked returns once each pg_dump run either holds its ACCESS SHARE
// lock on every relation or has ended; with the first run's error, if one
// failed. A run whose locks are never seen (a connection string that sets
// its own application_name, a pg_dump that locks fewer relations) is
// waited for until it ends, as if the runs were serial.
func (d *schemaRuns) waitLocked(ctx context.Context, conn *pgx.Conn, rels []relation) error {
	oids := make([]uint32, len(rels))
	for i, r := range rels {
		oids[i] = r.oid
	}
	for delay := 2 * time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		// Ended runs first: a run that ended holds no locks, and is not
		// counted twice.
		ended, err := d.state()
		if err != nil {
			return err
		}
		if ended == 2 || len(oids) == 0 {
			return nil
		}
		var locked int
		if err := freshActivity(ctx, conn); err != nil {
			return fmt.Errorf("waiting for pg_dump's locks: %w", err)
		}
		if err := conn.QueryRow(ctx, pgDumpLocksSQL, d.appName, oids, len(oids)).Scan(&locked); err != nil {
			return fmt.Errorf("waiting for pg_dump's locks: %w", err)
		}
		if locked+ended >= 2 {
			return nil
		}
		select {
		case <-d.done:
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// freshActivity drops the transaction's cached copy of pg_stat_activity:
// a session reads it once per transaction, and the snapshot's transaction
// is older than pg_dump's sessions. (pg_locks is read afresh every time.)
func freshActivity(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_stat_clear_snapshot()")
	return err
}

// errSchemaDumpBlocked: pg_dump waits for a lock that a session holds
// while it waits for this snapshot's locks.
var errSchemaDumpBlocked = errors.New("pg_dump waits for a lock held by a session that waits for this backup's table locks")

// blockedSQL reports whether a pg_dump session of this snapshot waits for
// one of pids (the snapshot's sessions) or for a session that does.
const blockedSQL = `
SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_stat_activity a
  CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(a.pid)) AS b(pid)
  WHERE a.application_name = $1
    AND (b.pid = ANY($2::int[]) OR pg_catalog.pg_blocking_pids(b.pid) && $2::int[]))`

// cancelSQL cancels what this snapshot's pg_dump sessions are doing.
const cancelSQL = `SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity WHERE application_name = $1`

// await waits for both runs to end and returns their output. While it
// waits it checks, every 100 ms on an idle connection of the snapshot,
// that pg_dump is not waiting for a session that waits for the snapshot's
// own locks (DDL queued behind them that holds a lock pg_dump needs, a
// view it reads, say): the server cannot see that cycle, since the
// snapshot waits here and not for a lock, so await breaks it by ending
// pg_dump, and the backup fails with ErrConcurrentDDL (retrying will do).
func (d *schemaRuns) await(ctx context.Context, idle chan *pgx.Conn, pids []uint32) (pre, post []byte, err error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.done:
			_, err := d.state()
			return d.pre, d.post, err
		case <-ctx.Done():
			d.stop()
			return nil, nil, ctx.Err()
		case <-tick.C:
		}
		var conn *pgx.Conn
		select {
		case conn = <-idle:
		default:
			continue // every connection is streaming: check at the next tick
		}
		var blocked bool
		qerr := freshActivity(ctx, conn)
		if qerr == nil {
			qerr = conn.QueryRow(ctx, blockedSQL, d.appName, pids).Scan(&blocked)
		}
		if qerr == nil && blocked {
			// Ending pg_dump's process does not end its session while it
			// waits for a lock: cancel the wait, so that the session
			// rolls back and frees its locks for the other transaction.
			_, qerr = conn.Exec(ctx, cancelSQL, d.appName)
		}
		idle <- conn
		if qerr != nil {
			d.stop()
			return nil, nil, fmt.Errorf("checking pg_dump for lock waits: %w", qerr)
		}
		if blocked {
			d.stop()
			return nil, nil, fmt.Errorf("%w: %w; retry", ErrConcurrentDDL, errSchemaDumpBlocked)
		}
	}
}
