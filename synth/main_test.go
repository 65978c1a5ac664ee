package synth

import (
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
