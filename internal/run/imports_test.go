package run

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine of herd run is built without the queue and without the
// command line's packages: a local run links no NATS, and the engine can
// be used and tested on its own.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		if strings.HasPrefix(dep, "github.com/nats-io/") || strings.HasPrefix(dep, "github.com/spf13/") ||
			strings.HasPrefix(dep, "github.com/goherd/herd/queue") || strings.HasPrefix(dep, "github.com/goherd/herd/internal/run/remote") {
			t.Errorf("internal/run imports %s", dep)
		}
	}
}
