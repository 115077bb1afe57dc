// Step 2 of the tour: the go statement.
//
// Putting go before count("sheep") starts it in a new goroutine and returns
// at once, so main carries on into count("fish") while the sheep are counted
// in the background. Every half second one sheep and one fish are printed, in
// either order; the program still runs forever.
//
//	go run ./examples/seed/2-goroutine
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

// run is main with its output and its end made explicit so that a test can
// capture the counting and stop it; the tutorial's program runs until killed.
func run(ctx context.Context, w io.Writer) {
	go count(ctx, w, "sheep")
	count(ctx, w, "fish")
}

// count prints thing with a counter every 500 ms until ctx is done.
func count(ctx context.Context, w io.Writer, thing string) {
	for i := 1; ; i++ {
		fmt.Fprintln(w, i, thing)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}
