// Package run is the engine of herd run: one pipeline for local runs and
// runs on a queue.
//
//	cmd/herd        options → Config, and which Executor
//	   │
//	Runner.Run      checks the command; Jobs reads the inputs (or --pipe's
//	   │            blocks, less what --resume skips, shuffled by --shuf);
//	   │            opens the job log and the progress display
//	   ├─ feed ───▶ Executor.Execute ── takes jobs, runs them, and calls
//	   │            Runner.Done with each outcome:
//	   │              Local            here, on herd's pool (Attempts)
//	   │              remote.Executor  on a queue's herd work processes
//	   │                               (internal/run/remote, with Attempts)
//	   └─ Done ───▶ the job log row, the counts and --halt, then the
//	                output: grouped, tagged, in input order with -k
//
// Signals are the Runner's: the first stops starting jobs (Stopping), a
// second kills the running ones (JobContext); an executor whose jobs run
// on without herd run (a Detacher) is left to on SIGHUP or a third.
//
// Imports: run uses package herd and herd's internal/command, input and
// replace; never the queue, NATS or the command line's packages
// (TestImports). internal/run/remote imports run and queue; cmd/herd imports
// both.
package run
