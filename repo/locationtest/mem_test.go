package locationtest_test

import (
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/locationtest"
)

func TestMemLocation(t *testing.T) {
	locationtest.Run(t, func(t *testing.T) repo.Location {
		return locationtest.NewMemLocation("mem")
	})
}
