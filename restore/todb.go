package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
)

// TableCheck compares one restored table with its manifest entry.
type TableCheck struct {
	Table        string             `json:"table"`
	Rows         int64              `json:"rows"`
	Bytes        int64              `json:"bytes"`
	Expected     source.Fingerprint `json:"expected_fingerprint"`
	Got          source.Fingerprint `json:"restored_fingerprint"`
	RowsRestored int64              `json:"rows_restored"`
	Match        bool               `json:"match"`
	LoadSeconds  float64            `json:"load_seconds"`
}

// DBResult reports a restore into a database.
type DBResult struct {
	Snapshot string       `json:"snapshot"`
	Tables   []TableCheck `json:"tables"`
	Bytes    int64        `json:"bytes"`
	Rows     int64        `json:"rows"`
	// Duration is the time from the first schema statement to the last
	// fingerprint: the restore time objective measured.
	Duration float64 `json:"duration_seconds"`
	// Phases splits Duration: where a restore's time goes.
	Phases Phases `json:"phases"`
	OK     bool   `json:"ok"`
	// Privileges says which owners and privileges were applied or skipped;
	// nil for a snapshot that recorded none (older, or not PostgreSQL).
	Privileges *source.PrivilegesReport `json:"privileges,omitempty"`
	// Schema compares the restored objects, owners and privileges with the
	// snapshot's; nil when the snapshot recorded none.
	Schema *source.SchemaCheck `json:"schema,omitempty"`
}

// Phases are the seconds a restore spent in each of its steps, one after
// the other (their sum is about DBResult.Duration).
type Phases struct {
	// PreData is the schema before the data (tables, types, functions).
	PreData float64 `json:"pre_data_seconds"`
	// Load is every table loaded, and read back and fingerprinted where
	// the target proves as it loads, DBOptions.Parallel at a time; and
	// the post-data entries that ran beside the loads.
	Load float64 `json:"load_seconds"`
	// LargeObjects loads the large objects.
	LargeObjects float64 `json:"large_objects_seconds,omitempty"`
	// PostData is indexes, constraints, triggers, sequence values: what
	// was left of them when the last table was loaded.
	PostData float64 `json:"post_data_seconds"`
	// Privileges applies owners and privileges.
	Privileges float64 `json:"privileges_seconds,omitempty"`
	// Proof is the end-of-restore read-back of every table (none when each
	// was proven as it loaded and nothing changed rows since) and of the
	// large objects, owners and privileges.
	Proof float64 `json:"proof_seconds"`
}

// Mismatches returns the tables whose fingerprint differs.
func (r *DBResult) Mismatches() []string {
	var out []string
	for _, t := range r.Tables {
		if !t.Match {
			out = append(out, t.Table)
		}
	}
	return out
}

// DBOptions tune ToDatabase.
type DBOptions struct {
	// Parallel is the number of tables loaded at once (default 2).
	Parallel int
	// Progress is called as tables finish.
	Progress func(done, total int)
	// Roles says whether the snapshot's owners and privileges are applied
	// (source.RolesApply, the default) or skipped and reported.
	Roles source.RolesMode
}

// LargeObjectsCheck is the name of the TableCheck of a snapshot's large
// objects.
const LargeObjectsCheck = "(large objects)"

// ErrFingerprintMismatch is returned when a restored table differs from
// what was backed up.
var ErrFingerprintMismatch = errors.New("restored table differs from the snapshot")

// ErrSchemaMismatch is returned when the restored objects, owners or
// privileges differ from what the snapshot recorded.
var ErrSchemaMismatch = errors.New("restored schema differs from the snapshot")

