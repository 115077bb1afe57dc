package testutil

import (
	"flag"
	"os"
	"strconv"
	"strings"
)

// Parallel makes a package's parallel tests run n at a time unless the
// -parallel flag says otherwise. Call it from TestMain, before m.Run. It
// is for packages whose tests mostly wait, for the processes and servers
// they start: go test's default, as many as there are cores, leaves the
// cores idle much of the time.
func Parallel(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(n))
	}
}

// QuickExit makes the processes that the tests start from race-built
// binaries (the test binary itself, as a helper or as herd) exit as soon
// as they are done. The race detector otherwise sleeps a second at every
// exit (GORACE's atexit_sleep_ms, 1000 by default), which a package that
// starts hundreds of them pays in full. Call it from TestMain. A race found
// before the exit is still reported.
func QuickExit() {
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
}
