// Package synth generates deterministic synthetic Dutch care-practice
// databases and a 'working day' of changes, for tests, benchmarks and the
// demo. It contains no real personal data.
//
// Vocabulary:
//
//   - A Dialect is a database engine's flavour of SQL: SQLite, Postgres or
//     MariaDB. Every dialect gets the same logical tables and the same rows;
//     only types, quoting and engine-specific extras differ (see Tables and
//     DDL).
//   - A Scale sizes a database. Clients drives every other row count: per
//     client about 3 treatments, 10 appointments, 5 reports (200–4000 bytes
//     of free text), 20 measurements, 4 invoices of about 3 lines, 0.3
//     attachments (1–6 KiB of binary content), 0.25 notes and a handful of
//     audit_log rows. BytesPerClient converts a Scale into an approximate
//     plain-dump size and back (ScaleForBytes).
//   - A dossier is one client's rows across all tables. Each dossier is drawn
//     from its own random stream, derived from the seed and the client id
//     (math/rand/v2 PCG), so a database is fully determined by seed and Scale;
//     nothing reads the clock. History lies before BaseDate.
//   - A working day (WorkingDay) is one day's changes on top of a generated
//     database: new clients with intake rows, new appointments, reports,
//     measurements and invoices for existing clients, about 1% of reports,
//     appointments and measurements updated at scattered ids, and a few
//     cancelled appointments deleted. It runs in one transaction and is
//     determined by the seed, the day and the database's state.
//   - A Ledger is a separate small table of balances whose total stays
//     constant under Transfer; concurrent-writer tests use it to check that a
//     snapshot is consistent.
//
// Engine-specific features worth backing up, by dialect:
//
//   - PostgreSQL: measurements is PARTITIONED BY RANGE (taken_at) into one
//     partition per year 2023–2026 plus a default partition (its primary key
//     is therefore (id, taken_at)); ids are identity columns except
//     measurements.id, a bigserial; invoices.number defaults to
//     nextval('invoice_number_seq'); appointments.at is a timestamptz; the
//     trigger is a PL/pgSQL function.
//   - SQLite: invoice_lines is a WITHOUT ROWID table; invoices.id is
//     AUTOINCREMENT (so sqlite_sequence exists); dates and times are text.
//   - MariaDB: AUTO_INCREMENT ids, a SEQUENCE for invoices.number, utf8mb4.
//     This package imports no MariaDB driver: Generate and WorkingDay work
//     with any database/sql driver, and WriteSQL produces a script for the
//     mariadb command-line client.
//
// Every dialect has the view open_invoices, the trigger reports_audit (every
// report inserted appends a row to audit_log, which has no primary key) and
// the table HostileTable, whose table and column names need quoting.
//
// BSNs are valid under the eleven-test but drawn from a scrambled sequence;
// any coincidence with an issued number is accidental, and no other column
// relates to a real person. E-mail addresses use example.org.
package synth
