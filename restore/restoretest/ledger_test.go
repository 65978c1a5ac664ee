package restoretest

import (
	"encoding/json"
	"testing"
)

// FuzzLedgerEntry: a ledger entry read back from the state directory
// never panics, and one that decodes names its own file in the scratch
// alphabet, with an owner of its family's form, and encodes back to an
// entry that decodes to the same.
func FuzzLedgerEntry(f *testing.F) {
	f.Add([]byte(`{"family":"postgres","server":"pg:1","name":"kluis_rt_a_20250101000000_abcdef","owner":"kluis_rt_a_20250101000000_abcdef","appliance":"ams-1","token":"00","tenant":"a","created":"2025-01-01T00:00:00Z"}`), "kluis_rt_a_20250101000000_abcdef.json")
	f.Add([]byte(`{"family":"mariadb","name":"kluis_rt_b_20250101000000_abcdef","owner":"kluis_rt_u0123456789ab","owner_host":"localhost","appliance":"x","token":"1","tenant":"b","created":"2025-01-01T00:00:00Z"}`), "kluis_rt_b_20250101000000_abcdef.json")
	f.Add([]byte(`{"family":"sqlite","name":"kluis_rt_c_20250101000000_abcdef","path":"/x/kluis_rt_c_20250101000000_abcdef.db"}`), "kluis_rt_c_20250101000000_abcdef.json")
	f.Add([]byte(`{"family":"postgres","name":"kluis_rt_KEEP_20250101000000_abcdef"}`), "kluis_rt_KEEP_20250101000000_abcdef.json")
	f.Add([]byte(`{}{}`), "x.json")
	f.Fuzz(func(t *testing.T, b []byte, file string) {
		e, err := decodeLedgerEntry(b, file)
		if err != nil {
			return
		}
		if !scratchAlphabetRE.MatchString(e.Name) || file != e.Name+".json" {
			t.Fatalf("accepted %q in file %q", e.Name, file)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeLedgerEntry(again, file)
		if err != nil || !e2.Created.Equal(e.Created) {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
		e.Created = e2.Created
		if e2 != e {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
	})
}
