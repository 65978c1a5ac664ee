package config

import (
	"strings"
	"testing"
	"time"
)

// TestVerifySettings: policy.verify.read_data_period defaults to 30 days,
// parses a duration and refuses one outside 24h..8760h naming its path.
func TestVerifySettings(t *testing.T) {
	pol := "  chunk_average: 64KiB\n"
	c, err := Parse([]byte(validYAML(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Verify.ReadDataPeriod.D() != 30*24*time.Hour || c.Policy.Verify.ReadDataDays() != 30 {
		t.Errorf("default read_data_period %s", c.Policy.Verify.ReadDataPeriod.D())
	}
	c, err = Parse([]byte(edit(t, validYAML(t), pol, pol+"  verify: {read_data_period: 168h}\n")), t.TempDir())
	if err != nil || c.Policy.Verify.ReadDataDays() != 7 {
		t.Fatalf("168h: %v, %+v", err, c)
	}
	for _, bad := range []string{"1h", "9000h", "soon"} {
		_, err := Parse([]byte(edit(t, validYAML(t), pol, pol+"  verify: {read_data_period: "+bad+"}\n")), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "policy.verify.read_data_period") {
			t.Errorf("read_data_period %s: %v", bad, err)
		}
	}
	if _, err := Parse([]byte(edit(t, validYAML(t), pol, pol+"  verify: {period: 48h}\n")), t.TempDir()); err == nil || !strings.Contains(err.Error(), "policy.verify") {
		t.Errorf("unknown verify key: %v", err)
	}
}
