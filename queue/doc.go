// Package queue is herd's durable job queue: jobs enqueued by kind with a
// payload, kept in NATS JetStream, and run by [Worker]s on any machine that
// can reach it, at least once, with retries, a dead-letter list, and each
// job's state and result kept by id.
//
// With no URL, [Open] runs a NATS server inside the process, storing its
// data in a folder ([DefaultDir]), so there is nothing to install or start:
//
//	c, err := queue.Open(ctx, queue.Config{})
//	id, err := queue.Enqueue(ctx, c, "email", Email{To: "a@example.com"}, queue.Options{})
//
//	w, err := c.NewWorker(queue.WorkerConfig{Concurrency: 8})
//	w.Handle("email", func(ctx context.Context, j *queue.Job) ([]byte, error) {
//		e, err := queue.Decode[Email](j)
//		if err != nil {
//			return nil, queue.Permanent(err) // a bad payload will not get better
//		}
//		return nil, send(ctx, e)
//	})
//	err = w.Run(ctx) // until ctx is done
//
// Each job has a record, by id, in a JetStream key-value bucket: its state
// ([Queued], [Scheduled], [Running], [Retrying], [Succeeded] or [Dead]), its
// attempts, the error of each failed attempt, and its result. The record is
// written before the job is published, and updated as the job runs; a job
// is acknowledged only after its outcome is recorded, so a worker killed at
// any moment loses nothing: its jobs go to another worker when their lease
// runs out.
//
// A job's record says it is running once it has run for 50ms: shorter jobs
// go straight from queued to their outcome, which saves a store write for
// each. So an attempt cut short in its first 50ms by a worker's death may
// go uncounted.
//
// A handler that panics fails its attempt with the panic's value and stack
// in the job's error history; the worker goes on with other jobs. A job that
// fails its last attempt is dead: [Client.Dead] lists those jobs, and
// [Client.Retry] and [Client.Delete] mend them. A result too big for a record
// is kept apart, in a JetStream object store, and read back with it.
//
// To share a queue between processes or machines, run a server with [Serve]
// (herd queue serve does), or use any NATS server with JetStream, and give
// clients its URL. [Client.Watch] follows the records of a set of jobs as
// they change; [Client.Stats], [Client.List] and [Client.Purge] look after
// the queue; [Client.PutMeta] and [Client.WatchMeta] share small values
// between the programs using it (herd run --queue and herd work share the
// state of each run that way).
package queue
