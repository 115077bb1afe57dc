package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goherd/herd/internal/powercut"
	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
)

// The power cut at random moments under a queue's server while jobs are
// enqueued one by one and in batches, and workers store their outcomes:
// after each restart, every enqueue the server acknowledged is there, and
// every outcome a watch saw stored is still the job's. The file system
// under the server keeps only what was synced, folders' entries included.
// With a sync interval, what was written since the start is lost, as
// documented, which shows that the test sees a loss when there is one.
func TestPowerCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  nodeConfig // the server's, in a process of its own; without Listen, herd's process serves its own folder
		cuts int
	}{
		{"server", nodeConfig{Name: "herd"}, 4},
		{"in-process", nodeConfig{}, 4},
		{"server-sync-interval", nodeConfig{Name: "herd", SyncInterval: 2 * time.Second}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lost := cutPower(t, tc.cfg, tc.cuts)
			switch {
			case tc.cfg.SyncInterval == 0 && lost.any():
				t.Errorf("lost %s", lost)
			case tc.cfg.SyncInterval != 0 && !lost.any():
				t.Errorf("with a sync interval of %v, nothing was lost: the cut did not cut", tc.cfg.SyncInterval)
			default:
				t.Logf("lost %s", lost)
			}
		})
	}
}

// loss counts what the power cuts lost.
type loss struct {
	enqueues, ofEnqueues int // acknowledged enqueues lost, of so many
	outcomes, ofOutcomes int // stored outcomes lost, of so many
}

func (l loss) any() bool { return l.enqueues+l.outcomes > 0 }

func (l loss) String() string {
	return fmt.Sprintf("%d of %d acknowledged enqueues and %d of %d stored outcomes", l.enqueues, l.ofEnqueues, l.outcomes, l.ofOutcomes)
}

// cutPower runs the queue that cfg says on a power-cut file system, cuts
// the power cuts times under load, and returns what was lost, checked
// after each cut.
func cutPower(t *testing.T, cfg nodeConfig, cuts int) loss {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	random := rand.New(rand.NewPCG(seed, seed))
	cfg.Dir = t.TempDir()
	disk, err := powercut.Mount(cfg.Dir, t.TempDir())
	if err != nil {
		testutil.Need(t, "HERD_FUSE", fmt.Sprintf("%v (the test needs FUSE: /dev/fuse, and root or fusermount3)", err))
	}
	t.Cleanup(func() {
		if err := disk.Unmount(); err != nil {
			t.Error(err)
		}
	})
	target := cfg.Dir
	if cfg.Name != "" {
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
		target = "nats://" + cfg.Listen
	}
	var (
		acked, stored []string
		l             loss
	)
	for cut := range cuts {
		var server *exec.Cmd
		if cfg.Name != "" {
			server = startNode(t, cfg)
			openWhenUp(t, cfg.Listen).Close()
		}
		seen := map[string]bool{}
		for _, id := range stored {
			seen[id] = true
		}
		a, s := load(t, target, fmt.Sprintf("c%d", cut), seen, time.Duration(300+random.IntN(1500))*time.Millisecond, server)
		if err := disk.Cut(); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, a...)
		stored = slices.Compact(slices.Sorted(slices.Values(append(stored, s...)))) // a watch sees each job again
		t.Logf("cut %d: %d enqueues acknowledged in this round, %d outcomes seen stored in all rounds", cut+1, len(a), len(stored))
		if l = lost(t, cfg, acked, stored); l.any() {
			break
		}
	}
	return l
}

// powerLoad is the process of TestPowerCut that enqueues and runs jobs on
// the queue at target, a URL or a folder, until it is killed: on standard
// output, it says "e ID" for each enqueue acknowledged, and "s ID" for each
// job a watch saw succeeded. Job ids start with prefix.
func powerLoad(target, prefix string) {
	cfg := queue.Config{URL: target}
	if !strings.Contains(target, "://") {
		cfg = queue.Config{Dir: target}
	}
	ctx := context.Background()
	c, err := queue.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	say := func(what, id string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s %s\n", what, id) // unbuffered: out before the next enqueue
	}
	watcher, err := c.Watch(ctx, "*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		for info := range watcher.Updates() {
			if info.State == queue.Succeeded {
				say("s", info.ID)
			}
		}
	}()
	w, err := c.NewWorker(queue.WorkerConfig{Concurrency: 4})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w.Handle("cut", func(context.Context, *queue.Job) ([]byte, error) { return []byte("done"), nil })
	go w.Run(ctx)
	payload := make([]byte, 300)
	for g := range 3 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-%d-%d", prefix, g, i)
				if _, err := c.Enqueue(ctx, "cut", payload, queue.Options{ID: id}); err == nil {
					say("e", id)
				}
			}
		}()
	}
	go func() {
		for i := 0; ; i++ {
			batch := make([]queue.NewJob, 10)
			for j := range batch {
				batch[j] = queue.NewJob{Kind: "cut", Payload: payload, Options: queue.Options{ID: fmt.Sprintf("%s-b%d-%d", prefix, i, j)}}
			}
			if ids, err := c.EnqueueBatch(ctx, batch); err == nil {
				for _, id := range ids {
					say("e", id)
				}
			}
		}
	}()
	select {}
}

