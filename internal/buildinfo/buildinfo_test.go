package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

// A stamped version comes first, the Go release last; a build that is no
// release (a test binary) is not taken for one.
func TestDescribe(t *testing.T) {
	d := Describe("v1.2.3")
	lines := strings.Split(strings.TrimSuffix(d, "\n"), "\n")
	if lines[0] != "herd v1.2.3" || !strings.HasPrefix(lines[len(lines)-1], runtime.Version()+" ") {
		t.Errorf("Describe(v1.2.3) = %q", d)
	}
	if v := Version("v1.2.3"); v != "v1.2.3" {
		t.Errorf("Version(v1.2.3) = %q", v)
	}
	if r := Release("v1.2.3"); r != "herd v1.2.3" {
		t.Errorf("Release(v1.2.3) = %q, want the first line", r)
	}
	for _, v := range []string{"", "v1.2.4-0.20261205120000-abcdef123456+dirty", "(devel)"} {
		if r := Release(v); r != "" {
			t.Errorf("Release(%q) = %q, want none: no release", v, r)
		}
	}
}
