package queue

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Each running Worker says what it is doing, every heartbeatEvery, in a
// bucket kept in memory whose values expire after workerTTL: a worker
// that stops saying so is gone from the list within that time. Nothing
// there needs to survive a restart of the server, so none of it is
// written to disk. The same bucket carries requests to a worker (drain,
// resume) under "ctl.<worker id>", which the worker reads at each
// heartbeat.
const (
	workersBucket  = "HERD_WORKERS"
	heartbeatEvery = 5 * time.Second
	workerTTL      = 4 * heartbeatEvery
	ctlPrefix      = "ctl."
)

// WorkerInfo is what a running [Worker] tells the queue of itself, as
// [Client.Workers] returns it.
type WorkerInfo struct {
	ID          string       `json:"id"` // host-pid-random: unique among running workers
	Host        string       `json:"host"`
	PID         int          `json:"pid"`
	Queues      []string     `json:"queues"`
	Concurrency int          `json:"concurrency"`
	Started     time.Time    `json:"started"`
	Seen        time.Time    `json:"seen"` // its last heartbeat
	Draining    bool         `json:"draining,omitempty"`
	Done        uint64       `json:"done"` // jobs it finished
	Running     []RunningJob `json:"running,omitempty"`
	// Held are the jobs it has taken and holds until their queue's
	// limits let them start (see [Client.SetLimits]).
	Held []RunningJob `json:"held,omitempty"`
	// Ahead counts, by queue, the jobs it has taken ahead of a free slot
	// of its own (it takes up to twice its Concurrency, so that a job
	// starts the moment one ends): they start next.
	Ahead map[string]int `json:"ahead,omitempty"`
}

// RunningJob is a job in a worker's hands.
type RunningJob struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	Queue string    `json:"queue"`
	Since time.Time `json:"since"`
}

// Workers returns the workers running now, by host and id. A worker that
// died is listed for up to 20 seconds after its last heartbeat.
func (c *Client) Workers(ctx context.Context) ([]WorkerInfo, error) {
	kv, err := c.workersKV(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: workers: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: workers: %w", err)
	}
	var out []WorkerInfo
	for key := range lister.Keys() {
		if strings.HasPrefix(key, ctlPrefix) {
			continue
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // gone meanwhile
		}
		var wi WorkerInfo
		if json.Unmarshal(e.Value(), &wi) == nil {
			out = append(out, wi)
		}
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Drain asks the worker with the given id to take no new jobs, or with
// drain false to take them again. Its running jobs go on. The worker
// acts on it within 5 seconds, and says it is draining in
// [Client.Workers]; a worker that restarts takes jobs again.
func (c *Client) Drain(ctx context.Context, id string, drain bool) error {
	if !validID(id) {
		return fmt.Errorf("queue: drain %q: %w", id, ErrNotFound)
	}
	kv, err := c.workersKV(ctx)
	if err != nil {
		return fmt.Errorf("queue: drain %s: %w", id, err)
	}
	if _, err := kv.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("queue: drain %s: %w: no such worker", id, ErrNotFound)
	}
	if _, err := kv.Put(ctx, ctlPrefix+id, []byte(strconv.FormatBool(drain))); err != nil {
		return fmt.Errorf("queue: drain %s: %w", id, err)
	}
	return nil
}

// workersKV returns the bucket of the workers' heartbeats, creating it
// the first time.
func (c *Client) workersKV(ctx context.Context) (jetstream.KeyValue, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.workers != nil {
		return c.workers, nil
	}
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      workersBucket,
		Description: "what herd's running workers are doing",
		Storage:     jetstream.MemoryStorage,
		Replicas:    c.stream.CachedInfo().Config.Replicas,
		TTL:         workerTTL,
		History:     1,
	})
	if err != nil {
		return nil, err
	}
	c.workers = kv
	return kv, nil
}

// presence is a worker's side of its heartbeat.
type presence struct {
	info     WorkerInfo
	draining atomic.Bool   // the last drain request read
	changed  chan struct{} // told when draining changes
}

func newPresence(cfg WorkerConfig) *presence {
	host, _ := os.Hostname()
	var b [3]byte
	rand.Read(b[:])
	id := fmt.Sprintf("%s-%d-%x", keySafe(host), os.Getpid(), b)
	return &presence{
		info: WorkerInfo{
			ID: id, Host: host, PID: os.Getpid(), Queues: cfg.Queues,
			Concurrency: cfg.Concurrency, Started: time.Now(),
		},
		changed: make(chan struct{}, 1),
	}
}

// keySafe replaces what a key may not hold with '_'.
func keySafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// beat says what the worker does every heartbeatEvery until ctx is done,
// then says it is gone. A server that does not answer is not an error:
// the worker is listed again when it does.
func (w *Worker) beat(ctx context.Context, p *presence, done func() uint64, held func() []RunningJob, ahead *ahead) {
	kv, err := w.c.workersKV(ctx)
	if err != nil {
		w.c.log.Warn("queue: worker: no heartbeat bucket; the worker is not listed", "error", err)
		return
	}
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if e, err := kv.Get(ctx, ctlPrefix+p.info.ID); err == nil {
			if d, err := strconv.ParseBool(string(e.Value())); err == nil && p.draining.Swap(d) != d {
				select {
				case p.changed <- struct{}{}:
				default:
				}
			}
		}
		p.info.Seen, p.info.Draining, p.info.Done = time.Now(), p.draining.Load(), done()
		p.info.Running, p.info.Held, p.info.Ahead = w.cancels.inHand(), held(), ahead.counts()
		if b, err := json.Marshal(p.info); err == nil {
			kv.Put(ctx, p.info.ID, b)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			kv.Purge(ctx, p.info.ID)
			kv.Purge(ctx, ctlPrefix+p.info.ID)
			return
		}
	}
}

// inHand lists the jobs a worker holds now, oldest first.
func (cs *cancels) inHand() []RunningJob {
	cs.mu.Lock()
	jobs := make([]RunningJob, 0, len(cs.running))
	for _, r := range cs.running {
		jobs = append(jobs, r.job)
	}
	cs.mu.Unlock()
	slices.SortFunc(jobs, func(a, b RunningJob) int { return a.Since.Compare(b.Since) })
	return jobs
}

// ahead counts, by queue, the jobs a worker has taken that wait for one of
// its slots.
type ahead struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *ahead) add(queue string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	if a.n[queue] += n; a.n[queue] == 0 {
		delete(a.n, queue)
	}
}

func (a *ahead) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.n)
}
