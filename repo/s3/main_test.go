package s3_test

import (
	"testing"

	"github.com/kluis-nl/kluis/internal/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }
