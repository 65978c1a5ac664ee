package source

import "context"

// Identifier is implemented by a Snapshot that can name the database it
// reads, whatever address or DSN reaches it: PostgreSQL's cluster system
// identifier, database OID and name; MariaDB's server and schema name. A
// tenant is bound to that identity at its first backup, and a backup from
// another database under the same tenant id is refused (backup.Database).
type Identifier interface {
	// Identity returns the identity, a short string without secrets
	// ("postgres:<system id>/<database oid>/<name>").
	Identity(ctx context.Context) (string, error)
}
