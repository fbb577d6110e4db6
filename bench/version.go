package main

import "runtime/debug"

// kgoVersion is the franz-go version the benchmark was built with.
func kgoVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/twmb/franz-go" {
			return d.Version
		}
	}
	return ""
}
