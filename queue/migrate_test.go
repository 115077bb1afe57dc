package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A queue left by the earlier layout (a work-queue stream of jobs and a
// key-value bucket of records) is moved over when a client opens it: a
// waiting job runs, a finished job keeps its record, a job whose message
// was lost is put back from its record, and the old streams are gone.
func TestMigrateLayout1(t *testing.T) {
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
	runWorker(t, c, fast, map[string]queue.Handler{
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
	ns, js := rawJetStream(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "HERD", Subjects: []string{"herd.job.>"}, Metadata: map[string]string{"herd.layout": "3"}}); err != nil {
		t.Fatal(err)
	}
	c, err := queue.Open(t.Context(), queue.Config{URL: ns.ClientURL()})
	if err == nil {
		c.Close()
		t.Fatal("Open of a queue in layout 3 = nil error")
	}
	if !strings.Contains(err.Error(), `layout "3"`) {
		t.Errorf("Open of a queue in layout 3 = %v, want an error naming the layout", err)
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
