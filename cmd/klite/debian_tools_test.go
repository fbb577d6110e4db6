package main

import (
	"os"
	"os/exec"
	"testing"
)

// debianTool returns the path of a client program from Debian's packages
// (scripts/debian-deps.sh installs them for `make test`). A missing one
// fails the test rather than skipping it, so a machine without it cannot
// pass silently; KLITE_DEBIAN_DEPS=0 says they are knowingly absent.
func debianTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missingDebianTool(t, name)
	return ""
}

// missingDebianTool fails t for a missing Debian package, or skips it when
// KLITE_DEBIAN_DEPS=0 says they are knowingly absent.
func missingDebianTool(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("KLITE_DEBIAN_DEPS") == "0" {
		t.Skipf("%s not installed and KLITE_DEBIAN_DEPS=0", name)
	}
	t.Fatalf("%s not installed: run scripts/debian-deps.sh (make test does), or set KLITE_DEBIAN_DEPS=0 to skip", name)
}
