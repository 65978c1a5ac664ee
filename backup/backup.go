// Package backup takes one snapshot of one tenant: it reads the tenant's
// streams (files, or a database through a source.Engine) into a
// repo.Backup and commits it. It is the glue between source and repo and
// owns neither's details.
package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/rowdelta"
	"github.com/kluis-nl/kluis/rowindex"
	"github.com/kluis-nl/kluis/source"
)

// Input is one named stream of a files tenant.
type Input struct {
	Name string
	// Path is the file to read; empty with Reader set reads Reader (stdin).
	Path   string
	Reader io.Reader
}

var streamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidStreamName reports whether name can name a file stream: it becomes
// a file name at restore, so it may not contain a path.
func ValidStreamName(name string) error {
	if !streamNameRE.MatchString(name) {
		return fmt.Errorf("stream name %q: use letters, digits, '.', '_' and '-' (no slashes, at most 128)", name)
	}
	return nil
}

// Files backs up named files or readers as one snapshot.
func Files(ctx context.Context, r *repo.Repo, inputs []Input, opts repo.BackupOptions) (*repo.Result, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("nothing to back up: give --file NAME=PATH or --stdin NAME")
	}
	seen := map[string]bool{}
	for _, in := range inputs {
		if err := ValidStreamName(in.Name); err != nil {
			return nil, err
		}
		if seen[in.Name] {
			return nil, fmt.Errorf("stream name %q given twice", in.Name)
		}
		seen[in.Name] = true
		if in.Path != "" {
			if _, err := os.Stat(in.Path); err != nil {
				return nil, err
			}
		}
	}
	opts.Engine = "files"
	b, err := r.NewBackup(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		rd := in.Reader
		if in.Path != "" {
			f, err := os.Open(in.Path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			rd = f
		}
		if err := b.Stream(ctx, in.Name, repo.KindFile, rd, nil); err != nil {
			return nil, err
		}
	}
	return commit(ctx, b, func(string) {})
}

// commit commits the snapshot, then re-seals its packs when the options
// ask for it (repo.Backup.Reseal: Result.Reseal says what it did). The
// snapshot is committed whatever the re-seal does: its failure is in
// Result.Reseal.Error and the log, not the backup's. phase marks the
// steps done for the debug log.
func commit(ctx context.Context, b *repo.Backup, phase func(string)) (*repo.Result, error) {
	res, err := b.Commit(ctx)
	if err != nil {
		return res, err
	}
	phase("commit")
	if rs, err := b.Reseal(ctx); err != nil {
		rs.Error = err.Error()
		slog.Warn("re-sealing the backup's packs failed; the snapshot stays as committed", "tenant", b.Repo().Tenant(), "snapshot", res.ID.Short(), "err", err)
	} else if rs.Skipped == "" {
		phase("reseal")
	}
	return res, nil
}

// Stream names of a database snapshot.
const (
	SchemaPreStream  = "schema/pre"
	SchemaPostStream = "schema/post"
	// PrivilegesStream holds owners, privileges and the roles they name
	// (source.Privileges), apart from the schema so a restore can skip them.
	PrivilegesStream = "schema/privileges"
	// LargeObjectsStream holds PostgreSQL large objects
	// (source.LargeObjectsFormat); its meta is a source.TableResult.
	LargeObjectsStream = "large-objects"
	tablePrefix        = "table/"
)

// Stream kinds of the optional streams (docs/format.md).
const (
	KindPrivileges   = "schema-privileges"
	KindLargeObjects = "large-objects"
)

// TableStream returns the stream name of a table.
func TableStream(name string) string { return tablePrefix + name }

// Database backs up a database through its engine as one snapshot: the
// schema in two parts and every table as its own stream, all from one
// consistent read.
func Database(ctx context.Context, r *repo.Repo, eng source.Engine, opts repo.BackupOptions) (*repo.Result, error) {
	return DatabaseIndexed(ctx, r, eng, opts, nil)
}

// IndexColumns chooses, from a snapshot's tables, the column lists to
// index per table name (restore/dossier.IndexColumns: the root key and the
// references a dossier profile follows).
type IndexColumns func(tables []source.Table) map[string][][]string

