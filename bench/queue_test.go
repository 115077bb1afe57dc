package bench

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/hibiken/asynq"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const queueJobs = 100_000

// A queueContender is a durable job queue under test, freshly set up.
type queueContender struct {
	enqueue func(ctx context.Context) error        // one job
	batch   func(ctx context.Context, n int) error // n jobs in one call, if the queue has such a call
	process func(ctx context.Context, n int) error // runs jobs 8 at a time until n are done
	close   func()
}

// queueContenders are herd's queue at two durabilities, asynq on Redis at
// three, and the ceiling: JetStream alone, with NATS's default durability.
var queueContenders = []struct {
	name  string
	setup func(b *testing.B) *queueContender
}{
	{"herd-durable", func(b *testing.B) *queueContender { return herdQueue(b, 0) }},
	{"herd-sync-1s", func(b *testing.B) *queueContender { return herdQueue(b, time.Second) }},
	{"asynq-fsync-always", func(b *testing.B) *queueContender { return asynqQueue(b, "always") }},
	{"asynq-fsync-everysec", func(b *testing.B) *queueContender { return asynqQueue(b, "everysec") }},
	{"asynq-redis-defaults", func(b *testing.B) *queueContender { return asynqQueue(b, "") }},
	{"jetstream-raw", rawJetStream},
}

// BenchmarkQueue runs 100,000 no-op jobs through each queue in three shapes,
// on a fresh store each time, and reports the rates. An iteration is one
// whole run.
//   - batch: 8 producers enqueue batches of 100 (asynq, which has no batch
//     call, enqueues them one by one), then the jobs are processed;
//   - single: 64 goroutines enqueue one job at a time, then the jobs are
//     processed;
//   - mixed: the 8 batch producers and the processing run at once.
func BenchmarkQueue(b *testing.B) {
	for _, shape := range []string{"batch", "single", "mixed"} {
		for _, qc := range queueContenders {
			b.Run("shape="+shape+"/impl="+qc.name, func(b *testing.B) {
				if listing {
					return // run.sh only lists the cases
				}
				var enqueueTime, processTime, total time.Duration
				for b.Loop() {
					b.StopTimer()
					q := qc.setup(b)
					b.StartTimer()
					start := time.Now()
					var err error
					switch shape {
					case "batch", "single":
						if shape == "batch" {
							err = produce(b.Context(), 8, queueJobs, func(ctx context.Context) error { return q.batch(ctx, 100) }, 100)
						} else {
							err = produce(b.Context(), 64, queueJobs, q.enqueue, 1)
						}
						mid := time.Now()
						if err == nil {
							err = q.process(b.Context(), queueJobs)
						}
						enqueueTime += mid.Sub(start)
						processTime += time.Since(mid)
					case "mixed":
						var wg sync.WaitGroup
						var perr error
						wg.Go(func() { perr = q.process(b.Context(), queueJobs) })
						err = produce(b.Context(), 8, queueJobs, func(ctx context.Context) error { return q.batch(ctx, 100) }, 100)
						wg.Wait()
						err = cmp.Or(err, perr)
					}
					total += time.Since(start)
					b.StopTimer()
					q.close()
					b.StartTimer()
					if err != nil {
						b.Fatal(err)
					}
				}
				jobs := float64(b.N) * queueJobs
				b.ReportMetric(0, "ns/op")
				if shape != "mixed" {
					b.ReportMetric(jobs/enqueueTime.Seconds(), "enqueued/s")
					b.ReportMetric(jobs/processTime.Seconds(), "processed/s")
				}
				b.ReportMetric(jobs/total.Seconds(), "jobs/s")
			})
		}
	}
}

