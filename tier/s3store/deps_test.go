package s3store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKStaysInLeaf: the AWS SDK (about 115 packages) is linked only by
// this package's importers (cmd/klite, the bench, tests); the broker's
// core packages build without it. go list -deps shows what each links.
func TestSDKStaysInLeaf(t *testing.T) {
	const mod = "github.com/klite/klite/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		var aws []string
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, "github.com/aws/") {
				aws = append(aws, d)
			}
		}
		return aws
	}
	// The check itself works: this package links the SDK.
	if len(deps(mod+"tier/s3store")) == 0 {
		t.Fatal("go list -deps finds no AWS package under tier/s3store")
	}
	for _, pkg := range []string{"storage", "group", "kafka", "netloop", "vfs", "tier", "tier/objstore"} {
		if aws := deps(mod + pkg); len(aws) > 0 {
			t.Errorf("%s links %d AWS SDK packages (first %s); the S3 client belongs in tier/s3store", pkg, len(aws), aws[0])
		}
	}
}
