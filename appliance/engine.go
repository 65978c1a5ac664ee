package appliance

import (
	"fmt"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/source"
)

// Engine returns the source engine of a database tenant, keyed with the
// tenant's fingerprint key.
func (a *Appliance) Engine(t *config.Tenant, fingerprintKey []byte) (source.Engine, error) {
	return nil, fmt.Errorf("tenant %s: engine %s is not available in this build", t.ID, t.Engine)
}
