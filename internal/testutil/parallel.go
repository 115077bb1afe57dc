package testutil

import (
	"flag"
	"strconv"
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
