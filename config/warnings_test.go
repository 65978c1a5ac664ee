package config

import "testing"

// TestWarnRecordResultWithoutAggregate: record_result on a probe that
// returns a single row's value (a BSN) is warned about; on a count it is
// not.
func TestWarnRecordResultWithoutAggregate(t *testing.T) {
	c := &Config{Tenants: []Tenant{{ID: "p", Probes: []Probe{
		{Name: "count", SQL: "SELECT COUNT (*) FROM clients", RecordResult: true},
		{Name: "bsn", SQL: "SELECT bsn FROM clients LIMIT 1", RecordResult: true},
		{Name: "bsn-withheld", SQL: "SELECT bsn FROM clients LIMIT 1"},
	}}}}
	w := c.Warnings()
	if len(w) != 1 || w[0].Path != "tenants[0].probes[1].record_result" {
		t.Fatalf("warnings %+v: want one, for the bsn probe", w)
	}
}