// load runs powerLoad on target until at least 50 enqueues were
// acknowledged and 10 jobs not in seen were seen succeeded, and then for d, kills it and server (if not nil) at the
// same instant, and returns the jobs whose enqueue was acknowledged and
// those seen succeeded.
func load(t *testing.T, target, prefix string, seen map[string]bool, d time.Duration, server *exec.Cmd) (acked, stored []string) {
	t.Helper()
	cmd, out := startPiped(t, "HERD_QUEUE_TEST_POWER="+target, "HERD_QUEUE_TEST_PREFIX="+prefix)
	var mu sync.Mutex
	read := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			what, id, _ := strings.Cut(sc.Text(), " ")
			mu.Lock()
			switch what {
			case "e":
				acked = append(acked, id)
			case "s":
				stored = append(stored, id)
			}
			mu.Unlock()
		}
		read <- sc.Err()
	}()
	// The cut comes while jobs are enqueued and run, and their outcomes
	// stored: once outcomes not seen before have begun to come.
	testutil.Eventually(t, "50 enqueues acknowledged and 10 outcomes seen", func() bool {
		select {
		case err := <-read:
			t.Fatalf("the process enqueueing jobs ended: %v, %v", cmd.Wait(), err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		fresh := map[string]bool{}
		for _, id := range stored {
			if !seen[id] {
				fresh[id] = true
			}
		}
		return len(acked) >= 50 && len(fresh) >= 10
	})
	time.Sleep(d)
	for _, p := range []*exec.Cmd{cmd, server} {
		if p != nil {
			p.Process.Kill()
		}
	}
	err := <-read // the output's end: read before Wait closes the pipe
	for _, p := range []*exec.Cmd{cmd, server} {
		if p != nil {
			p.Wait()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return acked, stored
}

// lost starts the queue, checks that the jobs acked are on it and that
// those of stored succeeded, stops it, and returns what is not there.
func lost(t *testing.T, cfg nodeConfig, acked, stored []string) loss {
	t.Helper()
	var c *queue.Client
	if cfg.Name != "" {
		server := startNode(t, cfg)
		defer func() {
			server.Process.Kill()
			server.Wait()
		}()
		c = openWhenUp(t, cfg.Listen)
	} else {
		var err error
		if c, err = queue.Open(t.Context(), queue.Config{Dir: cfg.Dir}); err != nil {
			t.Fatal(err)
		}
	}
	defer c.Close()
	l := loss{ofEnqueues: len(acked), ofOutcomes: len(stored)}
	infos := map[string]*queue.Info{}
	ids := slices.Compact(slices.Sorted(slices.Values(slices.Concat(acked, stored)))) // most stored ones were acked too
	for batch := range slices.Chunk(ids, 500) {
		m, err := c.Infos(t.Context(), batch)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(infos, m)
	}
	for _, id := range acked {
		if infos[id] == nil {
			if l.enqueues++; l.enqueues <= 3 {
				t.Logf("job %s: enqueued, acknowledged, gone", id)
			}
		}
	}
	for _, id := range stored {
		if info := infos[id]; info == nil || info.State != queue.Succeeded {
			if l.outcomes++; l.outcomes <= 3 {
				t.Logf("job %s: seen succeeded, now %+v", id, info)
			}
		}
	}
	return l
}

// openWhenUp opens a client of the server at listen once it answers.
func openWhenUp(t *testing.T, listen string) *queue.Client {
	t.Helper()
	var c *queue.Client
	testutil.EventuallyNil(t, "the server to answer", func() (err error) {
		c, err = queue.Open(t.Context(), queue.Config{URL: "nats://" + listen})
		return err
	})
	return c
}