// DatabaseIndexed is Database writing, with each table named by cols, a
// row index over those column lists (docs/format.md, "Row index"), so
// that a dossier reads only the chunks that can hold its rows. cols may
// be nil: no index.
func DatabaseIndexed(ctx context.Context, r *repo.Repo, eng source.Engine, opts repo.BackupOptions, cols IndexColumns) (*repo.Result, error) {
	// The phases at debug level: where a slow backup spends its time.
	start := time.Now()
	phase := func(name string) {
		slog.Debug("backup phase", "done", name, "at", time.Since(start).Round(time.Millisecond))
	}
	snap, err := eng.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	phase("snapshot")
	opts.Engine = eng.Name()
	opts.ServerVersion = snap.ServerVersion()
	if err := bind(ctx, r, snap, &opts); err != nil {
		return nil, err
	}
	b, err := r.NewBackup(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := sampleForDictionary(ctx, b, snap); err != nil {
		return nil, err
	}
	phase("dictionary")
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if err := b.Stream(ctx, SchemaPreStream, repo.KindSchemaPre, &pre, nil); err != nil {
		return nil, err
	}
	if err := b.Stream(ctx, SchemaPostStream, repo.KindSchemaPost, &post, nil); err != nil {
		return nil, err
	}
	if ps, ok := snap.(source.PrivilegeSnapshot); ok {
		var priv bytes.Buffer
		if err := ps.Privileges(ctx, &priv); err != nil {
			return nil, fmt.Errorf("owners and privileges: %w", err)
		}
		if err := b.Stream(ctx, PrivilegesStream, KindPrivileges, &priv, nil); err != nil {
			return nil, err
		}
	}
	var ix indexing
	if cols != nil {
		ix = indexing{key: r.RowIndexKey(), cols: cols(snap.Tables())}
	}
	phase("schema and privileges")
	if err := tables(ctx, b, snap, opts.DeltaMaxSteps, ix); err != nil {
		return nil, err
	}
	phase("tables")
	if ls, ok := snap.(source.LargeObjectSnapshot); ok && ls.LargeObjects() > 0 {
		if err := largeObjects(ctx, b, ls); err != nil {
			return nil, err
		}
		phase("large objects")
	}
	return commit(ctx, b, phase)
}

// ErrSourceChanged: the database a tenant's backup reads is not the one
// the tenant is bound to.
var ErrSourceChanged = errors.New("the tenant's database is not the one it is bound to")

// bind reads the identity of the database the snapshot reads
// (source.Identifier) into opts and refuses it when the tenant is bound
// to another: the identity sealed into the newest snapshot that carries
// one. The first snapshot with an identity binds the tenant. Without a
// binding the check is skipped (files tenants, engines without an
// identity). opts.Rebind accepts a changed identity.
func bind(ctx context.Context, r *repo.Repo, snap source.Snapshot, opts *repo.BackupOptions) error {
	idr, ok := snap.(source.Identifier)
	if !ok {
		return nil
	}
	id, err := idr.Identity(ctx)
	if err != nil {
		return err
	}
	opts.SourceIdentity = id
	// The newest snapshot carries the binding, but for one written before
	// identities were recorded: only then are all of them read.
	var snaps []repo.SnapshotInfo
	if latest, err := r.FindSnapshot(ctx, "latest"); err == nil && latest.Manifest.SourceIdentity != "" {
		snaps = []repo.SnapshotInfo{latest}
	} else if snaps, err = r.Snapshots(ctx); err != nil {
		return fmt.Errorf("reading the tenant's binding: %w", err)
	}
	var bound *repo.SnapshotInfo
	for i := range snaps {
		m := snaps[i].Manifest
		if m.SourceIdentity != "" && (bound == nil || m.Started.After(bound.Manifest.Started)) {
			bound = &snaps[i]
		}
	}
	if bound == nil || bound.Manifest.SourceIdentity == id || opts.Rebind {
		return nil
	}
	return fmt.Errorf("%w: tenant %s is bound to database %s (snapshot %s), this backup reads %s: refused, so that another database cannot take over the tenant's repository and retention; if the practice's database really moved, run `kluis backup --tenant %s --rebind`",
		ErrSourceChanged, r.Tenant(), bound.Manifest.SourceIdentity, bound.ID.Short(), id, r.Tenant())
}

// TableParallel is how many tables stream at once (engines that can, like
// PostgreSQL, read them on as many connections in one snapshot).
const TableParallel = 2

// tables streams every table of the snapshot, TableParallel at a time,
// the largest first when the snapshot knows sizes (source.TableSizer). The
// first failure cancels the others.
func tables(ctx context.Context, b *repo.Backup, snap source.Snapshot, maxSteps int, ix indexing) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan source.Table)
	errs := make(chan error, TableParallel)
	var wg sync.WaitGroup
	for range TableParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				start := time.Now()
				err := table(ctx, b, snap, t, maxSteps, ix)
				slog.Debug("table streamed", "table", t.Name, "took", time.Since(start).Round(time.Millisecond))
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	list := snap.Tables()
	if ts, ok := snap.(source.TableSizer); ok {
		// Largest first: the last table to start should be a short one.
		sort.SliceStable(list, func(i, j int) bool { return ts.TableSize(list[i].Name) > ts.TableSize(list[j].Name) })
	}
