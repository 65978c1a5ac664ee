package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/source"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

var testKey = []byte("kluis mariadb test fingerprint key")

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// backupData is everything a snapshot produced, held in memory.
type backupData struct {
	version   string
	tables    []source.Table
	results   map[string]source.TableResult
	streams   map[string][]byte
	pre, post []byte
}

// takeBackup snapshots dsn and streams every table.
func takeBackup(t testing.TB, dsn string) *backupData {
	t.Helper()
	ctx := testCtx(t)
	snap, err := New(dsn, testKey, Options{}).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	b := &backupData{version: snap.ServerVersion(), tables: snap.Tables(), results: map[string]source.TableResult{}, streams: map[string][]byte{}}
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatal(err)
	}
	b.pre, b.post = pre.Bytes(), post.Bytes()
	for _, tb := range b.tables {
		var buf bytes.Buffer
		res, err := snap.WriteTable(ctx, tb, &buf)
		if err != nil {
			t.Fatal(err)
		}
		b.results[tb.Name], b.streams[tb.Name] = res, buf.Bytes()
	}
	return b
}

// restoreInto restores b into the database of dsn, loading tables
// concurrently, and checks every fingerprint.
func restoreInto(t testing.TB, b *backupData, dsn string) {
	t.Helper()
	ctx := testCtx(t)
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if err := tg.ApplySchema(ctx, bytes.NewReader(b.pre)); err != nil {
		t.Fatalf("pre: %v\n%s", err, b.pre)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(b.tables))
	for i, tb := range b.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tg.LoadTable(ctx, tb, bytes.NewReader(b.streams[tb.Name]))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.ApplySchema(ctx, bytes.NewReader(b.post)); err != nil {
		t.Fatalf("post: %v\n%s", err, b.post)
	}
	for _, tb := range b.tables {
		got, err := tg.Fingerprint(ctx, tb)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.results[tb.Name]; got != want {
			t.Errorf("table %s: restored %+v, backed up %+v", tb.Name, got, want)
		}
	}
}

func dbName(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

var (
	autoIncrementRE = regexp.MustCompile(` AUTO_INCREMENT=\d+`)
	definerRE       = regexp.MustCompile("DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`")
)

// schemaDump is `mariadb-dump --no-data --skip-dump-date` of a database
// with routines, without comment lines, AUTO_INCREMENT values, definers and
// the database's own name.
func schemaDump(t testing.TB, srv *mariadbtest.Server, dsn string) string {
	t.Helper()
	db := dbName(t, dsn)
	args, env := srv.ClientArgs()
	args = append(args, "--no-data", "--skip-dump-date", "--routines", "--triggers", "--skip-comments", "--default-character-set=utf8mb4", db)
	cmd := exec.Command(srv.Tool(t, "mariadb-dump"), args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mariadb-dump: %v: %s", err, stderr.String())
	}
	s := string(out)
	s = strings.ReplaceAll(s, mariadbtest.QuoteIdent(db)+".", "")
	s = autoIncrementRE.ReplaceAllString(s, "")
	s = definerRE.ReplaceAllString(s, "DEFINER=x")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "--") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// tableRows returns every row of table as the text protocol prints it
// (hex for every value), sorted.
func tableRows(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + quoteIdent(table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range raw {
			if v == nil {
				b.WriteString("NULL|")
			} else {
				fmt.Fprintf(&b, "%x|", []byte(v))
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// autoIncrements returns the AUTO_INCREMENT counter of every table that has
// one.
func autoIncrements(t testing.TB, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var v int64
		if err := rows.Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		out[n] = v
	}
	return out
}
