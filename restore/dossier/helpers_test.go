package dossier

import (
	"context"
	"database/sql"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/synth"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newRepo(t testing.TB, tenant string) *repo.Repo {
	t.Helper()
	return newRepoPacks(t, tenant, 4<<20)
}

func newRepoPacks(t testing.TB, tenant string, packSize int64) *repo.Repo {
	t.Helper()
	mk, err := repo.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	locs := []repo.Location{local.New("amsterdam", t.TempDir()), local.New("groningen", t.TempDir())}
	r, _, err := repo.Init(testCtx(t), tenant, locs, repo.Options{Master: mk, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// snapshotOf backs up eng and returns the snapshot and its tables.
func snapshotOf(t testing.TB, r *repo.Repo, eng source.Engine) (repo.SnapshotInfo, []source.TableMeta) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := backup.Database(ctx, r, eng, repo.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := backup.Tables(snap.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return snap, tables
}

// practiceProfile is the synthetic practice's dossier profile: declared
// foreign keys only; audit_log has none and so is never a member.
func practiceProfile() *config.Dossier {
	return &config.Dossier{Root: "clients", Key: "id"}
}

// collector is a Sink keeping every row as a kluis-row-v1 line per table
// (the PostgreSQL COPY fields become text values).
type collector struct {
	rows map[string][]string
}

func (c *collector) BeginTable(context.Context, source.TableMeta) error { return nil }
func (c *collector) EndTable(context.Context, source.TableMeta, int64) error {
	return nil
}
func (c *collector) Row(_ context.Context, t source.TableMeta, row []source.Value) error {
	if c.rows == nil {
		c.rows = map[string][]string{}
	}
	c.rows[t.Name] = append(c.rows[t.Name], string(source.AppendRow(nil, row)))
	return nil
}

func (c *collector) sorted() map[string][]string {
	for _, v := range c.rows {
		sort.Strings(v)
	}
	return c.rows
}

// sqliteRows runs a SELECT of all columns of table on db and returns each
// row as a kluis-row-v1 line, sorted. Columns are wrapped in an expression
// so the driver does not turn DATE text into time.Time.
func sqliteRows(t testing.TB, db *sql.DB, tm source.TableMeta, where string, args ...any) []string {
	t.Helper()
	var cols []string
	for _, c := range tm.Columns {
		q, _ := quoteIdent(c.Name)
		cols = append(cols, "CASE WHEN 1 THEN "+q+" END")
	}
	tn, _ := quoteIdent(tm.Name)
	rows, err := db.Query("SELECT "+strings.Join(cols, ", ")+" FROM "+tn+" WHERE "+where, args...)
	if err != nil {
		t.Fatalf("%s: %v", tm.Name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]source.Value, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				row[i] = source.NullValue()
			case int64:
				row[i] = source.IntValue(x)
			case float64:
				row[i] = source.FloatValue(x)
			case string:
				row[i] = source.TextValue([]byte(x))
			case []byte:
				row[i] = source.BlobValue(x)
			default:
				t.Fatalf("%s: unexpected %T", tm.Name, v)
			}
		}
		out = append(out, string(source.AppendRow(nil, row)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// handWritten is what a person would write to select client id's dossier
// from the synthetic practice schema, per table.
func handWritten(table string) string {
	switch table {
	case "clients":
		return `"id" = ?1`
	case "treatments", "appointments", "invoices", "attachments":
		return `"client_id" = ?1`
	case "reports":
		return `"client_id" = ?1 OR "treatment_id" IN (SELECT "id" FROM "treatments" WHERE "client_id" = ?1)`
	case "measurements":
		return `"client_id" = ?1`
	case "invoice_lines":
		return `"invoice_id" IN (SELECT "id" FROM "invoices" WHERE "client_id" = ?1)`
	case synth.HostileTable:
		return `"Cliënt ID" = ?1`
	}
	return ""
}

func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	db := openSQLite(t, src)
	if _, err := db.Exec("VACUUM INTO ?", dst); err != nil {
		t.Fatal(err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// quoteList quotes and comma-joins SQLite or PostgreSQL identifiers.
func quoteList(cols []string) (string, error) {
	return dialect{engine: "postgres"}.identList(cols)
}
