// Step 7 of the tour: a worker pool, the idea herd is built on.
//
// A queue of things to be done (the jobs channel) and workers pulling things
// off the queue. main puts the numbers 0..39 on a buffered jobs channel and
// closes it; four workers range over jobs, compute that Fibonacci number the
// slow recursive way, and send it on a results channel. main receives exactly
// as many results as it sent jobs and prints each as it arrives, so the order
// depends on which worker finishes first.
//
// package herd does the same with a bounded queue, context cancellation,
// typed results in input order, and panics that are never lost; its
// Example_workerPool is this program rewritten with it.
//
//	go run ./examples/seed/7-worker-pool
package main

import (
	"fmt"
	"io"
	"os"
)

const (
	numJobs    = 40
	numWorkers = 4
)

func main() {
	run(os.Stdout, numJobs, numWorkers)
}

// run is main with its output and sizes made explicit so that a test can
// capture it and try other sizes.
func run(w io.Writer, jobs, workers int) {
	jobsC := make(chan int, jobs)
	results := make(chan result, jobs)

	for range workers {
		go worker(jobsC, results)
	}

	for n := range jobs {
		jobsC <- n
	}
	close(jobsC) // workers' range loops end once the queue is drained

	for range jobs {
		r := <-results
		fmt.Fprintf(w, "fib(%d) = %d\n", r.n, r.fib)
	}
}

type result struct{ n, fib int }

// worker pulls numbers off jobs until it is closed, sending each one's
// Fibonacci number on results.
func worker(jobs <-chan int, results chan<- result) {
	for n := range jobs {
		results <- result{n, fib(n)}
	}
}

func fib(n int) int {
	if n <= 1 {
		return n
	}
	return fib(n-1) + fib(n-2)
}
