package dossier

import (
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/source/postgres"
)

// triggerCase is one engine's part of the trigger tests.
type triggerCase struct {
	engine string
	src    string
	// target returns a new database with the schema and a BEFORE INSERT
	// trigger that rewrites visits.at.
	target func(t *testing.T) string
	rows   func(t *testing.T, dsn string) []string
}

const triggerData = `INSERT INTO clients VALUES (1, 'Jansen'), (2, 'Bakker');
INSERT INTO visits VALUES (10, 1, '2020-01-02 03:04:05', 'eerste'), (11, 1, '2020-02-03 04:05:06', 'tweede'), (12, 2, '2020-03-04 05:06:07', 'ander')`

func pgTriggerCase(t *testing.T) triggerCase {
	srv := pgtest.Start(t)
	schema := `CREATE TABLE clients (id int PRIMARY KEY, name text);
CREATE TABLE visits (id int PRIMARY KEY, client_id int NOT NULL REFERENCES clients, at timestamp NOT NULL, note text);`
	src := srv.CreateDB(t, "trig_src")
	pgtest.ExecDSN(t, src, schema+triggerData)
	return triggerCase{
		engine: "postgres", src: src,
		target: func(t *testing.T) string {
			dst := srv.CreateDB(t, "trig_dst")
			pgtest.ExecDSN(t, dst, schema+`
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.at := now(); RETURN NEW; END$$;
CREATE TRIGGER visits_stamp BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION stamp();`)
			return dst
		},
		rows: func(t *testing.T, dsn string) []string {
			return queryLines(t, "pgx", dsn, `SELECT v.id || '|' || v.client_id || '|' || v.at::text || '|' || v.note FROM visits v WHERE client_id = 1 ORDER BY id`)
		},
	}
}

func mariaTriggerCase(t *testing.T) triggerCase {
	srv := mariadbtest.Start(t)
	schema := []string{"CREATE TABLE clients (id int PRIMARY KEY, name varchar(40)) ENGINE=InnoDB",
		"CREATE TABLE visits (id int PRIMARY KEY, client_id int NOT NULL, at datetime NOT NULL, note varchar(40), FOREIGN KEY (client_id) REFERENCES clients (id)) ENGINE=InnoDB"}
	src := srv.CreateDB(t, "trig_src")
	mariadbtest.ExecDSN(t, src, append(schema, strings.Split(triggerData, ";\n")...)...)
	return triggerCase{
		engine: "mariadb", src: src,
		target: func(t *testing.T) string {
			dst := srv.CreateDB(t, "trig_dst")
			mariadbtest.ExecDSN(t, dst, append(schema, "CREATE TRIGGER visits_stamp BEFORE INSERT ON visits FOR EACH ROW SET NEW.at = NOW()")...)
			return dst
		},
		rows: func(t *testing.T, dsn string) []string {
			return queryLines(t, "mysql", dsn, `SELECT CONCAT_WS('|', id, client_id, at, note) FROM visits WHERE client_id = 1 ORDER BY id`)
		},
	}
}

func queryLines(t *testing.T, driver, dsn, q string) []string {
	t.Helper()
	var db *sql.DB
	if driver == "mysql" {
		db = mariadbtest.OpenDSN(t, dsn)
	} else {
		var err error
		if db, err = sql.Open(driver, dsn); err != nil {
			t.Fatal(err)
		}
		defer db.Close()
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestDossierIntoTriggers (issue 16): a dossier restored with --into a
// database whose BEFORE INSERT trigger rewrites a timestamp. Default: rolled
// back, the error names the table, the column and the trigger. --triggers
// disable: the target equals the original row for row. --triggers fire:
// committed, and the differences are listed.
func TestDossierIntoTriggers(t *testing.T) {
	for _, mk := range []func(*testing.T) triggerCase{pgTriggerCase, mariaTriggerCase} {
		tc := mk(t)
		t.Run(tc.engine, func(t *testing.T) {
			ctx := testCtx(t)
			r := newRepo(t, "praktijk-triggers")
			var eng source.Engine
			if tc.engine == "postgres" {
				eng = postgres.New(tc.src, r.FingerprintKey(), postgres.Options{})
			} else {
				eng = mariadb.New(tc.src, r.FingerprintKey(), mariadb.Options{})
			}
			snap, tables := snapshotOf(t, r, eng)
			plan, err := NewPlan(tc.engine, tables, &config.Dossier{Root: "clients", Key: "id"})
			if err != nil {
				t.Fatal(err)
			}
			original := tc.rows(t, tc.src)
			if len(original) != 2 {
				t.Fatalf("original rows %q", original)
			}
			restore := func(dst string, mode TriggerMode) (*IntoResult, error) {
				return RestoreIntoWith(ctx, r, snap.Manifest, plan, "1", dst, IntoOptions{Triggers: mode})
			}

			// Default: rolled back, naming table, column and trigger.
			dst := tc.target(t)
			_, err = restore(dst, "")
			if !errors.Is(err, ErrTriggerChanged) {
				t.Fatalf("default mode: want ErrTriggerChanged, got %v", err)
			}
			for _, want := range []string{"visits", "at", "visits_stamp", "nothing was committed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "Jansen") || strings.Contains(err.Error(), "eerste") {
				t.Errorf("error reveals dossier data: %v", err)
			}
			t.Logf("default: %v", err)
			if got := tc.rows(t, dst); len(got) != 0 {
				t.Errorf("rows committed after a rollback: %q", got)
			}

			// disable: row for row as the original.
			dst = tc.target(t)
			res, err := restore(dst, TriggersDisable)
			if err != nil {
				t.Fatalf("--triggers disable: %v", err)
			}
			if got := tc.rows(t, dst); !reflect.DeepEqual(got, original) {
				t.Errorf("--triggers disable: target %q, original %q", got, original)
			}
			if len(res.Differences) != 0 {
				t.Errorf("--triggers disable: differences %+v", res.Differences)
			}

			// fire: committed, differences listed.
			dst = tc.target(t)
			res, err = restore(dst, TriggersFire)
			if err != nil {
				t.Fatalf("--triggers fire: %v", err)
			}
			if got := tc.rows(t, dst); len(got) != 2 || reflect.DeepEqual(got, original) {
				t.Errorf("--triggers fire: target %q, original %q: the trigger did not fire", got, original)
			}
			if len(res.Differences) != 1 || !strings.HasSuffix(res.Differences[0].Table, "visits") ||
				!reflect.DeepEqual(res.Differences[0].Columns, []string{"at"}) || res.Differences[0].Rows != 2 ||
				!reflect.DeepEqual(res.Differences[0].Triggers, []string{"visits_stamp"}) {
				t.Errorf("--triggers fire: differences %+v", res.Differences)
			}
		})
	}
}