// ToDatabase restores a database snapshot into target: the pre-data
// schema, every table (opts.Parallel at once, largest first), the
// post-data schema (indexes, constraints, triggers, sequence values; in
// parallel when the target can), then every table's fingerprint is
// recomputed from the target and compared with the manifest. Any
// difference fails the restore. A source.ProvingTarget given directly
// reads each table back as soon as its load commits, beside the other
// loads, and the end-of-restore pass is skipped unless the target reports
// that something changed rows since (source/postgres, "Target"). A
// ProvingTarget, given directly or decorated, also starts the post-data
// section before the loads: an index or a constraint is built as soon as
// its tables are loaded, beside the loads of the others, as pg_restore -j
// does (source.ProvingTarget.StartPostData).
func ToDatabase(ctx context.Context, r *repo.Repo, snap repo.SnapshotInfo, target source.Target, opts DBOptions) (*DBResult, error) {
	m := snap.Manifest
	if m.Engine == "files" {
		return nil, fmt.Errorf("snapshot %s is of a files tenant: restore it with --to-dir", snap.ID.Short())
	}
	tables, err := backup.Tables(m)
	if err != nil {
		return nil, err
	}
	pre, ok := m.Stream(backup.SchemaPreStream)
	if !ok {
		return nil, fmt.Errorf("snapshot %s has no %s stream: %w", snap.ID.Short(), backup.SchemaPreStream, repo.ErrCorrupt)
	}
	post, ok := m.Stream(backup.SchemaPostStream)
	if !ok {
		return nil, fmt.Errorf("snapshot %s has no %s stream: %w", snap.ID.Short(), backup.SchemaPostStream, repo.ErrCorrupt)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	start := time.Now()
	res := &DBResult{Snapshot: snap.ID.String()}

	if err := applySchema(ctx, r, target, pre); err != nil {
		return nil, fmt.Errorf("pre-data schema: %w", err)
	}
	lap := start
	// Each phase, and each table's load, also at debug level (kluis
	// restore --log-level debug): where a slow restore spends its time.
	phase := func(name string, p *float64) {
		now := time.Now()
		*p = now.Sub(lap).Seconds()
		lap = now
		slog.Debug("restore phase", "done", name, "took", time.Duration(*p*float64(time.Second)).Round(time.Millisecond), "at", now.Sub(start).Round(time.Millisecond))
	}
	phase("pre-data schema", &res.Phases.PreData)

	// A target that proves as it loads reads each table back on the
	// connection that loaded it, while the other connections load the
	// next tables. Only a target given directly: a decorator (a restore
	// test's) watches Fingerprint and must see every one.
	prover, fold := target.(source.ProvingTarget)
	stale := false
	checks := make([]TableCheck, len(tables))
	// Largest first, so that the last table to finish is a small one.
	order := make([]int, len(tables))
	for i, t := range tables {
		s, _ := m.Stream(backup.TableStream(t.Name))
		checks[i] = TableCheck{Table: t.Name, Rows: t.Rows, Bytes: s.Size, Expected: t.Fingerprint}
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return checks[order[a]].Bytes > checks[order[b]].Bytes })
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
		done    int
	)
	next := make(chan int, len(order))
	for _, i := range order {
		next <- i
	}
	close(next)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A target that can starts the post-data section now: an index or a
	// constraint is built as soon as its tables are loaded, beside the
	// loads of the others, as pg_restore -j does.
	var postData source.PostData
	if pd, ok := capability[source.ProvingTarget](target); ok {
		rd := r.StreamReader(lctx, post)
		load := make([]source.Table, len(tables))
		for i, t := range tables {
			load[i] = t.Table
		}
		postData, err = pd.StartPostData(lctx, rd, opts.Parallel, load)
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("post-data schema: %w", err)
		}
	}
	postDataFinished := postData == nil
	defer func() {
		if !postDataFinished {
			cancel()
			postData.Finish()
		}
	}()
	for range min(opts.Parallel, len(tables)) {
		wg.Go(func() {
			for i := range next {
				if lctx.Err() != nil {
					return
				}
				t := tables[i]
				s, _ := m.Stream(backup.TableStream(t.Name))
				t0 := time.Now()
				rd := tableRows(lctx, r, s)
				var (
					got    source.TableResult
					gstale bool
					err    error
				)
				if fold {
					got, gstale, err = prover.LoadAndFingerprint(lctx, t.Table, rd)
				} else {
					err = target.LoadTable(lctx, t.Table, rd)
				}
				rd.Close()
				var perr error
				if err == nil && postData != nil {
					perr = postData.Loaded(t.Table)
				}
				took := time.Since(t0).Round(time.Millisecond)
				switch {
				case err != nil:
					slog.Debug("table not restored", "table", t.Name, "took", took, "error", err)
				case fold:
					// Read back as loaded: whether it matches the snapshot.
					slog.Debug("table restored", "table", t.Name, "took", took, "fingerprint_match", got.Fingerprint == t.Fingerprint && got.Rows == t.Rows)
				default:
					slog.Debug("table restored", "table", t.Name, "took", took)
				}
				mu.Lock()
				c := &checks[i]
				c.LoadSeconds = time.Since(t0).Seconds()
				if fold && err == nil {
					c.Got, c.RowsRestored = got.Fingerprint, got.Rows
					c.Match = got.Fingerprint == t.Fingerprint && got.Rows == t.Rows
					stale = stale || gstale
				}
				if err != nil && firstEr == nil {
					firstEr = fmt.Errorf("table %s: %w", t.Name, err)
					cancel()
				}
				if perr != nil && firstEr == nil {
					firstEr = fmt.Errorf("post-data schema: %w", perr)
					cancel()
				}
				done++
				if opts.Progress != nil {
					opts.Progress(done, len(tables))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	phase("tables", &res.Phases.Load)
	var loCheck *TableCheck
	if ls, ok := m.Stream(backup.LargeObjectsStream); ok {
		lt, ok := capability[source.LargeObjectTarget](target)
		if !ok {
			return nil, fmt.Errorf("snapshot %s holds large objects, which this target cannot load", snap.ID.Short())
		}
		var want source.TableResult
		if err := json.Unmarshal(ls.Meta, &want); err != nil {
			return nil, fmt.Errorf("stream %s: %w", ls.Name, repo.ErrCorrupt)
		}
		loCheck = &TableCheck{Table: LargeObjectsCheck, Rows: want.Rows, Bytes: ls.Size, Expected: want.Fingerprint}
		t0 := time.Now()
		rd := r.StreamReader(ctx, ls)
		err := lt.LoadLargeObjects(ctx, rd)
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("large objects: %w", err)
		}
		loCheck.LoadSeconds = time.Since(t0).Seconds()
		phase("large objects", &res.Phases.LargeObjects)
	}
	if postData != nil {
		postDataFinished = true
		s, err := postData.Finish()
		if err != nil {
			return nil, fmt.Errorf("post-data schema: %w", err)
		}
		stale = stale || s
	} else if err := applySchema(ctx, r, target, post); err != nil {
		return nil, fmt.Errorf("post-data schema: %w", err)
	}
	phase("post-data schema", &res.Phases.PostData)
	if ps, ok := m.Stream(backup.PrivilegesStream); ok {
		mode := opts.Roles
		if mode == "" {
			mode = source.RolesApply
		}
		pt, ok := capability[source.PrivilegeTarget](target)
		rd := r.StreamReader(ctx, ps)
		var rep *source.PrivilegesReport
		var err error
		switch {
		case ok:
			rep, err = pt.ApplyPrivileges(ctx, rd, mode)
		case mode == source.RolesSkip:
			var p *source.Privileges
			if p, err = source.DecodePrivileges(rd); err == nil {
				rep = source.SkipPrivileges(p)
			}
		default:
			err = fmt.Errorf("snapshot %s records owners and privileges, which this target cannot apply (restore with --roles skip)", snap.ID.Short())
		}
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("owners and privileges: %w", err)
		}
		res.Privileges = rep
		phase("owners and privileges", &res.Phases.Privileges)
	}
	// Every table read back and fingerprinted, opts.Parallel at a time —
	// unless each was read back as it loaded and nothing since changed a
	// row (the post-data run counts the rows every statement wrote:
	// PostData.Finish reports them stale).
	fpErrs := make([]error, len(tables))
	sem := make(chan struct{}, opts.Parallel)
	for i, t := range tables {
		if fold && !stale {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := target.Fingerprint(ctx, t.Table)
			if err != nil {
				fpErrs[i] = fmt.Errorf("fingerprint of restored table %s: %w", t.Name, err)
				return
			}
			c := &checks[i]
			c.Got, c.RowsRestored = got.Fingerprint, got.Rows
			c.Match = got.Fingerprint == t.Fingerprint && got.Rows == t.Rows
		}()
	}
	wg.Wait()
	if err := errors.Join(fpErrs...); err != nil {
		return nil, err
	}
	if loCheck != nil {
		lt, _ := capability[source.LargeObjectTarget](target)
		got, err := lt.FingerprintLargeObjects(ctx)
		if err != nil {
			return nil, fmt.Errorf("fingerprint of restored large objects: %w", err)
		}
		loCheck.Got, loCheck.RowsRestored = got.Fingerprint, got.Rows
		loCheck.Match = got.Fingerprint == loCheck.Expected && got.Rows == loCheck.Rows
		checks = append(checks, *loCheck)
	}
	if ps, ok := m.Stream(backup.PrivilegesStream); ok {
		if sr, ok := capability[source.SchemaReader](target); ok {
			rd := r.StreamReader(ctx, ps)
			want, err := source.DecodePrivileges(rd)
			rd.Close()
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", ps.Name, err)
			}
			got, err := sr.ReadPrivileges(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading back owners and privileges: %w", err)
			}
			mode := source.RolesApply
			if res.Privileges != nil {
				mode = res.Privileges.Mode
			}
			res.Schema = source.CompareSchema(want, got, mode)
		}
	}
	phase("proof", &res.Phases.Proof)
	for _, c := range checks {
		res.Bytes += c.Bytes
		res.Rows += c.RowsRestored
	}
	res.Tables = checks
	sort.Slice(res.Tables, func(i, j int) bool { return res.Tables[i].Table < res.Tables[j].Table })
	res.Duration = time.Since(start).Seconds()
	if bad := res.Mismatches(); len(bad) > 0 {
		return res, fmt.Errorf("%w: %s", ErrFingerprintMismatch, strings.Join(bad, ", "))
	}
	if res.Schema != nil && !res.Schema.OK() {
		return res, fmt.Errorf("%w: %s", ErrSchemaMismatch, res.Schema.Summary())
	}
	res.OK = true
	return res, nil
}

// Unwrapper is a Target that decorates another (a restore test watches
// its target): ToDatabase looks through it for optional capabilities.
type Unwrapper interface{ Unwrap() source.Target }

// capability returns target, or the first target it decorates, as a T.
func capability[T any](target source.Target) (T, bool) {
	for {
		if c, ok := target.(T); ok {
			return c, true
		}
		u, ok := target.(Unwrapper)
		if !ok {
			var zero T
			return zero, false
		}
		target = u.Unwrap()
	}
}

// tableRows is the row stream of one table: what the loader consumes.
func tableRows(ctx context.Context, r *repo.Repo, s *repo.Stream) io.ReadCloser {
	return r.StreamReader(ctx, s)
}

func applySchema(ctx context.Context, r *repo.Repo, target source.Target, s *repo.Stream) error {
	rd := r.StreamReader(ctx, s)
	defer rd.Close()
	return target.ApplySchema(ctx, rd)
}
