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
// Each job has a record, by id: its state ([Queued], [Scheduled],
// [Running], [Retrying], [Succeeded], [Dead] or [Cancelled]), its attempts, the error of
// each failed attempt, and its result. A job is acknowledged only after
// its outcome is recorded, so a worker killed at any moment loses nothing:
// its jobs go to another worker when their lease runs out.
//
// # Storage
//
// Jobs and records live in one JetStream stream, HERD, by subject:
//
//	herd.job.<queue>.<priority>.<id>   the job, as enqueued: one message a job
//	herd.rec.<queue>.<priority>.<id>   its record, once a worker has had it
//	herd.dead.<queue>.<id>             an empty mark: the job is dead
//	herd.wait.<queue>.<priority>.<id>  a job waiting for its parents
//	herd.skip.<queue>.<priority>.<id>  a job that will not run: a parent failed
//	herd-flow.<id>                     which of its parents have succeeded
//	herd-flow.<parent>.<id>            an edge from a parent to a job that waits for it
//
// Each subject keeps its last message only, and the last message on
// herd.*.*.*.<id> is what the queue knows of a job now. The layout was
// chosen from measurements (BENCHMARKS.md), for these reasons:
//
//   - A job costs two stored messages: it is its own record until a worker
//     takes it (no record is written at enqueue), and its outcome replaces
//     the record. With a work-queue stream and a key-value bucket it cost
//     four: a record at enqueue, the message, the outcome, and the
//     tombstone that an acknowledgement writes in a work-queue stream.
//
//   - Acknowledgements write nothing. The stream keeps messages by limits,
//     not as a work queue, so an acknowledgement only moves its consumer's
//     floor, which the server saves about ten times a second. Workers remove
//     the messages of finished jobs below that floor every few seconds.
//     After a restart that lost acknowledgements, a worker reads the records
//     of the deliveries that may be stale (one request for a batch) and does
//     not run a job whose outcome is stored again.
//
//   - Writes are group-committed. A [Client] hands every write (enqueues,
//     outcomes, retries) to one committer, which sends what callers handed
//     over meanwhile together and makes it durable with one sync: a lone
//     write goes at once, so an idle queue adds no wait, and a busy one
//     syncs once for many writes. With the embedded server, the client syncs
//     the server's files itself after each group (the server writes each
//     message to its files before acknowledging it, and leaves the syncing
//     to the client); JetStream, set to sync always, would sync each message
//     on its own. A server elsewhere syncs as it is set up to, and takes a
//     large group as one atomic batch, which it syncs once (and a cluster
//     replicates in one round). Workers hand their outcomes to the
//     committer and take the next job at once, up to 256 jobs ahead of
//     the storing of their outcomes; a job is acknowledged when its
//     outcome is stored.
//
//   - A job is one message, so one unit of delivery: jobs spread over every
//     free slot of every worker, leases and retries are per job, and a
//     stream reader such as the nats CLI sees one message per job. Ids are
//     unique because a job with an id of the caller's is stored only if no
//     subject of that id has a message (an expected last sequence of 0 on
//     herd.*.*.*.<id>).
//
//   - Counts come from the stream's and the consumers' own figures: each
//     queue has a consumer at each priority from its first job on, and a
//     consumer knows how many jobs wait and how many are out, however many
//     there are; the marks of dead jobs are counted by subject, per queue,
//     from the stream's index ([Client.Stats]). Pages of jobs are read
//     from a cursor in the stream, by state, queue, kind, id or error
//     ([Client.Jobs]), never by counting.
//
//   - Running workers say what they run every 5 seconds in a bucket kept
//     in memory, whose entries expire 20 seconds after a worker's last
//     word ([Client.Workers], [Client.Drain]): nothing of it is written
//     to disk.
//
//   - Jobs without parents pay nothing for the jobs that have some, but
//     one header: a finished job's record is stored only if no edge leaves
//     it (an expected last sequence of 0 on herd-flow.<id>.*). When one
//     does, the record says so, and the edges are passed on before the
//     job is acknowledged. A job of a graph lists the jobs of its graph
//     that wait for it in its own record ([Info.Waiters]), which costs no
//     message; edges are written only for jobs enqueued later. Nothing is
//     found by scanning: the work for a job with parents is bounded by its
//     parents and children, and the outcomes a worker stores while it
//     passes others on are passed on together, in one read and one write.
//     The flow subjects are outside herd.>, so that the server, finding
//     the last message on a job's herd.*.*.*.<id>, which every record's
//     store does, never walks a graph's edges.
//
// A queue written by an earlier herd (a stream HERD_JOBS, dead jobs listed
// in a bucket HERD_DEAD, or a stream without the herd.wait, herd.skip and
// herd-flow subjects) is moved to this layout when a client opens it; stop the
// earlier herd's workers first.
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
// [Client.Cancel] cancels a job by id: a waiting one never runs, a running
// one has its context cancelled on its worker. [Client.Pause] stops the
// workers of a named queue taking its jobs, across restarts, until
// [Client.Resume]; enqueueing goes on.
//
// [Client.AddSchedule] adds a periodic job: a cron expression (seconds
// optional, time zones with CRON_TZ=), a descriptor such as @daily, or
// @every 5m. Every worker serving its queue enqueues its ticks, each with an
// id of its own, so each tick runs once however many workers run; a tick
// missed while no worker ran is caught up once, when one starts.
//
// # Jobs that wait for other jobs
//
// A job enqueued with [Options.After] waits ([Pending]) until every job
// named there has succeeded, then goes to its queue; [Client.EnqueueGraph]
// enqueues a whole [Graph] of jobs that wait for each other (chains,
// fan-out, fan-in), checked first for cycles, names used twice and unknown
// parents. A job reads its parents' ids in [Job.Parents], and their
// results with [Client.Infos]. When a parent fails for good (it is dead,
// cancelled, or skipped itself), the jobs that wait for it are [Skipped],
// with the parent in Info.SkippedBy and the reason in their errors, and so
// are theirs; [Client.Retry] of that parent makes them wait for it again,
// and run once it succeeds. [Client.Cancel] of a waiting job skips the
// jobs that wait for it; cancelling every job of a graph cancels what has
// not run. A job of the [Barrier] kind does nothing, on any worker: many
// jobs that wait for many others can wait for one barrier between them.
// [Client.Children] and Info.Parents give the edges of a graph, which
// [Client.Stats] counts the waiting jobs of (Stats.Pending), and
// [Client.Jobs] lists by state (Pending, Skipped).
//
// # Limits across the fleet
//
// [Client.SetLimits] bounds a named queue across every worker, however
// many run and wherever: at most [Limits].Concurrency of its jobs at once,
// at most Rate starts a second (with a Burst), and at most KeyConcurrency
// at once of the jobs of one key ([Options.Key]). The limits are kept in
// the queue and followed by running workers within moments. A worker that
// meets a full queue holds one of its jobs and takes no more of it until a
// slot frees, so other queues on the same workers go on; a job whose key is
// full is held, or put back for a moment, so that other keys go on. A slot
// is held for a lease that the running job renews: a killed worker's slots
// come free when its lease runs out. [Client.Stats] shows the slots held
// and the jobs held for them (Stats.Limits); queues without limits pay
// nothing for them.
//
// # What the queue guarantees
//
// A job runs at least once, and a job whose outcome is stored does not run
// again; an [Enqueue] that returned nil is stored. Under each failure:
//
//   - A process killed at any moment (kill -9 of a worker, of a submitter,
//     of a program with the queue embedded, of herd queue serve): nothing
//     that was acknowledged is lost. A worker's jobs go to another worker
//     when their lease runs out; a job whose outcome was stored before the
//     kill, but whose acknowledgement was lost, is not run again (the
//     worker reads its record first); those whose outcome was not stored
//     yet run again: at most the jobs a worker runs at once, twice that
//     waiting in it, and 256 waiting for their outcomes to be stored.
//     Attempts cut short in their first 50ms may go uncounted.
//
//   - An operating-system crash or a power cut: with the default
//     SyncInterval of zero, every enqueue that returned and every outcome
//     stored is on disk: a job is acknowledged only after its outcome is
//     synced. With a SyncInterval, the writes of up to that long before the
//     crash may be lost: enqueues (their callers were told they
//     succeeded) and outcomes (those jobs run again). A server elsewhere
//     syncs as it is set up to: NATS's default is every two minutes.
//     The folders that lead to the files are synced too, which NATS does
//     not do (it syncs its message folder every two minutes, and none
//     above it, where a new stream or bucket goes): in process, after each
//     group of writes; on a server of [Serve], within 100ms of their change,
//     so that on a file system that does not keep a new file's folder entry
//     with the file's data (ext4 and xfs do), an enqueue acknowledged in
//     those 100ms into a new message file may be lost. In process, an
//     outcome is synced before Info, Infos or Watch shows it: one shown is
//     not taken back by a power cut. A test cuts the power
//     at random moments on a file system that keeps only what was synced,
//     folders' entries included, and finds nothing lost; with a SyncInterval
//     it finds everything since the start lost.
//
//   - A server that restarts, or a cluster that elects a leader: writes
//     are tried again for up to 30 seconds (an enqueue of a job with an id
//     is stored once however often it is sent), watches start again, and
//     workers wait for the server. On a cluster with Replicas 3, a write
//     is acknowledged once a majority has it, and the loss of one server
//     loses nothing.
//
//   - A full store (MaxStore, or the disk): writes fail with [ErrFull],
//     and none is half done. The embedded server, and [Serve], keep a
//     reserve on their disk (2% of it, 1 MiB to 256 MiB) whatever else
//     writes there: they refuse writes once the disk has no more than
//     twice that free, so that they never meet a disk with no space left,
//     which would stop a NATS server storing until restarted. A worker keeps the outcomes it cannot store,
//     renews their jobs' leases, takes no new jobs, and stores them once
//     there is room; if it stops first, it hands those jobs back and they
//     run again. herd run --queue leaves a run to the workers after 30
//     seconds of a full queue with no job finishing.
//
//   - Damaged files (a block cut short or overwritten while the server was
//     down): the server keeps what it can read, and its warnings reach the
//     log ([Config.Logger]). When the embedded server, or [Serve], finds
//     the files damaged or not closed cleanly as it starts, it rebuilds
//     its index from what it can read, and the jobs that had started
//     (running, retrying, handed back, or retried by hand) and lost their
//     message are put back in their queues from their records, with one
//     error line naming them ([Client.Repair]; herd queue repair does it
//     for a queue on another server). A job that no worker had taken has
//     no record: if its message was damaged, it is gone, payload and all;
//     [Client.Lost] names such jobs among the ids it is given, and herd run
//     --queue reports its jobs that are gone as failed rather than wait
//     for them. Damage that the server finds only later, reading a block
//     for the first time since it started, is reported in the log only.
//
//   - Jobs that wait for others: a job starts only after each of its
//     parents has succeeded, and is released once, when the last of them
//     has, whatever is killed when: a worker killed after a parent's
//     outcome was stored and before the jobs waiting for it were released
//     leaves the parent to be delivered again, and the worker that gets
//     it releases them, finding done what was done (each step is one
//     message stored only if what it was decided on is unchanged). The
//     outcome of a job that others wait for, and its children's
//     releases, are not synced to disk on their own: the children start
//     at once, a sync shared with other writes (within 2ms) makes both
//     durable, and only then is the job acknowledged, so that a power cut
//     before has it run or passed on again (and a child that ran, run
//     again); a chain pays one sync a link, not two. A graph is stored what its jobs wait for first, then the jobs that
//     wait, then those that do not, so that nothing runs before it is
//     whole; if a write fails, what was stored of it is removed (if the
//     caller dies meanwhile, what was stored waits for jobs that never
//     come: Cancel them).
//     The enqueue of a job whose parents were in the queue before it
//     writes its edges after storing it: if the caller dies meanwhile,
//     the job waits for ever ([Client.Cancel] it, and enqueue it again).
//     A waiting job cancelled by a caller that dies before the jobs
//     waiting for it are skipped leaves them waiting too. On a cluster
//     that loses the leader of the queue's stream, the same holds
//     (TestGraphClusterLosesLeader): a write decided on a read from a
//     server behind the others is refused, and decided again.
//
// What is not guaranteed: exactly-once execution (a job killed mid-run
// runs again, so handlers should be idempotent), the order in which jobs
// run (priorities are honoured, a few milliseconds late at times), and a
// lasting store on a disk that loses synced writes.
//
// To share a queue between processes or machines, run a server with [Serve]
// (herd queue serve does), or use any NATS server with JetStream, and give
// clients its URL. [Client.Watch] follows the records of a set of jobs as
// they change; [Client.Stats], [Client.List] and [Client.Purge] look after
// the queue; [Client.PutMeta] and [Client.WatchMeta] share small values
// between the programs using it (herd run --queue and herd work share the
// state of each run that way).
package queue
