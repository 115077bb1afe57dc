package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch sends the records of the jobs whose ids match pattern, where * stands
// for one dot-separated part of an id and > for the rest ("run1.*" matches
// "run1.7"): first each one's current record, then every change, until ctx is
// done. A big result kept apart is read back for finished jobs only. After
// the client reconnects to another server, the watch starts over there and
// sends each job's current record again: callers take records as states,
// not as events.
//
// The watcher's channel is closed when ctx is done, the watcher is
// stopped, or the watch fails. Stop it once done with it.
func (c *Client) Watch(ctx context.Context, pattern string) (*Watcher[Info], error) {
	filters := []string{jobRoot + ".*.*." + pattern, recRoot + ".*.*." + pattern, waitRoot + ".*.*." + pattern, skipRoot + ".*.*." + pattern}
	// A job's record replaces its message once a worker has it: while the
	// watch catches up, a job's message is held back until it is clear
	// that no record of the job follows, so that only current records are
	// sent.
	keyOf := func(subject string) (string, bool) { return idOf(subject), strings.HasPrefix(subject, jobRoot+".") }
	return watch(ctx, c, streamName, filters, keyOf, func(_ string, record []byte) (*Info, error) {
		info := new(Info)
		if err := json.Unmarshal(record, info); err != nil {
			c.log.Warn("queue: watch: bad record", "error", err)
			return nil, nil
		}
		if !info.State.Finished() {
			return info, nil // a big result is read back for finished jobs only
		}
		if err := c.settled(ctx); err != nil {
			return nil, fmt.Errorf("queue: job %s: %w", info.ID, err)
		}
		if err := c.readResult(ctx, info); err != nil {
			return nil, fmt.Errorf("queue: job %s: result: %w", info.ID, err)
		}
		return info, nil
	})
}

// A Watcher sends what it watches on a channel: the records of jobs
// ([Client.Watch]) or shared values ([Client.WatchMeta]).
type Watcher[T any] struct {
	updates <-chan *T
	stop    context.CancelFunc
	wait    func() error
}

// Updates is the channel the watcher sends on. It is closed when the watch
// ends.
func (w *Watcher[T]) Updates() <-chan *T { return w.updates }

// Stop ends the watch, waits until it has ended, and says why it did: nil
// when Stop or the watch's context ended it.
func (w *Watcher[T]) Stop() error {
	w.stop()
	return w.wait()
}

// watch follows the subjects of a stream that match filters: it sends what
// decode makes of the latest message of each, then of each new message,
// until ctx is done or the watcher is stopped. Deleted keys of a key-value bucket are skipped, as are
// values decode makes nil of; an error from decode ends the watch.
//
// keyOf, if set, names the thing each subject is about, and whether its
// message is to be held back while the watch catches up: a held message is
// dropped if a later one about the same thing comes before the watch has
// caught up.
//
// It reads the bucket's stream through an ordered consumer that expects a
// heartbeat every second, so that a watch whose server went away (a node
// of a cluster lost) starts again on another within seconds. When the
// client reconnects to another server, the watch starts over on it, and
// sends the latest value of each key again.
func watch[T any](ctx context.Context, c *Client, stream string, filters []string, keyOf func(subject string) (key string, hold bool), decode func(subject string, value []byte) (*T, error)) (*Watcher[T], error) {
	ctx, stop := context.WithCancel(ctx)
	start := func() (jetstream.MessagesContext, error) {
		cons, err := c.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: filters,
			DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		})
		if err != nil {
			return nil, err
		}
		return cons.Messages(jetstream.PullExpiry(4*time.Second), jetstream.PullHeartbeat(time.Second))
	}
	reconnected := c.reconnectSignal()
	msgs, err := start()
	if err != nil {
		stop()
		return nil, fmt.Errorf("queue: watch %s: %w", filters[0], err)
	}
	out := make(chan *T, 64)
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(out)
		for {
			restart, err := follow(ctx, msgs, reconnected, keyOf, decode, out)
			if !restart {
				werr = err
				return
			}
			// Start over on the server the client is connected to now,
			// trying until it answers.
			for {
				reconnected = c.reconnectSignal()
				if msgs, err = start(); err == nil {
					break
				}
				c.log.Debug("queue: watch: starting again", "filter", filters[0], "error", err)
				select {
				case <-time.After(500 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return &Watcher[T]{updates: out, stop: stop, wait: func() error { wg.Wait(); return werr }}, nil
}

// stopAfter is how long a watch ending waits for its consumer's Next to
// return before it stops the consumer under it.
const stopAfter = 2 * time.Second

// follow sends what decode makes of each message to out until ctx is
// done (nil), decode or the consumer fails (the error), or the client
// reconnects (restart).
func follow[T any](ctx context.Context, msgs jetstream.MessagesContext, reconnected <-chan struct{}, keyOf func(string) (string, bool), decode func(subject string, value []byte) (*T, error), out chan<- *T) (restart bool, err error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ended := make(chan struct{})
	defer close(ended)
	var stopped atomic.Bool // by a reconnect
	// Next below ends when its context does, and the consumer is stopped
	// then, on this goroutine. Stopping it while Next runs can race with
	// the consumer resetting itself after a lost heartbeat, which then
	// starts a new subscription that nothing stops. Only a reset that takes
	// longer than stopAfter (a server that does not answer) is stopped
	// while it runs, since that is the only way to end it.
	next, endNext := context.WithCancel(ctx)
	defer endNext()
	defer msgs.Stop()
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-reconnected:
			stopped.Store(true)
		case <-ended:
			return
		}
		endNext() // ends Next below
		select {
		case <-ended:
		case <-time.After(stopAfter):
			msgs.Stop()
		}
	})
	send := func(v *T) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// Messages held back while catching up, by key, in order.
	held := map[string]*T{}
	var heldKeys []string
	live := keyOf == nil
	for {
		msg, err := msgs.Next(jetstream.NextContext(next))
		if err != nil {
			switch {
			case stopped.Load():
				return true, nil
			case ctx.Err() != nil:
				return false, nil
			}
			return false, fmt.Errorf("queue: watch: %w", err)
		}
		if op := msg.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		v, err := decode(msg.Subject(), msg.Data())
		if err != nil {
			return false, err
		}
		if v != nil && live && !send(v) {
			return false, nil
		}
		if live {
			continue
		}
		if key, hold := keyOf(msg.Subject()); v != nil && hold {
			if _, ok := held[key]; !ok {
				heldKeys = append(heldKeys, key)
			}
			held[key] = v
		} else {
			delete(held, key)
			if v != nil && !send(v) {
				return false, nil
			}
		}
		if meta, err := msg.Metadata(); err == nil && meta.NumPending == 0 {
			// Caught up: what is still held is current.
			for _, k := range heldKeys {
				if v, ok := held[k]; ok && !send(v) {
					return false, nil
				}
			}
			held, heldKeys, live = nil, nil, true
		}
	}
}
