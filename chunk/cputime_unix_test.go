//go:build unix

package chunk

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) the test process has used,
// so that throughput can be measured on a machine shared with other work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
