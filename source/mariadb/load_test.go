package mariadb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/source"
)

// TestDuplicateKeyErrorHidesRowValue: a load that hits a duplicate key
// fails naming the error number, and the duplicate value (row data: here
// a BSN) appears in the error only inside the server's wrapped
// *mysql.MySQLError, which callers that must not show row values
// (restore/restoretest) reduce to its number. LOAD DATA LOCAL skips the
// row with a warning: its text ("Duplicate entry '…'") stays out.
func TestDuplicateKeyErrorHidesRowValue(t *testing.T) {
	forEachLoad(t, testDuplicateKeyErrorHidesRowValue)
}

func testDuplicateKeyErrorHidesRowValue(t *testing.T) {
	const bsn = "987600001"
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	dsn := srv.CreateDB(t, "dupkey")
	mariadbtest.ExecDSN(t, dsn, "DROP DATABASE "+quoteIdent(dbName(t, dsn)))
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	var pre bytes.Buffer
	// The BSN is the primary key: with unique_checks = 0 (targetSQL) a
	// secondary unique index of an empty table is only checked at COMMIT,
	// whose error (1180) names no value.
	writeDDL(&pre, []string{"CREATE TABLE c (bsn CHAR(9) PRIMARY KEY, id BIGINT NOT NULL) ENGINE=InnoDB"})
	if err := tg.ApplySchema(ctx, &pre); err != nil {
		t.Fatal(err)
	}
	tb := source.Table{Name: "c", Table: "c", Encoding: Encoding, Columns: []source.Column{{Name: "bsn", Type: "char(9)"}, {Name: "id", Type: "bigint(20)"}}}
	// The duplicate comes after a full INSERT batch: within the first
	// statement into an empty table it, too, shows only at COMMIT.
	var rows []byte
	for i := int64(1); i <= maxBatchRows+1; i++ {
		b := fmt.Sprintf("9876%05d", i)
		if i > maxBatchRows {
			b = bsn
		}
		rows = source.AppendRow(rows, []source.Value{source.TextValue([]byte(b)), source.IntValue(i)})
	}
	err = tg.LoadTable(ctx, tb, bytes.NewReader(rows))
	if err == nil || !strings.Contains(err.Error(), "1062") {
		t.Fatalf("LoadTable: %v; want an error naming 1062", err)
	}
	msg := err.Error()
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		msg = strings.ReplaceAll(msg, me.Error(), "")
	}
	if strings.Contains(msg, bsn) {
		t.Errorf("the error shows the duplicate value outside the server's error: %v", err)
	}
}
