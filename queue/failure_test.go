package queue_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// A worker process killed outright mid-job loses nothing: the job goes to
// another worker when its lease runs out.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	ns := startServer(t, embedded.Config{})
	c := open(t, queue.Config{URL: ns.ClientURL()})
	id, err := c.Enqueue(t.Context(), "job", nil, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "started")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HERD_QUEUE_TEST_WORKER="+ns.ClientURL(), "HERD_QUEUE_TEST_MARKER="+marker)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testutil.Eventually(t, "the worker process to start the job", func() bool {
		b, err := os.ReadFile(marker)
		return err == nil && string(b) == id
	})
	cmd.Process.Kill() // SIGKILL: no chance to hand the job back
	cmd.Wait()
	if info, _ := c.Info(t.Context(), id); info.State != queue.Running {
		t.Fatalf("job after the kill = %+v, want still running", info)
	}

	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 1, Lease: time.Second}, map[string]queue.Handler{
		"job": func(context.Context, *queue.Job) ([]byte, error) { return []byte("finished elsewhere"), nil },
	})
	info := wait(t, c, id)
	if info.State != queue.Succeeded || info.Attempts != 2 || string(info.Result) != "finished elsewhere" {
		t.Errorf("job = %+v, want succeeded on its second attempt", info)
	}
}

// Stopping the embedded server mid-run and starting it again on the same
// folder loses no job whose enqueue returned.
func TestEmbeddedServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := queue.Config{Dir: dir}
	c1, err := queue.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := c1.NewWorker(queue.WorkerConfig{Concurrency: 2, Lease: time.Second})
	w1.Handle("job", func(context.Context, *queue.Job) ([]byte, error) {
		time.Sleep(2 * time.Millisecond)
		return nil, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { w1.Run(ctx) })

	var accepted []string
	for i := 0; ; i++ {
		id := fmt.Sprint("job-", i)
		if _, err := c1.Enqueue(t.Context(), "job", nil, queue.Options{ID: id}); err != nil {
			break
		}
		accepted = append(accepted, id)
		if i == 200 {
			wg.Go(func() { c1.Close() }) // the server stops while enqueues and jobs are under way
		}
		if i > 5000 {
			t.Fatal("enqueues kept succeeding after the server stopped")
		}
	}
	cancel()
	wg.Wait()

	c2 := open(t, cfg)
	queuetest.Work(t, c2, queue.WorkerConfig{Concurrency: 4, Lease: time.Second}, map[string]queue.Handler{
		"job": func(context.Context, *queue.Job) ([]byte, error) { return nil, nil },
	})
	for _, id := range accepted {
		if info := wait(t, c2, id); info.State != queue.Succeeded {
			t.Errorf("job %s = %+v, want succeeded", id, info)
		}
	}
	t.Logf("%d acknowledged enqueues, all succeeded after the restart", len(accepted))
}

// A process with the queue embedded, killed outright while eight
// goroutines enqueue and a worker runs jobs, loses nothing and runs
// nothing twice: after a restart on its folder, every job whose enqueue
// returned is there once and runs, and no job whose outcome was stored
// runs again, though its acknowledgement may have been lost.
func TestKilledWhileBusy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd, out := startPiped(t, "HERD_QUEUE_TEST_BUSY="+dir)
	payloads := map[string]string{} // by id, of the enqueues that returned
	done := map[string]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() && (len(payloads) < 3000 || len(done) < 1000) {
		switch f := strings.Fields(lines.Text()); f[0] {
		case "enqueued":
			payloads[f[1]] = f[2]
		case "done":
			done[f[1]] = true
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(payloads) < 3000 {
		t.Fatalf("the busy process ended early, after %d enqueues", len(payloads))
	}

	c := open(t, queue.Config{Dir: dir})
	var mu sync.Mutex
	ran := map[string]int{} // runs by payload, after the restart
	var again []string
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 4}, map[string]queue.Handler{
		"job": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			ran[string(j.Payload)]++
			if done[j.ID] {
				again = append(again, j.ID)
			}
			return nil, nil
		},
	})
	for id := range payloads {
		if info := wait(t, c, id); info.State != queue.Succeeded {
			t.Errorf("job %s after the restart = %+v, want succeeded", id, info)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(again) > 0 {
		t.Errorf("%d jobs whose outcome was stored ran again after the restart: %v", len(again), again[:min(len(again), 5)])
	}
	for p, n := range ran {
		if n > 1 {
			t.Errorf("job %s ran %d times after the restart, want once", p, n)
		}
	}
	t.Logf("killed after %d enqueues and %d outcomes; %d jobs ran after the restart", len(payloads), len(done), len(ran))
}

// A three-node cluster on loopback, each node its own process, with jobs
// kept on all three, finishes a run when one node is killed outright
// mid-run, losing nothing.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	c, nodes, _ := startCluster(t)

	var ids []string
	for i := range 300 {
		id, err := c.Enqueue(t.Context(), "job", fmt.Append(nil, i), queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 4, Lease: 2 * time.Second}, map[string]queue.Handler{
		"job": func(_ context.Context, j *queue.Job) ([]byte, error) {
			time.Sleep(5 * time.Millisecond)
			return j.Payload, nil
		},
	})
	// Kill a node outright once the run is under way.
	wait(t, c, ids[50])
	if err := nodes[1].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		info := wait(t, c, id)
		if info.State != queue.Succeeded || string(info.Result) != fmt.Sprint(i) {
			t.Errorf("job %d = %+v, want succeeded with its own result", i, info)
		}
	}
}

