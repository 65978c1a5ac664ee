package synth

import (
	"slices"
	"testing"

	"github.com/kluis-nl/kluis/internal/testenv"
)

// The generator's hostile names are part of the shared corpus
// (testdata/hostile-names.txt), so every engine's corpus round trip covers
// what the synthetic practices use.
func TestHostileNamesInCorpus(t *testing.T) {
	corpus := testenv.HostileNames(t)
	for _, n := range []string{HostileTable, HostileClientColumn, HostileKeywordColumn, HostileTabColumn} {
		if !slices.Contains(corpus, n) {
			t.Errorf("%q is not in testdata/hostile-names.txt", n)
		}
	}
}