// BenchmarkEnqueueLatency times 2,000 lone enqueues, one after the other on
// an idle queue, and reports the median and the 99th percentile.
func BenchmarkEnqueueLatency(b *testing.B) {
	for _, qc := range queueContenders {
		b.Run("impl="+qc.name, func(b *testing.B) {
			if listing {
				return // run.sh only lists the cases
			}
			var times []time.Duration
			for b.Loop() {
				b.StopTimer()
				q := qc.setup(b)
				b.StartTimer()
				for range 2000 {
					start := time.Now()
					if err := q.enqueue(b.Context()); err != nil {
						b.Fatal(err)
					}
					times = append(times, time.Since(start))
				}
				b.StopTimer()
				q.close()
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// produce runs producers that call enqueue, which adds per jobs, until n
// jobs are in.
func produce(ctx context.Context, producers, n int, enqueue func(context.Context) error, per int) error {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for range producers {
		wg.Go(func() {
			for left.Add(-int64(per)) >= 0 {
				if err := enqueue(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func herdQueue(b *testing.B, sync time.Duration) *queueContender {
	c, err := queue.Open(b.Context(), queue.Config{Dir: b.TempDir(), SyncInterval: sync})
	if err != nil {
		b.Fatal(err)
	}
	return &queueContender{
		enqueue: func(ctx context.Context) error {
			_, err := c.Enqueue(ctx, "noop", nil, queue.Options{})
			return err
		},
		batch: func(ctx context.Context, n int) error {
			_, err := c.EnqueueBatch(ctx, noopJobs(n))
			return err
		},
		process: func(ctx context.Context, n int) error {
			var left atomic.Int64
			left.Store(int64(n))
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 8})
			w.Handle("noop", func(context.Context, *queue.Job) ([]byte, error) {
				if left.Add(-1) == 0 {
					cancel()
				}
				return nil, nil
			})
			return w.Run(ctx)
		},
		close: func() { c.Close() },
	}
}

func asynqQueue(b *testing.B, appendfsync string) *queueContender {
	addr, stop := startRedis(b, appendfsync)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	enqueue := func(ctx context.Context) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil))
		return err
	}
	return &queueContender{
		enqueue: enqueue,
		batch: func(ctx context.Context, n int) error {
			for range n {
				if err := enqueue(ctx); err != nil {
					return err
				}
			}
			return nil
		},
		process: func(ctx context.Context, n int) error {
			var left atomic.Int64
			left.Store(int64(n))
			done := make(chan struct{})
			srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{Concurrency: 8, LogLevel: asynq.FatalLevel})
			mux := asynq.NewServeMux()
			mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
				if left.Add(-1) == 0 {
					close(done)
				}
				return nil
			})
			if err := srv.Start(mux); err != nil {
				return err
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
			srv.Shutdown()
			return ctx.Err()
		},
		close: func() {
			client.Close()
			stop()
		},
	}
}

// startRedis starts a redis-server on a free loopback port for one run:
// with an append-only file synced as appendfsync says ("always",
// "everysec"), or, given "", with Redis's default durability (snapshots,
// no append-only file).
func startRedis(b *testing.B, appendfsync string) (addr string, stop func()) {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", b.TempDir(), "--save", "3600 1 300 100 60 10000"}
	if appendfsync != "" {
		args = append(args, "--appendonly", "yes", "--appendfsync", appendfsync)
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("redis-server is needed (bench/run.sh installs it): %v", err)
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop
		}
		if time.Now().After(deadline) {
			stop()
			b.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noopJobs returns n jobs of the kind noop, with no payload.
func noopJobs(n int) []queue.NewJob {
	jobs := make([]queue.NewJob, n)
	for i := range jobs {
		jobs[i].Kind = "noop"
	}
	return jobs
}

// rawJetStream is the ceiling of what herd's queue could do on the server
// it embeds: a work-queue stream on a JetStream server in the process, set
// up as NATS sets it by default (its files synced every two minutes), a
// job an empty message published asynchronously, and a consumer that
// fetches up to 8 at a time, pulling ahead, and acknowledges each. No
// records, no retries, nothing durable per job.
func rawJetStream(b *testing.B) *queueContender {
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: b.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		b.Fatal(err)
	}
	batch := func(ctx context.Context, n int) error {
		for range n {
			if _, err := js.PublishAsync("raw.noop", nil); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	return &queueContender{
		enqueue: func(ctx context.Context) error {
			_, err := js.Publish(ctx, "raw.noop", nil)
			return err
		},
		batch: batch,
		process: func(ctx context.Context, n int) error {
			cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				return err
			}
			var left atomic.Int64
			left.Store(int64(n))
			done := make(chan struct{})
			cc, err := cons.Consume(func(m jetstream.Msg) {
				m.Ack()
				if left.Add(-1) == 0 {
					close(done)
				}
			}, jetstream.PullMaxMessages(16))
			if err != nil {
				return err
			}
			defer cc.Stop()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		close: func() {
			nc.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
		},
	}
}

// BenchmarkFlows measures jobs that wait for other jobs against what users
// write without them, on herd's durable queue with one worker running 8 at
// a time, each case on a fresh store. An iteration is one whole run, from
// the first enqueue to the last job's end.
//   - chain: 1,000 no-op jobs, each after the one before. impl=graph
//     enqueues them as one graph; impl=client enqueues a job, waits for it,
//     and enqueues the next, as users chain jobs today.
//   - fanin: 10,000 no-op jobs and one after all of them. impl=graph
//     enqueues them as one graph; impl=independent enqueues 10,001 jobs
//     that wait for nothing, the cost the graph's is measured against.
func BenchmarkFlows(b *testing.B) {
	for _, c := range []struct {
		shape, impl string
		run         func(ctx context.Context, c *queue.Client) (last string, err error)
	}{
		{"chain", "graph", func(ctx context.Context, c *queue.Client) (string, error) {
			var g queue.Graph
			g.Add("0", queue.NewJob{Kind: "noop"})
			for i := 1; i < 1000; i++ {
				g.Add(fmt.Sprint(i), queue.NewJob{Kind: "noop"}, fmt.Sprint(i-1))
			}
			ids, err := c.EnqueueGraph(ctx, &g)
			return ids["999"], err
		}},
		{"chain", "client", func(ctx context.Context, c *queue.Client) (string, error) {
			var id string
			for range 1000 {
				var err error
				if id, err = c.Enqueue(ctx, "noop", nil, queue.Options{}); err != nil {
					return "", err
				}
				if _, err := c.Wait(ctx, id); err != nil {
					return "", err
				}
			}
			return id, nil
		}},
		{"fanin", "graph", func(ctx context.Context, c *queue.Client) (string, error) {
			var g queue.Graph
			parents := make([]string, 10_000)
			for i := range parents {
				parents[i] = fmt.Sprint(i)
				g.Add(parents[i], queue.NewJob{Kind: "noop"})
			}
			g.Add("child", queue.NewJob{Kind: "noop"}, parents...)
			ids, err := c.EnqueueGraph(ctx, &g)
			return ids["child"], err
		}},
		{"fanin", "independent", func(ctx context.Context, c *queue.Client) (string, error) {
			ids, err := c.EnqueueBatch(ctx, noopJobs(10_001))
			if err != nil {
				return "", err
			}
			return ids[len(ids)-1], nil
		}},
	} {
		b.Run("shape="+c.shape+"/impl="+c.impl, func(b *testing.B) {
			if listing {
				return
			}
			for b.Loop() {
				b.StopTimer()
				q, err := queue.Open(b.Context(), queue.Config{Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				w, _ := q.NewWorker(queue.WorkerConfig{Concurrency: 8})
				w.Handle("noop", func(context.Context, *queue.Job) ([]byte, error) { return nil, nil })
				ctx, stop := context.WithCancel(b.Context())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				b.StartTimer()
				last, err := c.run(b.Context(), q)
				if err == nil {
					var info *queue.Info
					if info, err = q.Wait(b.Context(), last); err == nil && info.State != queue.Succeeded {
						err = fmt.Errorf("the last job is %s", info.State)
					}
				}
				b.StopTimer()
				stop()
				<-done
				q.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
