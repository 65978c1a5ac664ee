package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/kluis-nl/kluis/source"
)

var _ source.Identifier = (*snapshot)(nil)

// Identity names the database this snapshot reads: the cluster's
// system_identifier (pg_control_system, executable by every role), the
// database's OID and its name. A database dropped and created again under
// the same name, or one on another cluster, has another identity.
func (s *snapshot) Identity(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sysid int64
	var oid uint32
	var name string
	err := s.conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system()), d.oid, d.datname
FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`).Scan(&sysid, &oid, &name)
	if err != nil {
		return "", fmt.Errorf("postgres: reading the database's identity: %w", redactError(err, s.password))
	}
	return "postgres:" + strconv.FormatUint(uint64(sysid), 10) + "/" + strconv.FormatUint(uint64(oid), 10) + "/" + strconv.Quote(name), nil
}
