// Step 3 of the tour: a Go program ends when main returns.
//
// Both calls to count now start goroutines, so main has nothing left to do
// and returns at once. The program exits, taking its goroutines with it, and
// prints nothing: nobody waited for them. (Nearly always nothing: now and then
// a goroutine gets its first line out before the process ends.)
//
//	go run ./examples/seed/3-main-returns
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	run(context.Background(), os.Stdout)
}

// run is main with its output made explicit. In the tutorial's program the
// exiting process kills the goroutines; a test process does not exit, so run
// cancels ctx on the way out to stop them instead.
func run(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go count(ctx, w, "sheep")
	go count(ctx, w, "fish")
}

// count prints thing with a counter every 500 ms until ctx is done.
func count(ctx context.Context, w io.Writer, thing string) {
	for i := 1; ; i++ {
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintln(w, i, thing)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}
