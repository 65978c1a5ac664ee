package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/synth"
)

// hostileName is a table name a tenant controls: it clears the screen,
// sets the terminal title and overrides the text direction.
const hostileName = "notes\x1b[2J\x1b]0;pwned\x07\u202e"

// TestControlCharactersEscaped (issue 15 §4): tenant-controlled names
// reach no terminal unescaped: dossier show, restore-test and evidence
// show print them escaped (\x1b…), JSON keeps them exact.
func TestControlCharactersEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(erasureConfig, `sql: "SELECT count(*) FROM clients WHERE id = 3", max: 0`, `sql: "SELECT count(*) FROM clients", min: 1`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := synth.GenerateSQLiteFile(ctx, e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", e.path("praktijk.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE "` + hostileName + `" (id INTEGER PRIMARY KEY, client_id INTEGER REFERENCES clients(id), body TEXT)`,
		`INSERT INTO "` + hostileName + `" (client_id, body) VALUES (3, 'x')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")

	outs := []result{
		e.mustRun(0, "dossier", "show", "--tenant", "praktijk-s", "--id", "3"),
		e.mustRun(0, "restore-test", "--tenant", "praktijk-s"),
		e.mustRun(0, "evidence", "show", "1"),
	}
	for _, r := range outs {
		if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\u202e") {
			t.Errorf("a control character reached the terminal: %q", r.stdout)
		}
	}
	if !strings.Contains(outs[0].stdout, `notes\x1b[2J\x1b]0;pwned\a\u202e`) && !strings.Contains(outs[0].stdout, `notes\x1b[2J\x1b]0;pwned\x07\u202e`) {
		t.Errorf("dossier show does not name the table recognisably: %s", outs[0].stdout)
	}
	if !strings.Contains(outs[2].stdout, `notes\x1b[2J`) {
		t.Errorf("evidence show does not list the table: %s", outs[2].stdout)
	}
	// JSON output keeps the exact name (encoding/json escapes it).
	var show struct {
		Tables []struct {
			Table string `json:"table"`
		} `json:"tables"`
	}
	e.mustJSON(0, &show, "dossier", "show", "--tenant", "praktijk-s", "--id", "3")
	found := false
	for _, tb := range show.Tables {
		found = found || tb.Table == hostileName
	}
	if !found {
		t.Errorf("dossier show --json lost the exact name: %+v", show)
	}
}

// TestErrorsEscaped: an error that quotes a tenant's name is printed
// escaped; its exit code is kept.
func TestErrorsEscaped(t *testing.T) {
	var buf bytes.Buffer
	g := &globals{stdout: &buf, stderr: &buf}
	code := g.exit(usageErrorf("table %s: %v", hostileName, errors.New("load failed\nsecond line")))
	if code != exitUsage || strings.ContainsAny(buf.String(), "\x1b\x07\u202e") || !strings.Contains(buf.String(), "load failed\nsecond line") {
		t.Errorf("exit %d printed %q", code, buf.String())
	}
}
