package config

import "time"

// Verify configures the daemon's nightly verify job: every night a cheap
// check of every tenant at every location (listings, sizes, key files,
// indexes and manifests opened, compared with the ledger), plus a slice
// of the packs read back in full so that every pack is read within
// ReadDataPeriod.
type Verify struct {
	// ReadDataPeriod is how long a full read-back of every pack may take
	// (default 720h, 30 days; at least 24h, at most 8760h).
	ReadDataPeriod Duration `yaml:"read_data_period"`
}

// DefaultReadDataPeriod is policy.verify.read_data_period when left out.
const DefaultReadDataPeriod = Duration(30 * 24 * time.Hour)

func (c *Config) applyVerifyDefaults() {
	if c.Policy.Verify.ReadDataPeriod == 0 {
		c.Policy.Verify.ReadDataPeriod = DefaultReadDataPeriod
	}
}

func (c *Config) validateVerify(p *Problems) {
	c.applyVerifyDefaults()
	d := c.Policy.Verify.ReadDataPeriod.D()
	if d < 24*time.Hour || d > 365*24*time.Hour {
		p.addf("policy.verify.read_data_period", "%s: must be between 24h and 8760h (every pack is read back once per period, a slice each night)", d)
	}
}

// ReadDataDays is policy.verify.read_data_period in whole days (at least 1).
func (v Verify) ReadDataDays() int {
	return max(1, int(v.ReadDataPeriod.D()/(24*time.Hour)))
}
