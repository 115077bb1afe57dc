package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
)

// The helpers of the queue's tests, in one place: the processes the tests
// start (TestMain runs them), servers and clients for a test, and waits.

func TestMain(m *testing.M) {
	testutil.QuickExit()
	if url := os.Getenv("HERD_QUEUE_TEST_WORKER"); url != "" {
		hangingWorker(url, os.Getenv("HERD_QUEUE_TEST_MARKER"))
		return
	}
	if cfg := os.Getenv("HERD_QUEUE_TEST_NODE"); cfg != "" {
		serveNode(cfg)
		return
	}
	if dir := os.Getenv("HERD_QUEUE_TEST_BUSY"); dir != "" {
		busyQueue(dir)
		return
	}
	if url := os.Getenv("HERD_QUEUE_TEST_FLOW"); url != "" {
		flowWorker(url, os.Getenv("HERD_QUEUE_TEST_LOG"))
		return
	}
	if url := os.Getenv("HERD_QUEUE_TEST_LIMITED"); url != "" {
		limitedWorker(url, os.Getenv("HERD_QUEUE_TEST_LOG"))
		return
	}
	if target := os.Getenv("HERD_QUEUE_TEST_POWER"); target != "" {
		powerLoad(target, os.Getenv("HERD_QUEUE_TEST_PREFIX"))
		return
	}
	if url := os.Getenv("HERD_QUEUE_TEST_SCHEDULER"); url != "" {
		scheduling(url, os.Getenv("HERD_QUEUE_TEST_RUNS"))
		return
	}
	// Most tests wait for servers, workers and timers: four at a time
	// keep two cores busy.
	testutil.Parallel(4)
	code := m.Run()
	if code == 0 {
		if leaked := testutil.Leaked("goherd/herd/queue", "nats-io/nats.go", "nats-io/nats-server"); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// hangingWorker is the worker process that TestWorkerKilledMidJob kills:
// it takes a job, says so, and never finishes it.
func hangingWorker(url, marker string) {
	c, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 1, Lease: time.Second})
	w.Handle("job", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		// Past the moment a job's record says it runs: an attempt killed
		// sooner may go uncounted.
		time.Sleep(200 * time.Millisecond)
		os.WriteFile(marker, []byte(j.ID), 0o644)
		select {} // until killed
	})
	w.Run(context.Background())
}

// busyQueue is the process that TestKilledWhileBusy kills: a queue
// embedded in it, eight goroutines enqueueing, and a worker running the
// jobs. It prints "enqueued ID PAYLOAD" once an enqueue has returned, and
// "done ID" once it has seen a job's outcome stored.
func busyQueue(dir string) {
	ctx := context.Background()
	c, err := queue.Open(ctx, queue.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	watcher, err := c.Watch(ctx, "*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		for info := range watcher.Updates() {
			if info.State == queue.Succeeded {
				fmt.Println("done", info.ID)
			}
		}
	}()
	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 4})
	w.Handle("job", func(context.Context, *queue.Job) ([]byte, error) { return nil, nil })
	go w.Run(ctx)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				payload := fmt.Sprintf("%d-%d", g, i)
				id, err := c.Enqueue(ctx, "job", []byte(payload), queue.Options{})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				fmt.Println("enqueued", id, payload)
			}
		}()
	}
	select {} // until killed
}

// flowWorker is the worker process that TestGraphWorkerKilled kills again
// and again: it runs "step" jobs of 5ms, noting "start ID" and "end ID" in
// the log file as each starts and returns.
func flowWorker(url, log string) {
	c, err := queue.Open(context.Background(), queue.Config{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, _ := c.NewWorker(queue.WorkerConfig{Concurrency: 4, Lease: time.Second})
	w.Handle("step", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		fmt.Fprintln(f, "start", j.ID) // one write each: lines do not mix
		time.Sleep(5 * time.Millisecond)
		fmt.Fprintln(f, "end", j.ID)
		return nil, nil
	})
	w.Run(context.Background())
}

type nodeConfig struct {
	Name, Listen, Dir string
	Cluster           queue.ClusterConfig
	SyncInterval      time.Duration
}

// serveNode is a queue server process that TestClusterSurvivesNodeLoss
// and TestServerKilledUnderWorkers kill: it serves until killed.
func serveNode(config string) {
	var cfg nodeConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := queue.Serve(queue.ServerConfig{Name: cfg.Name, Listen: cfg.Listen, Dir: cfg.Dir, Cluster: cfg.Cluster, SyncInterval: cfg.SyncInterval}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}

// startNode starts a queue server in a process of its own (serveNode),
// killed when the test ends if it still runs.
func startNode(t *testing.T, cfg nodeConfig) *exec.Cmd {
	t.Helper()
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HERD_QUEUE_TEST_NODE="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startHelper starts this test binary as one of the processes TestMain
// runs, chosen by env, killed when the test ends if it still runs.
func startHelper(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	var stderr testutil.Buffer
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// Killed, the helper cannot fail the test by its exit status.
		if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in a helper process (above)")
		}
	})
	return cmd
}

// startPiped starts this test binary as one of the processes TestMain
// runs, chosen by env, and returns it with its standard output, which the
// test reads to its end before it waits for the process.
func startPiped(t *testing.T, env ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// startServer starts an embedded server listening on loopback.
func startServer(t *testing.T, cfg embedded.Config) *embedded.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Host = "127.0.0.1"
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	ns, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// open opens a client closed when the test ends.
func open(t *testing.T, cfg queue.Config) *queue.Client {
	t.Helper()
	c, err := queue.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wait waits for a job to finish, failing the test if it does not within
// the backstop.
func wait(t *testing.T, c *queue.Client, id string) *queue.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testutil.Backstop)
	defer cancel()
	info, err := c.Wait(ctx, id)
	if err != nil {
		now, ierr := c.Info(context.Background(), id)
		t.Fatalf("Wait(%s): %v; the job is now %+v (%v)", id, err, now, ierr)
	}
	return info
}

// fast is a worker that retries at once, for tests.
var fast = queue.WorkerConfig{Concurrency: 4, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
