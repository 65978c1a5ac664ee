package mariadb

import (
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
)

// TestCreationContextRestored (issue 16): a routine, a trigger and a view
// created under utf8mb3 with a non-default collation and sql_mode, each
// with a non-ASCII literal, come back with their own creation context:
// mariadb-dump --routines --triggers --no-data of original and restore is
// identical (the SET character_set_client / collation_connection /
// sql_mode lines included), and the routine returns the same value.
func TestCreationContextRestored(t *testing.T) {
	srv := mariadbtest.Start(t)
	src := srv.CreateDB(t, "context")
	mariadbtest.ExecDSN(t, src,
		"SET NAMES utf8mb3 COLLATE utf8mb3_unicode_ci",
		"SET SESSION sql_mode = 'PIPES_AS_CONCAT,NO_AUTO_VALUE_ON_ZERO'",
		"CREATE TABLE bezoek (id int PRIMARY KEY, naam varchar(50), notitie varchar(80)) DEFAULT CHARSET=utf8mb4",
		"CREATE FUNCTION groet(n varchar(20)) RETURNS varchar(80) DETERMINISTIC RETURN 'Dag ' || n || ', café Zoë'",
		"CREATE TRIGGER bezoek_bi BEFORE INSERT ON bezoek FOR EACH ROW SET NEW.notitie = NEW.naam || ' — gezien'",
		"CREATE VIEW namen AS SELECT id, naam || ' (cliënt)' AS label FROM bezoek",
		"INSERT INTO bezoek (id, naam) VALUES (1, 'Jansen')",
	)
	b := takeBackup(t, src)
	dst := srv.CreateDB(t, "context_restored")
	mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+q(dbName(t, dst)))
	restoreInto(t, b, dst)

	want, got := schemaDump(t, srv, src), schemaDump(t, srv, dst)
	if want != got {
		t.Errorf("mariadb-dump --routines --triggers --no-data differs:\n--- original\n%s\n--- restored\n%s", want, got)
	}
	if !strings.Contains(want, "utf8mb3_unicode_ci") || !strings.Contains(want, "PIPES_AS_CONCAT") {
		t.Fatalf("the original's dump does not show the creation context; the test proves nothing:\n%s", want)
	}
	value := func(dsn string) (fn, view, trig string) {
		db := mariadbtest.OpenDSN(t, dsn)
		if err := db.QueryRow("SELECT groet('Élodie')").Scan(&fn); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT label FROM namen WHERE id = 1").Scan(&view); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO bezoek (id, naam) VALUES (2, 'Bakker')"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT notitie FROM bezoek WHERE id = 2").Scan(&trig); err != nil {
			t.Fatal(err)
		}
		return
	}
	f1, v1, t1 := value(src)
	f2, v2, t2 := value(dst)
	if f1 != f2 || v1 != v2 || t1 != t2 || f1 != "Dag Élodie, café Zoë" {
		t.Errorf("original %q %q %q, restored %q %q %q", f1, v1, t1, f2, v2, t2)
	}
}
