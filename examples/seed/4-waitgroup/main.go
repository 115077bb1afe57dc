// Step 4 of the tour: waiting for goroutines with sync.WaitGroup.
//
// count now stops after five, and main waits for it. The classic way is a
// WaitGroup: Add(1) before starting the goroutine, Done() when it ends,
// Wait() to block until the count is back to zero. Go 1.25 folded the three
// into one call, WaitGroup.Go, which the second half uses. The program prints
// five sheep, then five fish, half a second apart, and exits.
//
//	go run ./examples/seed/4-waitgroup
package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

func main() {
	run(os.Stdout)
}

// run is main with its output made explicit so that a test can capture it.
func run(w io.Writer) {
	// The classic way: Add before the go statement, Done when the
	// goroutine ends (here inside countDone, which is handed the group).
	var wg sync.WaitGroup
	wg.Add(1)
	go countDone(&wg, w, "sheep")
	wg.Wait()

	// The same since Go 1.25: Go does the Add and the Done.
	var wg2 sync.WaitGroup
	wg2.Go(func() { count(w, "fish") })
	wg2.Wait()
}

// countDone counts thing, then marks itself done in wg.
func countDone(wg *sync.WaitGroup, w io.Writer, thing string) {
	defer wg.Done()
	count(w, thing)
}

// count prints thing with a counter five times, 500 ms apart.
func count(w io.Writer, thing string) {
	for i := 1; i <= 5; i++ {
		fmt.Fprintln(w, i, thing)
		time.Sleep(500 * time.Millisecond)
	}
}
