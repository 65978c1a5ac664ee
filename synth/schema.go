package synth

import (
	"slices"
	"strconv"
)

// Names of schema objects other packages' tests may assert.
const (
	// HostileTable is a table name that needs quoting in every dialect:
	// capitals, spaces, double quotes and a semicolon.
	HostileTable = `Notities van de "praktijk"; 2024`
	// HostileClientColumn is HostileTable's reference to clients.id: a
	// capital, a space and a non-ASCII letter.
	HostileClientColumn = "Cliënt ID"
	// HostileKeywordColumn is a column of HostileTable named after a
	// reserved word.
	HostileKeywordColumn = "select"
	// HostileTabColumn is a column of HostileTable with a tab in its name.
	HostileTabColumn = "Tab\tKolom"
	// ViewOpenInvoices lists unpaid invoices with the client's name.
	ViewOpenInvoices = "open_invoices"
	// TriggerReportsAudit appends a row to audit_log for every report
	// inserted. (PostgreSQL: it calls the function FunctionReportsAudit.)
	TriggerReportsAudit = "reports_audit"
	// FunctionReportsAudit is the PostgreSQL trigger function.
	FunctionReportsAudit = "reports_audit_row"
	// SequenceInvoiceNumber numbers invoices (PostgreSQL and MariaDB; SQLite
	// has no sequences).
	SequenceInvoiceNumber = "invoice_number_seq"
	// firstInvoiceNumber is the number of invoice 1.
	firstInvoiceNumber = 100001
)

// ForeignKey is a declared reference from Columns of a table to RefColumns of
// RefTable.
type ForeignKey struct {
	Columns    []string
	RefTable   string
	RefColumns []string
}

// Table describes one generated table as a dialect declares it.
type Table struct {
	Name    string
	Columns []string
	// PrimaryKey is empty for audit_log, a table in physical order.
	PrimaryKey  []string
	ForeignKeys []ForeignKey
	// Partitions names the partitions of a partitioned table (PostgreSQL
	// measurements: one per year and a default).
	Partitions []string
}

type colKind int

const (
	kindID      colKind = iota // surrogate key, filled from a sequence where the engine has one
	kindRef                    // 64-bit reference to an id
	kindInt                    // 32-bit integer
	kindVarchar                // bounded text, size runes
	kindChar                   // fixed-width text, size runes
	kindText                   // unbounded text
	kindDate                   // date
	kindStamp                  // stamp
	kindStampTZ                // stampTZ
	kindMoney                  // money
	kindFloat                  // float64
	kindBool                   // bool
	kindBlob                   // []byte
)

type column struct {
	name   string
	kind   colKind
	size   int
	null   bool
	unique bool
	seq    string // default: next value of this sequence, where supported
}

type tableDef struct {
	name    string
	cols    []column
	pk      []string
	fks     []ForeignKey
	indexes [][]string
	// partitionYears: PostgreSQL range-partitions the table on column
	// partitionBy, one partition per year, plus a default partition.
	partitionBy    string
	partitionYears []int
	autoincrement  bool // SQLite: id is INTEGER PRIMARY KEY AUTOINCREMENT
	withoutRowid   bool // SQLite: WITHOUT ROWID
}

// Table indexes into schemaTables, in load order (parents first).
const (
	tAddresses = iota
	tStaff
	tClients
	tTreatments
	tAppointments
	tReports
	tMeasurements
	tInvoices
	tInvoiceLines
	tAttachments
	tNotes
	tAuditLog
	numTables
)

func fk(col, ref string) ForeignKey {
	return ForeignKey{Columns: []string{col}, RefTable: ref, RefColumns: []string{"id"}}
}

var idCol = column{name: "id", kind: kindID}

