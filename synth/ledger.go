package synth

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
)

// LedgerTable is the table CreateLedger makes: (id, balance).
const LedgerTable = "ledger"

// LedgerOpeningBalance is every account's balance after CreateLedger.
const LedgerOpeningBalance = 1000

// Ledger is a table of account balances whose total Transfer keeps
// constant: a snapshot taken while transfers run is consistent exactly when
// its total is Accounts × LedgerOpeningBalance.
type Ledger struct {
	Dialect  Dialect
	Accounts int
	d        dialect
}

// CreateLedger creates LedgerTable in db with accounts accounts (ids
// 1..accounts), each holding LedgerOpeningBalance.
func CreateLedger(ctx context.Context, db *sql.DB, d Dialect, accounts int) (*Ledger, error) {
	di, err := d.impl()
	if err != nil {
		return nil, err
	}
	if accounts < 2 {
		return nil, fmt.Errorf("synth: a ledger needs at least 2 accounts, not %d", accounts)
	}
	q := di.quote
	create := "CREATE TABLE " + q(LedgerTable) + " (" + q("id") + " BIGINT NOT NULL PRIMARY KEY, " + q("balance") + " BIGINT NOT NULL)"
	if d == MariaDB {
		create += mariadbTableOptions
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("synth: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("synth: create ledger: %w", err)
	}
	for first := 1; first <= accounts; first += maxRowsPerInsert {
		n := min(maxRowsPerInsert, accounts-first+1)
		query := "INSERT INTO " + q(LedgerTable) + " (" + q("id") + ", " + q("balance") + ") VALUES "
		args := make([]any, 0, 2*n)
		for i := range n {
			if i > 0 {
				query += ", "
			}
			query += "(" + di.param(2*i+1) + ", " + di.param(2*i+2) + ")"
			args = append(args, int64(first+i), int64(LedgerOpeningBalance))
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return nil, fmt.Errorf("synth: fill ledger: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("synth: commit: %w", err)
	}
	return &Ledger{Dialect: d, Accounts: accounts, d: di}, nil
}

// ExpectedTotal is the sum of all balances at any committed moment.
func (l *Ledger) ExpectedTotal() int64 { return int64(l.Accounts) * LedgerOpeningBalance }

// Transfer moves a random amount (1–100) between two random accounts in one
// transaction, locking the lower id first so concurrent transfers cannot
// deadlock on PostgreSQL or MariaDB. rng is not safe for concurrent use:
// give each writer its own. On SQLite, concurrent writers need a busy
// timeout (and preferably _txlock=immediate) or get SQLITE_BUSY.
func (l *Ledger) Transfer(ctx context.Context, db *sql.DB, rng *rand.Rand) error {
	from := 1 + rng.Int64N(int64(l.Accounts))
	to := 1 + rng.Int64N(int64(l.Accounts)-1)
	if to >= from {
		to++
	}
	amount := 1 + rng.Int64N(100)
	first, second := struct{ id, delta int64 }{from, -amount}, struct{ id, delta int64 }{to, amount}
	if to < from {
		first, second = second, first
	}
	q, p := l.d.quote, l.d.param
	update := "UPDATE " + q(LedgerTable) + " SET " + q("balance") + " = " + q("balance") + " + " + p(1) + " WHERE " + q("id") + " = " + p(2)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("synth: transfer: %w", err)
	}
	defer tx.Rollback()
	for _, leg := range []struct{ id, delta int64 }{first, second} {
		if _, err := tx.ExecContext(ctx, update, leg.delta, leg.id); err != nil {
			return fmt.Errorf("synth: transfer: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("synth: transfer: %w", err)
	}
	return nil
}

// Querier is what *sql.DB, *sql.Conn and *sql.Tx offer; LedgerTotal takes
// one so that it can run inside a snapshot's transaction.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// LedgerTotal sums the balances in LedgerTable. The table name needs no
// quoting in any dialect.
func LedgerTotal(ctx context.Context, db Querier) (int64, error) {
	var total sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT SUM(balance) FROM "+LedgerTable).Scan(&total); err != nil {
		return 0, fmt.Errorf("synth: ledger total: %w", err)
	}
	return total.Int64, nil
}