feed:
	for _, t := range list {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// indexing is what the row index of each table needs.
type indexing struct {
	key  []byte
	cols map[string][][]string
}

// writer returns the stream writer of table t: with a row index when
// the table is to be indexed.
func (ix indexing) writer(ctx context.Context, b *repo.Backup, t source.Table) *repo.StreamWriter {
	if bl := ix.builder(t); bl != nil {
		return b.IndexedStreamWriter(ctx, TableStream(t.Name), repo.KindTable, bl)
	}
	return b.StreamWriter(ctx, TableStream(t.Name), repo.KindTable)
}

// recordsWriter returns the stream writer of a row delta of table t,
// keyed by key: with a records index (rowindex.NewRecordsBuilder) when
// the table is to be indexed.
func (ix indexing) recordsWriter(ctx context.Context, b *repo.Backup, t source.Table, key rowdelta.Key) *repo.StreamWriter {
	if sets := ix.cols[t.Name]; len(sets) > 0 {
		if bl, err := rowindex.NewRecordsBuilder(ix.key, t, sets, key); err == nil {
			return b.IndexedStreamWriter(ctx, TableStream(t.Name), repo.KindTable, bl)
		}
	}
	return b.StreamWriter(ctx, TableStream(t.Name), repo.KindTable)
}

// builder returns the row index builder of table t, or nil: no index.
func (ix indexing) builder(t source.Table) repo.StreamIndexer {
	sets := ix.cols[t.Name]
	if len(sets) == 0 {
		return nil
	}
	bl, err := rowindex.NewBuilder(ix.key, t, sets)
	if err != nil {
		// The table is stored whole, without an index; a dossier then
		// reads it whole and says so.
		return nil
	}
	return bl
}

func table(ctx context.Context, b *repo.Backup, snap source.Snapshot, t source.Table, maxSteps int, ix indexing) error {
	key, ok := RowKey(t)
	if !ok {
		return plainTable(ctx, b, snap, t, ix)
	}
	if ps := deltaParent(b, t, key, maxSteps); ps != nil {
		done, err := deltaTable(ctx, b, snap, t, key, ps, ix)
		if done || err != nil {
			return err
		}
	}
	return keyedTable(ctx, b, snap, t, key, ix)
}

func plainTable(ctx context.Context, b *repo.Backup, snap source.Snapshot, t source.Table, ix indexing) error {
	sw := ix.writer(ctx, b, t)
	res, err := snap.WriteTable(ctx, t, sw)
	if err != nil {
		sw.CloseWithError(err)
		return fmt.Errorf("table %s: %w", t.Name, err)
	}
	meta, err := json.Marshal(source.TableMeta{Table: t, TableResult: res})
	if err != nil {
		sw.CloseWithError(err)
		return err
	}
	return sw.Close(meta)
}

// largeObjects streams the snapshot's large objects, never holding one in
// memory, with their fingerprint as the stream's meta.
func largeObjects(ctx context.Context, b *repo.Backup, ls source.LargeObjectSnapshot) error {
	sw := b.StreamWriter(ctx, LargeObjectsStream, KindLargeObjects)
	res, err := ls.WriteLargeObjects(ctx, sw)
	if err != nil {
		sw.CloseWithError(err)
		return fmt.Errorf("large objects: %w", err)
	}
	meta, err := json.Marshal(res)
	if err != nil {
		sw.CloseWithError(err)
		return err
	}
	return sw.Close(meta)
}

// Tables returns the table metadata recorded in a manifest, in stream
// order.
func Tables(m *repo.Manifest) ([]source.TableMeta, error) {
	var out []source.TableMeta
	for _, s := range m.Streams {
		if s.Kind != repo.KindTable {
			continue
		}
		var tm source.TableMeta
		if err := json.Unmarshal(s.Meta, &tm); err != nil {
			return nil, fmt.Errorf("stream %s: table metadata: %w", s.Name, err)
		}
		if TableStream(tm.Name) != s.Name {
			return nil, fmt.Errorf("stream %s: metadata names table %q", s.Name, tm.Name)
		}
		out = append(out, tm)
	}
	return out, nil
}