// startCluster starts a three-node cluster on loopback, each node n0, n1,
// n2 a process of its own, and opens a client that keeps jobs on all
// three. It returns the nodes and their client URLs.
func startCluster(t *testing.T) (*queue.Client, []*exec.Cmd, []string) {
	t.Helper()
	ports := testutil.FreePorts(t, 6)
	var routes, urls []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var nodes []*exec.Cmd
	for i := range 3 {
		nodes = append(nodes, startNode(t, nodeConfig{
			Name:    fmt.Sprint("n", i),
			Listen:  fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Dir:     t.TempDir(),
			Cluster: queue.ClusterConfig{Name: "herd-test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), Routes: routes},
		}))
	}
	// The cluster elects its JetStream leader in a few seconds.
	var c *queue.Client
	testutil.EventuallyNil(t, "the cluster to be ready", func() (err error) {
		c, err = queue.Open(t.Context(), queue.Config{URL: strings.Join(urls, ","), Replicas: 3})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c, nodes, urls
}

// assertRefused checks that Open with each configuration is refused with
// a clear authorization error.
func assertRefused(t *testing.T, cfgs ...queue.Config) {
	t.Helper()
	for _, cfg := range cfgs {
		c, err := queue.Open(t.Context(), cfg)
		if err == nil {
			c.Close()
			t.Errorf("Open(%+v) = nil error, want access refused", cfg)
			continue
		}
		if !strings.Contains(err.Error(), "queue: open") || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("Open(%+v) = %v, want a clear authorization error", cfg, err)
		}
	}
}

// With credentials configured, wrong or missing ones get a clear error and
// no access.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	ns := startServer(t, embedded.Config{User: "herd", Password: "s3cret"})
	assertRefused(t,
		queue.Config{URL: ns.ClientURL()},
		queue.Config{URL: ns.ClientURL(), User: "herd", Password: "wrong"},
		queue.Config{URL: ns.ClientURL(), Token: "guess"},
	)
	c := open(t, queue.Config{URL: ns.ClientURL(), User: "herd", Password: "s3cret"})
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{}); err != nil {
		t.Errorf("Enqueue with the right password: %v", err)
	}
}

