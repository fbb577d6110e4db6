// Package crashtest holds the crash sweep over klite's stores together
// (storage and the group coordinator's offsets log on one file system).
// It has no code outside its tests; see sweep_test.go.
package crashtest
