// Step 6 of the tour: closing a channel and ranging over it.
//
// count closes the channel after its fifth send. A for-range loop over a
// channel receives until the channel is closed and drained, so main prints
// "sheep" five times, half a second apart, and ends by itself. Only the
// sender closes: a send on a closed channel panics.
//
//	go run ./examples/seed/6-close-range
package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	run(os.Stdout)
}

// run is main with its output made explicit so that a test can capture it.
func run(w io.Writer) {
	c := make(chan string)
	go count("sheep", c)
	for msg := range c {
		fmt.Fprintln(w, msg)
	}
}

// count sends thing on c five times, 500 ms apart, then closes c.
func count(thing string, c chan<- string) {
	for range 5 {
		c <- thing
		time.Sleep(500 * time.Millisecond)
	}
	close(c)
}
