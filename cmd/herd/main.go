// Command herd runs a queue of things to be done on workers pulling things
// off the queue: shell commands across CPUs with herd run, a drop-in for GNU
// parallel and xargs -P.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the time zones of herd queue cron, on systems without them
)

func main() {
	// herd run reacts to each signal in turn (the first drains, the second
	// kills), so it gets the signals themselves rather than a context that
	// only says that one came.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(execute(context.Background(), os.Args[1:], sigs, os.Stdin, os.Stdout, os.Stderr))
}
