// Step 5 of the tour: channels carry values between goroutines.
//
// Instead of printing, count sends "sheep" on a channel five times, half a
// second apart. main receives one message, prints it and returns: a receive
// blocks until a value is sent, so main waits exactly as long as it needs, and
// exactly one "sheep" is printed.
//
//	go run ./examples/seed/5-channel
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

// run is main with its output made explicit. When the tutorial's main
// returns, the process exit ends count blocked on its second send; a test
// process does not exit, so run cancels ctx to release count instead.
func run(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := make(chan string)
	go count(ctx, "sheep", c)
	msg := <-c
	fmt.Fprintln(w, msg)
}

// count sends thing on c five times, 500 ms apart, unless ctx ends first.
func count(ctx context.Context, thing string, c chan<- string) {
	for range 5 {
		select {
		case c <- thing:
		case <-ctx.Done():
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
