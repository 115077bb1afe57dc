package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/goherd/herd/queue/queuetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A queue left by the earlier layout (a work-queue stream of jobs and a
// key-value bucket of records) is moved over when a client opens it: a
// waiting job runs, a finished job keeps its record, a job whose message
// was lost is put back from its record, and the old streams are gone.
func TestMigrateLayout1(t *testing.T) {
	t.Parallel()
	ns, js := rawJetStream(t)
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HERD_JOBS", Subjects: []string{"herd.jobs.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	state, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "HERD_STATE"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	record := func(id string, s queue.State, result string) []byte {
		b, _ := json.Marshal(queue.Info{ID: id, Kind: "k", Queue: "default", State: s, MaxAttempts: 25, Result: []byte(result), EnqueuedAt: now, UpdatedAt: now})
		return b
	}
	waiting := record("waiting", queue.Queued, "")
	if _, err := js.Publish(ctx, "herd.jobs.default.default", waiting); err != nil {
		t.Fatal(err)
	}
	for id, r := range map[string][]byte{
		"waiting":  waiting,
		"finished": record("finished", queue.Succeeded, "kept"),
		"lost":     record("lost", queue.Queued, ""), // its message is gone
	} {
		if _, err := state.Put(ctx, id, r); err != nil {
			t.Fatal(err)
		}
	}

	c := open(t, queue.Config{URL: ns.ClientURL()})
	for _, name := range []string{"HERD_JOBS", "KV_HERD_STATE"} {
		if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s after the move: %v, want gone", name, err)
		}
	}
	if info, err := c.Info(ctx, "finished"); err != nil || info.State != queue.Succeeded || string(info.Result) != "kept" {
		t.Errorf("finished job after the move = %+v, %v", info, err)
	}
	queuetest.Work(t, c, fast, map[string]queue.Handler{
		"k": func(context.Context, *queue.Job) ([]byte, error) { return []byte("ran"), nil },
	})
	for _, id := range []string{"waiting", "lost"} {
		if info := wait(t, c, id); info.State != queue.Succeeded || string(info.Result) != "ran" {
			t.Errorf("job %s after the move = %+v, want run", id, info)
		}
	}
	if st, err := c.Stats(ctx); err != nil || st.Queues[0].Waiting != 0 {
		t.Errorf("Stats after the move = %+v, %v", st, err)
	}
}

// A queue stream of a layout this herd does not know is refused with a
// message that says so, and left as it is.
func TestUnknownLayoutRefused(t *testing.T) {
	t.Parallel()
	ns, js := rawJetStream(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "HERD", Subjects: []string{"herd.job.>"}, Metadata: map[string]string{"herd.layout": "9"}}); err != nil {
		t.Fatal(err)
	}
	c, err := queue.Open(t.Context(), queue.Config{URL: ns.ClientURL()})
	if err == nil {
		c.Close()
		t.Fatal("Open of a queue in layout 9 = nil error")
	}
	if !strings.Contains(err.Error(), `layout "9"`) {
		t.Errorf("Open of a queue in layout 9 = %v, want an error naming the layout", err)
	}
}

// A queue of layout 2, which listed its dead jobs in a bucket, is moved to
// this layout when it opens: its dead jobs are counted, listed and retried
// as any, and the bucket is gone.
func TestLayout2DeadJobsMoved(t *testing.T) {
	t.Parallel()
	ns, js := rawJetStream(t)
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "HERD", Subjects: []string{"herd.job.>", "herd.rec.>"}, MaxMsgsPerSubject: 1, AllowDirect: true,
		AllowAtomicPublish: true, AllowMsgTTL: true, Metadata: map[string]string{"herd.layout": "2", "herd.retention": "168h0m0s"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := fmt.Sprintf(`{"id":"broken","kind":"k","queue":"media","priority":0,"payload":"eA==","state":"dead","attempts":3,"max_attempts":3,"errors":["attempt 3: no"],"enqueued_at":%q,"updated_at":%q}`,
		now.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	if _, err := js.Publish(ctx, "herd.rec.media.default.broken", []byte(rec)); err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "HERD_DEAD"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "broken", nil); err != nil {
		t.Fatal(err)
	}

	c, err := queue.Open(ctx, queue.Config{URL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 1 {
		t.Errorf("Stats after the move: dead %d, want 1", st.Dead)
	}
	dead, err := c.Dead(ctx)
	if err != nil || len(dead) != 1 || dead[0].ID != "broken" || dead[0].Errors[0] != "attempt 3: no" {
		t.Errorf("Dead after the move = %v, %v; want the job broken with its error", dead, err)
	}
	if _, err := js.KeyValue(ctx, "HERD_DEAD"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the bucket of layout 2 after the move: %v, want it gone", err)
	}
	s, err := js.Stream(ctx, "HERD")
	if err != nil || s.CachedInfo().Config.Metadata["herd.layout"] != "4" {
		t.Errorf("the stream after the move: %v, want layout 4", err)
	}
	if err := c.Retry(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Dead != 0 {
		t.Errorf("Stats after the retry: %+v, %v; want no dead job", st, err)
	}
}

// A queue of layout 3 gains the subjects of the jobs that wait for others:
// its jobs stay, and a graph can be enqueued.
func TestLayout3Moved(t *testing.T) {
	t.Parallel()
	ns, js := rawJetStream(t)
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "HERD", Subjects: []string{"herd.job.>", "herd.rec.>", "herd.dead.>"}, MaxMsgsPerSubject: 1, AllowDirect: true,
		AllowAtomicPublish: true, AllowMsgTTL: true, Metadata: map[string]string{"herd.layout": "3", "herd.retention": "168h0m0s"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Format(time.RFC3339Nano)
	job := fmt.Sprintf(`{"id":"old","kind":"k","queue":"default","priority":0,"state":"queued","max_attempts":3,"enqueued_at":%q,"updated_at":%q}`, now, now)
	if _, err := js.Publish(ctx, "herd.job.default.default.old", []byte(job)); err != nil {
		t.Fatal(err)
	}
	c, err := queue.Open(ctx, queue.Config{URL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, err := js.Stream(ctx, "HERD"); err != nil || s.CachedInfo().Config.Metadata["herd.layout"] != "4" {
		t.Errorf("the stream after the move: %v, want layout 4", err)
	}
	child, err := c.Enqueue(ctx, "k", nil, queue.Options{After: []string{"old"}})
	if err != nil {
		t.Fatal(err)
	}
	queuetest.Work(t, c, fast, map[string]queue.Handler{"k": func(context.Context, *queue.Job) ([]byte, error) { return nil, nil }})
	if info := wait(t, c, child); info.State != queue.Succeeded {
		t.Errorf("a job waiting for a job of layout 3 = %+v, want succeeded", info)
	}
}

// rawJetStream starts a server and connects to it with nats.go alone, to set
// up what an earlier or another herd would have left.
func rawJetStream(t *testing.T) (*embedded.Server, jetstream.JetStream) {
	t.Helper()
	ns := startServer(t, embedded.Config{})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns, js
}
