//go:build race

package group

// raceEnabled: the race detector multiplies the time and memory of the
// tests that move tens of megabytes (about 60 s and 3 GB for three of them),
// so those run without it only.
const raceEnabled = true