// With decentralized (JWT) authentication, a credentials file signed by an
// account the server trusts gives access; one signed by another account is
// refused with a clear error.
func TestCredsFile(t *testing.T) {
	t.Parallel()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	key := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
		t.Helper()
		kp, err := create()
		if err != nil {
			t.Fatal(err)
		}
		return kp, must(kp.PublicKey())
	}
	operator, operatorPub := key(nkeys.CreateOperator)
	operatorClaims := jwt.NewOperatorClaims(operatorPub)
	operatorClaims.Name = "herd-test"
	must(operatorClaims.Encode(operator))
	_, systemPub := key(nkeys.CreateAccount)
	account, accountPub := key(nkeys.CreateAccount)
	stranger, _ := key(nkeys.CreateAccount)

	resolver := &server.MemAccResolver{}
	system := jwt.NewAccountClaims(systemPub)
	resolver.Store(systemPub, must(system.Encode(operator)))
	acc := jwt.NewAccountClaims(accountPub)
	acc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	resolver.Store(accountPub, must(acc.Encode(operator)))

	creds := func(name string, signer nkeys.KeyPair) string {
		user, userPub := key(nkeys.CreateUser)
		token := must(jwt.NewUserClaims(userPub).Encode(signer))
		seed, err := user.Seed()
		if err != nil {
			t.Fatal(err)
		}
		file, err := jwt.FormatUserConfig(token, seed)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good, bad := creds("good.creds", account), creds("bad.creds", stranger)

	ns := startServer(t, embedded.Config{Tune: func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{operatorClaims}
		o.SystemAccount = systemPub
		o.AccountResolver = resolver
	}})
	c := open(t, queue.Config{URL: ns.ClientURL(), CredsFile: good})
	id, err := c.Enqueue(t.Context(), "k", []byte("x"), queue.Options{})
	if err != nil {
		t.Fatalf("Enqueue with good credentials: %v", err)
	}
	if info, err := c.Info(t.Context(), id); err != nil || info.State != queue.Queued {
		t.Errorf("Info(%s) = %+v, %v; want queued", id, info, err)
	}
	assertRefused(t, queue.Config{URL: ns.ClientURL(), CredsFile: bad}, queue.Config{URL: ns.ClientURL()})
}

// With TLS, a client that trusts the server's certificate works, and one
// that does not is refused with a clear error.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, roots := testutil.SelfSigned(t)
	ns := startServer(t, embedded.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	url := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)

	c := open(t, queue.Config{URL: url, TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	if _, err := c.Enqueue(t.Context(), "k", nil, queue.Options{}); err != nil {
		t.Errorf("Enqueue over TLS: %v", err)
	}
	untrusting, err := queue.Open(t.Context(), queue.Config{URL: url, TLS: &tls.Config{MinVersion: tls.VersionTLS12}})
	if err == nil {
		untrusting.Close()
		t.Fatal("Open with a client that does not trust the certificate = nil error")
	}
	if !strings.Contains(err.Error(), "queue: open") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open without trust = %v, want a clear certificate error", err)
	}
}

// A queue whose storage is full refuses enqueues with ErrFull, said once
// for a batch however many jobs it has.
func TestFull(t *testing.T) {
	t.Parallel()
	c := open(t, queue.Config{Dir: t.TempDir(), MaxStore: 1 << 20})
	payload := make([]byte, 10<<10)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		_, err = c.Enqueue(t.Context(), "job", payload, queue.Options{})
	}
	if !errors.Is(err, queue.ErrFull) {
		t.Fatalf("enqueueing 2MB into a 1MB store: %v, want ErrFull", err)
	}
	jobs := make([]queue.NewJob, 50)
	for i := range jobs {
		jobs[i] = queue.NewJob{Kind: "job", Payload: payload}
	}
	_, err = c.EnqueueBatch(t.Context(), jobs)
	if !errors.Is(err, queue.ErrFull) || strings.Count(err.Error(), "\n") > 0 || !strings.Contains(err.Error(), "50 of 50 jobs") {
		t.Errorf("EnqueueBatch into a full store: %v, want one line saying 50 of 50 jobs, wrapping ErrFull", err)
	}
}