var schemaTables = [numTables]*tableDef{
	tAddresses: {
		name: "addresses",
		cols: []column{idCol,
			{name: "street", kind: kindVarchar, size: 100},
			{name: "house_number", kind: kindInt},
			{name: "house_suffix", kind: kindVarchar, size: 10, null: true},
			{name: "postcode", kind: kindChar, size: 7},
			{name: "city", kind: kindVarchar, size: 60},
		},
		pk: []string{"id"},
	},
	tStaff: {
		name: "staff",
		cols: []column{idCol,
			{name: "name", kind: kindVarchar, size: 100},
			{name: "role", kind: kindVarchar, size: 40},
		},
		pk: []string{"id"},
	},
	tClients: {
		name: "clients",
		cols: []column{idCol,
			{name: "bsn", kind: kindChar, size: 9, unique: true},
			{name: "first_name", kind: kindVarchar, size: 100},
			{name: "last_name", kind: kindVarchar, size: 100},
			{name: "birth_date", kind: kindDate},
			{name: "email", kind: kindVarchar, size: 200, null: true},
			{name: "address_id", kind: kindRef},
			{name: "active", kind: kindBool},
			{name: "created_at", kind: kindStamp},
			{name: "updated_at", kind: kindStamp},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk("address_id", "addresses")},
		indexes: [][]string{{"address_id"}},
	},
	tTreatments: {
		name: "treatments",
		cols: []column{idCol,
			{name: "client_id", kind: kindRef},
			{name: "staff_id", kind: kindRef},
			{name: "started", kind: kindDate},
			{name: "ended", kind: kindDate, null: true},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk("client_id", "clients"), fk("staff_id", "staff")},
		indexes: [][]string{{"client_id"}},
	},
	tAppointments: {
		name: "appointments",
		cols: []column{idCol,
			{name: "client_id", kind: kindRef},
			{name: "staff_id", kind: kindRef},
			{name: "at", kind: kindStampTZ},
			{name: "status", kind: kindVarchar, size: 20},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk("client_id", "clients"), fk("staff_id", "staff")},
		indexes: [][]string{{"client_id"}, {"at"}},
	},
	tReports: {
		name: "reports",
		cols: []column{idCol,
			{name: "client_id", kind: kindRef},
			{name: "treatment_id", kind: kindRef},
			{name: "written_at", kind: kindStamp},
			{name: "body", kind: kindText},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk("client_id", "clients"), fk("treatment_id", "treatments")},
		indexes: [][]string{{"client_id"}},
	},
	tMeasurements: {
		name: "measurements",
		cols: []column{idCol,
			{name: "client_id", kind: kindRef},
			{name: "taken_at", kind: kindStamp},
			{name: "kind", kind: kindVarchar, size: 40},
			{name: "value", kind: kindFloat},
		},
		pk:             []string{"id"},
		fks:            []ForeignKey{fk("client_id", "clients")},
		indexes:        [][]string{{"client_id", "taken_at"}},
		partitionBy:    "taken_at",
		partitionYears: []int{2023, 2024, 2025, 2026},
	},
	tInvoices: {
		name: "invoices",
		cols: []column{idCol,
			{name: "number", kind: kindRef, unique: true, seq: SequenceInvoiceNumber},
			{name: "client_id", kind: kindRef},
			{name: "issued", kind: kindDate},
			{name: "total", kind: kindMoney},
			{name: "paid_at", kind: kindDate, null: true},
		},
		pk:            []string{"id"},
		fks:           []ForeignKey{fk("client_id", "clients")},
		indexes:       [][]string{{"client_id"}},
		autoincrement: true,
	},
	tInvoiceLines: {
		name: "invoice_lines",
		cols: []column{
			{name: "invoice_id", kind: kindRef},
			{name: "line_no", kind: kindInt},
			{name: "description", kind: kindVarchar, size: 200},
			{name: "amount", kind: kindMoney},
		},
		pk:           []string{"invoice_id", "line_no"},
		fks:          []ForeignKey{fk("invoice_id", "invoices")},
		withoutRowid: true,
	},
	tAttachments: {
		name: "attachments",
		cols: []column{idCol,
			{name: "client_id", kind: kindRef},
			{name: "filename", kind: kindVarchar, size: 200},
			{name: "mime", kind: kindVarchar, size: 100},
			{name: "content", kind: kindBlob},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk("client_id", "clients")},
		indexes: [][]string{{"client_id"}},
	},
	tNotes: {
		name: HostileTable,
		cols: []column{idCol,
			{name: HostileClientColumn, kind: kindRef},
			{name: HostileKeywordColumn, kind: kindText},
			{name: HostileTabColumn, kind: kindVarchar, size: 100, null: true},
		},
		pk:      []string{"id"},
		fks:     []ForeignKey{fk(HostileClientColumn, "clients")},
		indexes: [][]string{{HostileClientColumn}},
	},
	tAuditLog: {
		name: "audit_log",
		cols: []column{
			{name: "at", kind: kindStamp},
			{name: "actor", kind: kindVarchar, size: 100},
			{name: "action", kind: kindVarchar, size: 200},
		},
		indexes: [][]string{{"at"}},
	},
}

func allTables() []*tableDef { return schemaTables[:] }

func (t *tableDef) hasID() bool { return len(t.cols) > 0 && t.cols[0].kind == kindID }

// partitionName is the name of the partition of t holding year y (0: the
// default partition).
func (t *tableDef) partitionName(y int) string {
	if y == 0 {
		return t.name + "_default"
	}
	return t.name + "_" + strconv.Itoa(y)
}

// pkFor is t's primary key in dialect d: a partitioned PostgreSQL table must
// include its partition key.
func (t *tableDef) pkFor(d Dialect) []string {
	if d == Postgres && t.partitionBy != "" && !slices.Contains(t.pk, t.partitionBy) {
		return append(slices.Clone(t.pk), t.partitionBy)
	}
	return t.pk
}

// Tables describes the tables Generate creates in dialect d, parents before
// children (a valid load order). It does not include the Ledger table.
func Tables(d Dialect) []Table {
	out := make([]Table, 0, numTables)
	for _, t := range schemaTables {
		tt := Table{Name: t.name, PrimaryKey: slices.Clone(t.pkFor(d))}
		for _, c := range t.cols {
			tt.Columns = append(tt.Columns, c.name)
		}
		for _, f := range t.fks {
			tt.ForeignKeys = append(tt.ForeignKeys, ForeignKey{
				Columns: slices.Clone(f.Columns), RefTable: f.RefTable, RefColumns: slices.Clone(f.RefColumns),
			})
		}
		if d == Postgres && t.partitionBy != "" {
			for _, y := range t.partitionYears {
				tt.Partitions = append(tt.Partitions, t.partitionName(y))
			}
			tt.Partitions = append(tt.Partitions, t.partitionName(0))
		}
		out = append(out, tt)
	}
	return out
}

// TableNames lists the names of Tables in load order.
func TableNames() []string {
	out := make([]string, numTables)
	for i, t := range schemaTables {
		out[i] = t.name
	}
	return out
}

// DDL returns the statements that create the empty schema in dialect d,
// indexes included, one statement per element without a terminating
// semicolon.
func DDL(d Dialect) ([]string, error) {
	di, err := d.impl()
	if err != nil {
		return nil, err
	}
	return append(di.schema(allTables()), di.finish(allTables())...), nil
}
