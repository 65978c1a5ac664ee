package mariadb

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-sql-driver/mysql"

	"github.com/kluis-nl/kluis/source"
)

var _ source.Identifier = (*snapshot)(nil)

// Identity names the database this snapshot reads: the server
// (@@server_uuid where the server has one, as MySQL does; MariaDB has
// none, and is named by @@datadir and @@port, which survive a restart and
// a new host name) and the schema's name, case and all.
func (s *snapshot) Identity(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var schema string
	if err := s.conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		return "", fmt.Errorf("mariadb: reading the database's identity: %w", redactError(err, s.password))
	}
	var uuid string
	err := s.conn.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&uuid)
	var me *mysql.MySQLError
	switch {
	case err == nil && uuid != "":
		return "mysql:" + uuid + "/" + strconv.Quote(schema), nil
	case err != nil && !(errors.As(err, &me) && me.Number == 1193): // ER_UNKNOWN_SYSTEM_VARIABLE
		return "", fmt.Errorf("mariadb: reading the server's identity: %w", redactError(err, s.password))
	}
	var dir string
	var port int
	if err := s.conn.QueryRowContext(ctx, "SELECT @@datadir, @@port").Scan(&dir, &port); err != nil {
		return "", fmt.Errorf("mariadb: reading the server's identity: %w", redactError(err, s.password))
	}
	return "mariadb:" + strconv.Quote(dir) + ":" + strconv.Itoa(port) + "/" + strconv.Quote(schema), nil
}
