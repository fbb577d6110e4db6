//go:build race

package storage

// raceEnabled: under the race detector sync.Pool drops items on purpose
// and instrumentation allocates, so tests that count allocations check
// them without it only.
const raceEnabled = true
