// Step 1 of the tour: plain function calls run one after the other.
//
// count prints "1 sheep", "2 sheep", ... every half second, forever. main
// calls count("sheep") and then count("fish"), but the first call never
// returns, so the fish are never counted. Nothing here is concurrent yet.
//
//	go run ./examples/seed/1-sequential
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

// run is main with its output and its end made explicit: the tutorial's
// program writes to the terminal and runs until it is killed, while the test
// hands in a buffer and cancels ctx to stop the endless counting.
func run(ctx context.Context, w io.Writer) {
	count(ctx, w, "sheep")
	if ctx.Err() != nil {
		return // stopped by the test; the tutorial's program never gets here
	}
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
