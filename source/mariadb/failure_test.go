package mariadb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/source"
)

const secret = "S3cret/pa ss'w\\ord@(x)-4217"

// assertNoSecret fails when err's message holds secret in any spelling a
// DSN could carry it.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), "S3cret", "4217"} {
		if strings.Contains(msg, form) {
			t.Fatalf("error reveals the password (%q): %s", form, msg)
		}
	}
}

func dsnWith(addr, user, password, db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, db
	cfg.Timeout = 2 * time.Second
	return cfg.FormatDSN()
}

func TestUnreachableServerHidesPassword(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.ClosedPort(t, "4217"))
	dsn := dsnWith(addr, "kluis", secret, "tenant")
	if !strings.Contains(dsn, secret) {
		t.Fatalf("test DSN %q does not carry the password verbatim", dsn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := New(dsn, testKey, Options{}).Snapshot(ctx)
	assertNoSecret(t, err)
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("unreachable: %v", err)
	}
	_, err = NewTarget(ctx, dsn, testKey, TargetOptions{})
	assertNoSecret(t, err)
}

func TestInvalidDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"kluis:" + secret + "@tcp(127.0.0.1:3306/tenant", // unterminated address
		"kluis:" + secret + "@tcp(127.0.0.1:3306)/tenant?parseTime=maybe",
		"kluis:" + url.QueryEscape(secret) + "@bogus(127.0.0.1)tenant",
	} {
		_, err := New(dsn, testKey, Options{}).Snapshot(context.Background())
		assertNoSecret(t, err)
		if !errors.Is(err, errInvalidDSN) {
			t.Errorf("%v", err)
		}
		_, err = NewTarget(context.Background(), dsn, testKey, TargetOptions{})
		assertNoSecret(t, err)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := mariadbtest.Start(t)
	if !srv.PasswordAuth {
		testenv.SkipOrFail(t, "the test server does not check passwords (fallback server without one)")
	}
	dsn := mariadbtest.WithPassword(srv.CreateDB(t, "wrongpw"), secret)
	ctx := testCtx(t)
	_, err := New(dsn, testKey, Options{}).Snapshot(ctx)
	assertNoSecret(t, err)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Errorf("wrong password: %v", err)
	}
	_, err = NewTarget(ctx, dsn, testKey, TargetOptions{})
	assertNoSecret(t, err)
}

func TestRedactError(t *testing.T) {
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		err := redactError(fmt.Errorf("wrapped: %w", errors.New("dsn kluis:"+form+"@tcp(x)/y")), secret)
		assertNoSecret(t, err)
	}
	base := context.Canceled
	if err := redactError(fmt.Errorf("%s: %w", secret, base), secret); !errors.Is(err, base) {
		t.Errorf("redacted error does not unwrap: %v", err)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	for _, c := range []struct {
		name, ddl string
		want      error
	}{
		{"myisam", "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM", ErrNonTransactional},
		{"versioned", "CREATE TABLE v (id INT PRIMARY KEY) ENGINE=InnoDB WITH SYSTEM VERSIONING", ErrUnsupported},
	} {
		dsn := srv.CreateDB(t, c.name)
		mariadbtest.ExecDSN(t, dsn, "CREATE TABLE ok (id INT PRIMARY KEY) ENGINE=InnoDB", c.ddl)
		_, err := New(dsn, testKey, Options{}).Snapshot(ctx)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want == ErrNonTransactional {
			snap, err := New(dsn, testKey, Options{AllowNonTransactional: true}).Snapshot(ctx)
			if err != nil {
				t.Fatalf("%s allowed: %v", c.name, err)
			}
			if n := len(snap.Tables()); n != 2 {
				t.Errorf("%s allowed: %d tables", c.name, n)
			}
			snap.Close()
		}
	}
	_, err := New(dsnWith(srv.Addr(), srv.User, srv.Password, ""), testKey, Options{}).Snapshot(ctx)
	if err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Errorf("DSN without a database: %v", err)
	}
}

// TestTargetRefusesNonEmpty checks that a restore never lands in a database
// that holds something, unless forced, and never drops a system database.
func TestTargetRefusesNonEmpty(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	dsn := srv.CreateDB(t, "occupied")
	mariadbtest.ExecDSN(t, dsn, "CREATE TABLE keep (id INT PRIMARY KEY)", "INSERT INTO keep VALUES (1)")
	if _, err := NewTarget(ctx, dsn, testKey, TargetOptions{}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("non-empty target: %v", err)
	}
	var n int
	if err := mariadbtest.OpenDSN(t, dsn).QueryRow("SELECT COUNT(*) FROM keep").Scan(&n); err != nil || n != 1 {
		t.Fatalf("refused target was touched: %d rows, %v", n, err)
	}
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	var tables int
	if err := mariadbtest.OpenDSN(t, dsn).QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("forced target holds %d tables (%v)", tables, err)
	}
	// An empty existing database is used as it is.
	tg, err = NewTarget(ctx, dsn, testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	if srv.Throwaway {
		_, err := NewTarget(ctx, dsnWith(srv.Addr(), srv.User, srv.Password, "mysql"), testKey, TargetOptions{Force: true})
		if err == nil || !strings.Contains(err.Error(), "system database") {
			t.Errorf("forced restore into mysql: %v", err)
		}
	}
}

// TestFailedLoadRollsBack feeds a stream that breaks after several batches:
// the table stays empty and the error names the row.
func TestFailedLoadRollsBack(t *testing.T) {
	forEachLoad(t, testFailedLoadRollsBack)
}

func testFailedLoadRollsBack(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	dsn := srv.CreateDB(t, "rollback")
	mariadbtest.ExecDSN(t, dsn, "DROP DATABASE "+quoteIdent(dbName(t, dsn)))
	tg, err := NewTarget(ctx, dsn, testKey, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	var pre bytes.Buffer
	writeDDL(&pre, []string{"CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB"})
	if err := tg.ApplySchema(ctx, &pre); err != nil {
		t.Fatal(err)
	}
	tb := source.Table{Name: "t", Table: "t", Encoding: Encoding, Columns: []source.Column{{Name: "id", Type: "bigint(20)"}, {Name: "v", Type: "text", Nullable: true}}}
	var rows bytes.Buffer
	for i := 1; i <= 2500; i++ {
		rows.Write(source.AppendRow(nil, []source.Value{source.IntValue(int64(i)), source.TextValue([]byte("x"))}))
	}
	for tail, want := range map[string]string{"i1\tty\n": "1062", "i99999\tq\n": "row 2501"} {
		stream := append(append([]byte(nil), rows.Bytes()...), tail...)
		err := tg.LoadTable(ctx, tb, bytes.NewReader(stream))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tail %q: %v, want an error mentioning %q", tail, err, want)
		}
		var n int
		if err := mariadbtest.OpenDSN(t, dsn).QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 0 {
			t.Errorf("tail %q: %d rows after a failed load (%v)", tail, n, err)
		}
	}
	bad := tb
	bad.Encoding = "pg-copy-text"
	if err := tg.LoadTable(ctx, bad, bytes.NewReader(nil)); err == nil {
		t.Error("a stream of another encoding was accepted")
	}
	// A bad schema statement names its number.
	var ddl bytes.Buffer
	writeDDL(&ddl, []string{"CREATE TABLE u (id INT)", "CREATE TABLE kapot ("})
	if err := tg.ApplySchema(ctx, &ddl); err == nil || !strings.Contains(err.Error(), "statement 2") {
		t.Errorf("bad schema: %v", err)
	}
}
