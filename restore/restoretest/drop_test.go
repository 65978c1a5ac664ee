package restoretest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestPGDropEndsSessions: a scratch database with a session still
// connected is dropped both with DROP DATABASE … WITH (FORCE) (PostgreSQL
// 13+) and the way taken on older servers (sessions ended with
// pg_terminate_backend, then DROP), and dropping it again passes.
func TestPGDropEndsSessions(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := srv.DSN("postgres")
	defer func(f func(int) bool) { pgForceDrop = f }(pgForceDrop)
	for _, force := range []bool{true, false} {
		name := map[bool]string{true: "with FORCE", false: "terminating sessions"}[force]
		t.Run(name, func(t *testing.T) {
			pgForceDrop = func(int) bool { return force }
			entry, err := ledgerWrite(t.TempDir(), ledgerEntry{Name: ScratchName("drop-test", time.Now()), Appliance: "t", Token: newToken()})
			if err != nil {
				t.Fatal(err)
			}
			entry.entry.Owner = entry.entry.Name
			sc, err := newPGScratch(ctx, server, entry)
			if err != nil {
				t.Fatal(err)
			}
			held := pgtest.ConnectDSN(t, sc.dsn)
			if _, err := held.Exec(ctx, "BEGIN; CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			if err := sc.Drop(ctx); err != nil {
				t.Fatalf("Drop: %v", err)
			}
			if err := held.Ping(ctx); err == nil {
				t.Error("the session on the dropped database still answers")
			}
			if err := sc.Drop(ctx); err != nil {
				t.Errorf("dropping a dropped database: %v", err)
			}
		})
	}
}

// TestDescribeHidesInfrastructure: the errors of connections that fail —
// refused, closed by the server, a rejected password, on PostgreSQL and
// MariaDB — lose the host, port, role and database they name before they
// can reach a report.
func TestDescribeHidesInfrastructure(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closing := ln.Addr().(*net.TCPAddr).Port
	go func() { // accepts and closes: "closed by the server"
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer ln.Close()
	refused := func() int {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	const role, db = "kluis_restore_test_role", "kluis_infra_db"
	pgDSN := func(host string, port int, password string) string {
		return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5", host, port, role, password, db)
	}
	cases := map[string]func() error{
		"pg refused": func() error { _, err := pgConnect(ctx, pgDSN("127.0.0.1", refused, "x")); return err },
		"pg closed":  func() error { _, err := pgConnect(ctx, pgDSN("127.0.0.1", closing, "x")); return err },
		"pg password": func() error {
			_, err := pgConnect(ctx, pgDSN(srv.Host, srv.Port, "wrong-password"))
			return err
		},
		"mariadb refused": func() error {
			cfg, _ := mariadbServerConfig(fmt.Sprintf("%s:pw@tcp(127.0.0.1:%d)/%s", role, refused, db))
			s := &mariadbScratch{server: cfg}
			d, err := s.open(cfg)
			if err != nil {
				return err
			}
			defer d.Close()
			return d.PingContext(ctx)
		},
	}
	for name, f := range cases {
		err := f()
		if err == nil {
			t.Fatalf("%s: connected", name)
		}
		got := describe(fmt.Errorf("creating scratch database x: %w", err))
		for _, leak := range []string{"127.0.0.1", strconv.Itoa(refused), strconv.Itoa(closing), strconv.Itoa(srv.Port), role, db, srv.Host} {
			if strings.Contains(got, leak) {
				t.Errorf("%s: %q shows %q", name, got, leak)
			}
		}
		if !strings.Contains(got, "could not connect to the server: ") {
			t.Errorf("%s: %q", name, got)
		}
		t.Logf("%s: %s", name, got)
	}
}
