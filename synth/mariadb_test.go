package synth

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// mariadbClient runs the mariadb command-line client with the arguments in
// KLUIS_TEST_MARIADB_ARGS (e.g. "-h127.0.0.1 -uroot"): synth imports no
// MariaDB driver.
func mariadbClient(t *testing.T) func(stdin []byte, args ...string) string {
	t.Helper()
	base := strings.Fields(os.Getenv("KLUIS_TEST_MARIADB_ARGS"))
	if len(base) == 0 {
		t.Skip("set KLUIS_TEST_MARIADB_ARGS to run, e.g. \"-h127.0.0.1 -uroot\" (needs the mariadb client)")
	}
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		t.Fatalf("KLUIS_TEST_MARIADB_ARGS set but no mariadb client: %v", err)
	}
	return func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(append(base, "--batch", "--skip-column-names"), args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mariadb %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

// TestMariaDBScript loads WriteSQL's script into a fresh MariaDB database
// and compares row counts with SQLite.
func TestMariaDBScript(t *testing.T) {
	mariadb := mariadbClient(t)
	ctx := ctxT(t)
	name := fmt.Sprintf("kluis_synth_%016x", rand.Uint64())
	mariadb(nil, "-e", "CREATE DATABASE "+name)
	t.Cleanup(func() { mariadb(nil, "-e", "DROP DATABASE IF EXISTS "+name) })

	var script bytes.Buffer
	if err := WriteSQL(ctx, &script, MariaDB, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	mariadb(script.Bytes(), name)

	lite := openSQLite(t)
	if err := Generate(ctx, lite, SQLite, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	want := countRows(dump(t, lite, SQLite))
	for _, tb := range TableNames() {
		got := mariadb(nil, name, "-e", "SELECT COUNT(*) FROM "+quoteWith(tb, '`'))
		if got != fmt.Sprint(want[tb]) {
			t.Errorf("%s: %s rows in MariaDB, %d in SQLite", tb, got, want[tb])
		}
	}
	if got := mariadb(nil, name, "-e", "SELECT COUNT(*) FROM audit_log WHERE actor = 'trigger'"); got != fmt.Sprint(want["reports"]) {
		t.Errorf("trigger wrote %s rows for %d reports", got, want["reports"])
	}
	// Text and bytes survive the literals unchanged.
	for _, q := range [][2]string{
		{"SELECT SUM(CHAR_LENGTH(body)) FROM reports", "SELECT SUM(length(body)) FROM reports"},
		{"SELECT SUM(LENGTH(content)) FROM attachments", "SELECT SUM(length(content)) FROM attachments"},
		{"SELECT COUNT(*) FROM reports WHERE INSTR(body, '\\\\N') > 0", `SELECT COUNT(*) FROM reports WHERE instr(body, '\N') > 0`},
	} {
		if got, want := mariadb(nil, name, "-e", q[0]), fmt.Sprint(queryInt(t, lite, q[1])); got != want {
			t.Errorf("%s: %s in MariaDB, %s in SQLite", q[0], got, want)
		}
	}
	max := mariadb(nil, name, "-e", "SELECT MAX(number) FROM invoices")
	if next := mariadb(nil, name, "-e", "SELECT NEXT VALUE FOR invoice_number_seq"); next <= max && len(next) == len(max) {
		t.Errorf("invoice_number_seq at %s, numbers up to %s", next, max)
	}
}