// A data folder damaged while the server was down (its block of jobs cut
// in half): the server says so in the queue's log when it starts again,
// and Lost names every job that is gone, so that nothing waits for them.
func TestDamagedStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := queue.Open(t.Context(), queue.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 200 {
		id, err := c.Enqueue(t.Context(), "job", []byte("a payload of a few bytes"), queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c.Close()
	testutil.CutJobs(t, dir)

	var log testutil.Buffer
	c = open(t, queue.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if !strings.Contains(log.String(), "nats-server: Filestore [HERD]") {
		t.Errorf("the server said nothing of the damage; the log:\n%s", log.String())
	}
	lost, err := c.Lost(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waiting := 0
	for _, q := range st.Queues {
		waiting += int(q.Waiting)
	}
	if len(lost) == 0 || len(lost)+waiting != len(ids) {
		t.Errorf("%d jobs lost and %d waiting, want some lost and %d in all", len(lost), waiting, len(ids))
	}
	for _, id := range lost {
		if _, err := c.Info(t.Context(), id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Lost named %s, whose info is %v", id, err)
		}
	}
}

// A queue server in a process of its own, killed outright while a worker
// runs its jobs and started again on the same folder and port: every job
// succeeds, and no job runs again once its outcome was stored (seen by a
// watch), though acknowledgements are lost with the server.
func TestServerKilledUnderWorkers(t *testing.T) {
	// Not in parallel with the other tests: with three other tests of this
	// package and four of cmd/herd beside it, on two cores, it once saw 12
	// jobs run again after a watch had seen their outcomes stored (the
	// server killed just after). Until that is understood, it runs alone.
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
	dir := t.TempDir()
	serve := func() *exec.Cmd { return startNode(t, nodeConfig{Name: "herd", Listen: listen, Dir: dir}) }
	server := serve()
	var c *queue.Client
	testutil.EventuallyNil(t, "the server to answer", func() (err error) {
		c, err = queue.Open(t.Context(), queue.Config{URL: "nats://" + listen})
		return err
	})
	t.Cleanup(func() { c.Close() })

	const n = 2000
	jobs := make([]queue.NewJob, n)
	for i := range jobs {
		jobs[i] = queue.NewJob{Kind: "job", Payload: fmt.Append(nil, i)}
	}
	ids, err := c.EnqueueBatch(t.Context(), jobs)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	stored := map[string]time.Time{}   // when a watch first saw the job succeeded
	starts := map[string][]time.Time{} // each run's start
	watchCtx, stopWatch := context.WithCancel(t.Context())
	watcher, err := c.Watch(watchCtx, "*")
	if err != nil {
		t.Fatal(err)
	}
	var watching sync.WaitGroup
	watching.Go(func() {
		for info := range watcher.Updates() {
			mu.Lock()
			if _, ok := stored[info.ID]; !ok && info.State == queue.Succeeded {
				stored[info.ID] = time.Now()
			}
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		stopWatch()
		watcher.Stop()
		watching.Wait()
	})
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 8, Lease: 2 * time.Second}, map[string]queue.Handler{
		"job": func(_ context.Context, j *queue.Job) ([]byte, error) {
			mu.Lock()
			starts[j.ID] = append(starts[j.ID], time.Now())
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			return nil, nil
		},
	})
	testutil.Eventually(t, "a third of the jobs to be done", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(stored) >= n/3
	})
	server.Process.Kill()
	server.Wait()
	time.Sleep(500 * time.Millisecond)
	serve()

	for _, id := range ids {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		info, err := c.Wait(ctx, id)
		cancel()
		if err != nil || info.State != queue.Succeeded {
			t.Fatalf("job %s after the restart: %+v, %v; want succeeded", id, info, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	again := 0
	for id, runs := range starts {
		if len(runs) > 1 && !stored[id].IsZero() && stored[id].Before(runs[len(runs)-1]) {
			again++
			if again <= 5 {
				t.Errorf("job %s ran again at %v, after its outcome was seen stored at %v", id, runs[len(runs)-1].Format(time.StampMicro), stored[id].Format(time.StampMicro))
			}
		}
	}
	if again > 0 {
		t.Errorf("%d jobs ran again after their outcome was stored", again)
	}
	twice := 0
	for _, runs := range starts {
		if len(runs) > 1 {
			twice++
		}
	}
	t.Logf("%d jobs done when the server was killed; %d ran more than once (their outcome not stored before the kill)", n/3, twice)
}

// On a cluster, a job is found the moment its enqueue returns, though a
// replica that answers a read may not have it yet; a job never enqueued
// is not found.
func TestInfoRightAfterEnqueueOnACluster(t *testing.T) {
	t.Parallel()
	c, _, _ := startCluster(t)
	ctx := t.Context()
	for i := range 300 {
		id := fmt.Sprintf("j%d", i)
		if _, err := c.Enqueue(ctx, "step", nil, queue.Options{ID: id, Queue: "nobody-serves"}); err != nil {
			t.Fatal(err)
		}
		if info, err := c.Info(ctx, id); err != nil || info.State != queue.Queued {
			t.Fatalf("Info(%s) right after its enqueue = %+v, %v; want it queued", id, info, err)
		}
	}
	if _, err := c.Info(ctx, "never"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Info of a job never enqueued = %v, want ErrNotFound", err)
	}
}
