//go:build race

package schedule

// raceEnabled shortens the soak under the race detector (CI runs -race).
const raceEnabled = true
