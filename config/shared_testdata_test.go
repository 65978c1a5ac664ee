package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis/internal/testenv"
)

// TestSharedSampleConfigsValidate keeps the sample configs other packages'
// tests start from (testdata/config/*.yaml at the module root) valid: a
// fixture that config refuses would make those tests test an error path.
func TestSharedSampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob(testenv.Fixture(t, "config/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no sample configs under testdata/config")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(b, t.TempDir()); err != nil {
				t.Errorf("%s does not validate:\n%v", f, err)
			}
		})
	}
}
