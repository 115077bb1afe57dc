package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// recorder is a handler that notes the order jobs ran in, and fails the
// jobs whose payload says "fail".
type recorder struct {
	mu     sync.Mutex
	ran    []string // the jobs' payloads
	mended bool     // "fail" succeeds
}

func (r *recorder) handle(_ context.Context, j *queue.Job) ([]byte, error) {
	r.mu.Lock()
	r.ran = append(r.ran, string(j.Payload))
	mended := r.mended
	r.mu.Unlock()
	if string(j.Payload) == "fail" && !mended {
		return nil, queue.Permanent(errors.New("told to fail"))
	}
	return []byte("result of " + j.ID + " after " + strings.Join(j.Parents, ",")), nil
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func TestGraphDiamond(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	r := new(recorder)
	queuetest.Work(t, c, fast, map[string]queue.Handler{"step": r.handle})
	var g queue.Graph
	job := func(name string) queue.NewJob { return queue.NewJob{Kind: "step", Payload: []byte(name)} }
	g.Add("top", job("top"))
	g.Add("left", job("left"), "top")
	g.Add("right", job("right"), "top")
	g.Add("bottom", job("bottom"), "left", "right")
	ids, err := c.EnqueueGraph(t.Context(), &g)
	if err != nil {
		t.Fatal(err)
	}
	bottom := wait(t, c, ids["bottom"])
	if bottom.State != queue.Succeeded {
		t.Fatalf("bottom = %+v, want succeeded", bottom)
	}
	if want := "after " + ids["left"] + "," + ids["right"]; !strings.HasSuffix(string(bottom.Result), want) {
		t.Errorf("bottom's result %q: its job did not name its parents (%s)", bottom.Result, want)
	}
	order := r.order()
	if len(order) != 4 || order[0] != "top" || order[3] != "bottom" {
		t.Errorf("ran %q: want top first, bottom last, each once", order)
	}
	infos, err := c.Infos(t.Context(), []string{ids["top"], ids["left"], ids["right"], ids["bottom"]})
	if err != nil || len(infos) != 4 {
		t.Fatalf("Infos = %v, %v", infos, err)
	}
	for name, id := range ids {
		if infos[id].State != queue.Succeeded {
			t.Errorf("%s is %s, want succeeded", name, infos[id].State)
		}
	}
}

func TestGraphRefusedWhole(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	job := queue.NewJob{Kind: "step"}
	for _, tc := range []struct {
		name  string
		build func(g *queue.Graph)
		want  string
	}{
		{"cycle", func(g *queue.Graph) {
			g.Add("a", job, "c")
			g.Add("b", job, "a")
			g.Add("c", job, "b")
			g.Add("d", job)
		}, "cycle"},
		{"self", func(g *queue.Graph) { g.Add("a", job, "a") }, "itself"},
		{"unknown parent", func(g *queue.Graph) { g.Add("a", job); g.Add("b", job, "nope") }, "not in the graph"},
		{"duplicate", func(g *queue.Graph) { g.Add("a", job); g.Add("a", job) }, "two jobs"},
		{"parent not in the queue", func(g *queue.Graph) {
			j := job
			j.Options.After = []string{"no-such-job"}
			g.Add("a", queue.NewJob{Kind: "step", Options: queue.Options{ID: "root"}})
			g.Add("b", j, "a")
		}, "no-such-job"},
	} {
		var g queue.Graph
		tc.build(&g)
		_, err := c.EnqueueGraph(t.Context(), &g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: EnqueueGraph = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// Nothing of the refused graphs was stored.
	if _, err := c.Info(t.Context(), "root"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("a job of a refused graph was stored: %v", err)
	}
	st, err := c.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range st.Queues {
		if q.Waiting > 0 {
			t.Errorf("queue %s holds jobs of refused graphs: %+v", q.Queue, q)
		}
	}
	if page, err := c.Jobs(t.Context(), queue.JobQuery{State: queue.Pending}); err != nil || len(page.Jobs) > 0 {
		t.Errorf("jobs of refused graphs wait for their parents: %v, %v", page, err)
	}
}

func TestChainFailsThenRetried(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	r := new(recorder)
	queuetest.Work(t, c, fast, map[string]queue.Handler{"step": r.handle})
	var g queue.Graph
	g.Add("1", queue.NewJob{Kind: "step", Payload: []byte("1")})
	g.Add("2", queue.NewJob{Kind: "step", Payload: []byte("fail"), Options: queue.Options{ID: "middle", MaxAttempts: 1}}, "1")
	g.Add("3", queue.NewJob{Kind: "step", Payload: []byte("3")}, "2")
	g.Add("4", queue.NewJob{Kind: "step", Payload: []byte("4")}, "3")
	ids, err := c.EnqueueGraph(t.Context(), &g)
	if err != nil {
		t.Fatal(err)
	}
	last := wait(t, c, ids["4"])
	three, err := c.Info(t.Context(), ids["3"])
	if err != nil {
		t.Fatal(err)
	}
	if three.State != queue.Skipped || !slices.Equal(three.SkippedBy, []string{"middle"}) ||
		len(three.Errors) != 1 || !strings.Contains(three.Errors[0], "parent middle is dead: attempt 1: told to fail") {
		t.Errorf("3 = %s skipped by %q with errors %q; want skipped by middle, saying why", three.State, three.SkippedBy, three.Errors)
	}
	if last.State != queue.Skipped || !slices.Equal(last.SkippedBy, []string{ids["3"]}) {
		t.Errorf("4 = %s skipped by %q; want skipped by 3", last.State, last.SkippedBy)
	}
	page, err := c.Jobs(t.Context(), queue.JobQuery{State: queue.Skipped})
	if err != nil || len(page.Jobs) != 2 {
		t.Errorf("Jobs(skipped) = %v, %v; want 3 and 4", page, err)
	}
	if err := c.Retry(t.Context(), ids["3"]); err == nil || !strings.Contains(err.Error(), "retry that") {
		t.Errorf("Retry of a skipped job = %v, want an error naming its failed parent", err)
	}
	// The failed job is mended and retried: the rest of the chain runs.
	r.mu.Lock()
	r.ran, r.mended = nil, true
	r.mu.Unlock()
	if err := c.Retry(t.Context(), "middle"); err != nil {
		t.Fatal(err)
	}
	if last := wait(t, c, ids["4"]); last.State != queue.Succeeded {
		t.Errorf("after the retry, 4 = %+v; want succeeded", last)
	}
	if three, _ := c.Info(t.Context(), ids["3"]); three == nil || three.State != queue.Succeeded || len(three.SkippedBy) != 0 {
		t.Errorf("after the retry, 3 = %+v; want succeeded", three)
	}
	if order := r.order(); !slices.Equal(order, []string{"fail", "3", "4"}) {
		t.Errorf("after the retry, ran %q; want the rest of the chain, in order, once", order)
	}
}

func TestAfterJobsInTheQueue(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	r := new(recorder)
	// Parents first, with no worker: they wait; one is done before the
	// child is enqueued.
	var parents []string
	for i := range 5 {
		id, err := c.Enqueue(t.Context(), "step", fmt.Append(nil, i), queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, id)
	}
	child, err := c.Enqueue(t.Context(), "step", []byte("child"), queue.Options{After: parents})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(t.Context(), child); err != nil || info.State != queue.Pending || !slices.Equal(info.Parents, parents) {
		t.Fatalf("the child is %+v, %v; want waiting for its 5 parents", info, err)
	}
	queuetest.Work(t, c, fast, map[string]queue.Handler{"step": r.handle})
	if info := wait(t, c, child); info.State != queue.Succeeded {
		t.Fatalf("child = %+v, want succeeded", info)
	}
	if order := r.order(); len(order) != 6 || order[5] != "child" {
		t.Errorf("ran %q: want the child last, each once", order)
	}
	// A child of jobs that have all succeeded runs at once; of a dead
	// one, not at all.
	late, err := c.Enqueue(t.Context(), "step", []byte("late"), queue.Options{After: parents[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, late); info.State != queue.Succeeded {
		t.Errorf("a child of finished parents = %+v, want succeeded", info)
	}
	dead, err := c.Enqueue(t.Context(), "step", []byte("fail"), queue.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, dead)
	orphan, err := c.Enqueue(t.Context(), "step", []byte("orphan"), queue.Options{After: []string{parents[0], dead}})
	if err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, orphan); info.State != queue.Skipped || !slices.Equal(info.SkippedBy, []string{dead}) {
		t.Errorf("a child of a dead job = %+v, want skipped by it", info)
	}
}

func TestCancelWaitingJobSkipsItsChildren(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var g queue.Graph
	g.Add("a", queue.NewJob{Kind: "step"})
	g.Add("b", queue.NewJob{Kind: "step"}, "a")
	g.Add("c", queue.NewJob{Kind: "step"}, "b")
	ids, err := c.EnqueueGraph(t.Context(), &g)
	if err != nil {
		t.Fatal(err)
	}
	// The jobs waiting for their parents are counted, and listed, as such.
	pending := func(want int) {
		t.Helper()
		st, err := c.Stats(t.Context())
		if err != nil || st.Pending != uint64(want) || st.PendingIn["default"] != uint64(want) {
			t.Errorf("Stats: %+v, %v; want %d pending, in the default queue", st, err, want)
		}
		page, err := c.Jobs(t.Context(), queue.JobQuery{State: queue.Pending})
		if err != nil || len(page.Jobs) != want {
			t.Errorf("Jobs(pending) = %+v, %v; want %d", page, err, want)
		}
	}
	pending(2)
	if err := c.Cancel(t.Context(), ids["b"]); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(t.Context(), ids["c"]); err != nil || info.State != queue.Skipped || !strings.Contains(strings.Join(info.Errors, ""), "was cancelled") {
		t.Errorf("c = %+v, %v; want skipped, its parent cancelled", info, err)
	}
	pending(0)
	if page, err := c.Jobs(t.Context(), queue.JobQuery{State: queue.Skipped}); err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != ids["c"] {
		t.Errorf("Jobs(skipped) = %+v, %v; want c", page, err)
	}
	r := new(recorder)
	queuetest.Work(t, c, fast, map[string]queue.Handler{"step": r.handle})
	wait(t, c, ids["a"])
	if info, _ := c.Info(t.Context(), ids["b"]); info == nil || info.State != queue.Cancelled {
		t.Errorf("b = %+v after its parent succeeded; want it cancelled still", info)
	}
	if order := r.order(); len(order) != 1 {
		t.Errorf("ran %q, want only a", order)
	}
}

// A worker killed with kill -9 again and again, at random moments — while
// jobs run, between a parent's outcome and its children's release, in the
// middle of a release — never lets a job start before all its parents have
// ended, and never loses one: every job of the graph succeeds in the end.
func TestGraphWorkerKilled(t *testing.T) {
	t.Parallel()
	ns := startServer(t, embedded.Config{})
	c := open(t, queue.Config{URL: ns.ClientURL()})
	const layers, width = 5, 8
	parents := layeredGraph(t, c, 1, layers, width)
	rnd := rand.New(rand.NewPCG(5, 6)) // when the workers are killed
	log := filepath.Join(t.TempDir(), "log")
	last := fmt.Sprintf("l%d.", layers-1)
	kills := 0
	finished := func() bool {
		for i := range width {
			if info, err := c.Info(t.Context(), last+strconv.Itoa(i)); err != nil || !info.State.Finished() {
				return false
			}
		}
		return true
	}
	for !finished() {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HERD_QUEUE_TEST_FLOW="+ns.ClientURL(), "HERD_QUEUE_TEST_LOG="+log)
		cmd.Stderr = os.Stderr
		before := logSize(log)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed at a random moment once it has started a job: a busy
		// machine may take longer than the moment to start the process,
		// and the graph would then never get done.
		testutil.Eventually(t, "the worker to start a job", func() bool { return logSize(log) > before || finished() })
		time.Sleep(time.Duration(rnd.IntN(450)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		kills++
		if kills > 400 {
			t.Fatalf("the graph is not done after %d workers were killed", kills)
		}
	}
	t.Logf("%d workers killed", kills)

	ends := make(map[string]int) // line number of each job's first end
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for n, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		what, id, _ := strings.Cut(line, " ")
		switch what {
		case "end":
			if _, ok := ends[id]; !ok {
				ends[id] = n
			}
		case "start":
			for _, p := range parents[id] {
				if e, ok := ends[p]; !ok || e > n {
					t.Errorf("%s started before its parent %s ended", id, p)
				}
			}
		}
	}
	for name := range parents {
		if info, err := c.Info(t.Context(), name); err != nil || info.State != queue.Succeeded {
			t.Errorf("%s = %+v, %v; want succeeded", name, info, err)
		}
	}
}

// Ten thousand parents and one child: the child runs once, after all of
// them, and is told all their ids.
func TestFanIn10000(t *testing.T) {
	t.Parallel()
	c := queuetest.New(t)
	var mu sync.Mutex
	runs := make(map[string]int)
	var childStarted time.Time
	var lastParentEnd time.Time
	var childParents int
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 8}, map[string]queue.Handler{
		"part": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			runs[j.ID]++
			lastParentEnd = time.Now()
			return nil, nil
		},
		"merge": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			runs[j.ID]++
			childStarted, childParents = time.Now(), len(j.Parents)
			return nil, nil
		},
	})
	const n = 10_000
	var g queue.Graph
	parents := make([]string, n)
	for i := range parents {
		parents[i] = strconv.Itoa(i)
		g.Add(parents[i], queue.NewJob{Kind: "part"})
	}
	g.Add("merge", queue.NewJob{Kind: "merge"}, parents...)
	ids, err := c.EnqueueGraph(t.Context(), &g)
	if err != nil {
		t.Fatal(err)
	}
	if info := wait(t, c, ids["merge"]); info.State != queue.Succeeded {
		t.Fatalf("merge = %+v, want succeeded", info)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != n+1 {
		t.Errorf("%d jobs ran, want %d", len(runs), n+1)
	}
	for id, k := range runs {
		if k != 1 {
			t.Errorf("job %s ran %d times", id, k)
		}
	}
	if childParents != n {
		t.Errorf("merge was told %d parents, want %d", childParents, n)
	}
	if childStarted.Before(lastParentEnd) {
		t.Errorf("merge started before the last parent ended")
	}
}

// A graph on a three-node cluster whose stream leader is killed outright
// while the graph runs: every job runs after its parents have ended, and
// the graph finishes.
func TestGraphClusterLosesLeader(t *testing.T) {
	t.Parallel()
	c, nodes, urls := startCluster(t)
	var mu sync.Mutex
	started, ended := map[string]time.Time{}, map[string]time.Time{}
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 4, Lease: 2 * time.Second}, map[string]queue.Handler{
		"step": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			if _, ok := started[j.ID]; !ok {
				started[j.ID] = time.Now()
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			ended[j.ID] = time.Now()
			mu.Unlock()
			return nil, nil
		},
	})
	const width = 10
	parents := layeredGraph(t, c, 3, 6, width)
	// Kill the stream's leader once the second layer has run.
	for i := range width {
		wait(t, c, fmt.Sprintf("l1.%d", i))
	}
	leader := streamLeader(t, urls)
	var node int
	if _, err := fmt.Sscanf(leader, "n%d", &node); err != nil {
		t.Fatalf("leader %q: %v", leader, err)
	}
	if err := nodes[node].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the stream's leader", leader)
	for name := range parents {
		if info := wait(t, c, name); info.State != queue.Succeeded {
			t.Errorf("%s = %+v, want succeeded", name, info)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for name, ps := range parents {
		for _, p := range ps {
			if !started[name].After(ended[p]) {
				t.Errorf("%s started at %v, before its parent %s ended at %v", name, started[name], p, ended[p])
			}
		}
	}
}

// streamLeader returns the name of the node that leads the queue's stream.
func streamLeader(t *testing.T, urls []string) string {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "HERD")
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" {
		t.Fatalf("the stream has no leader: %+v", s.CachedInfo().Cluster)
	}
	return s.CachedInfo().Cluster.Leader
}

// layeredGraph enqueues a graph of jobs of the kind "step" in layers of
// width jobs, named (and with the ids) l<layer>.<i>, each job after the
// first layer waiting for 3 jobs of the layer before, chosen by seed. It
// returns each job's parents.
func layeredGraph(t *testing.T, c *queue.Client, seed uint64, layers, width int) map[string][]string {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	var g queue.Graph
	parents := make(map[string][]string)
	for l := range layers {
		for i := range width {
			name := fmt.Sprintf("l%d.%d", l, i)
			var after []string
			if l > 0 {
				for _, k := range rnd.Perm(width)[:3] {
					after = append(after, fmt.Sprintf("l%d.%d", l-1, k))
				}
			}
			parents[name] = after
			g.Add(name, queue.NewJob{Kind: "step", Options: queue.Options{ID: name}}, after...)
		}
	}
	if _, err := c.EnqueueGraph(t.Context(), &g); err != nil {
		t.Fatal(err)
	}
	return parents
}

// logSize is the size of the file at path, 0 if there is none.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
