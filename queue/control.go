package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A queue is paused by pausing its consumers, one per priority, in
// JetStream itself (a consumer's PauseUntil): a paused consumer hands out
// nothing until it is resumed, the state is kept with the consumer's
// configuration, so it survives restarts of servers and workers, and the
// consumer's figures say it is paused. Enqueueing is untouched.

// pausedFor is how long a pause lasts: until Resume, in practice.
const pausedFor = 100 * 365 * 24 * time.Hour

// Pause stops the workers of a named queue taking its jobs until [Client.Resume];
// the jobs running go on to finish, and jobs can still be enqueued.
func (c *Client) Pause(ctx context.Context, queue string) error {
	if !validQueue(queue) {
		return fmt.Errorf("queue: pause: queue %q: want letters, digits and - _ = /", queue)
	}
	until := time.Now().Add(pausedFor)
	for _, p := range []Priority{High, Default, Low} {
		if err := c.ensureConsumer(ctx, queue, p); err != nil {
			return fmt.Errorf("queue: pause %s: %w", queue, err)
		}
		name := consumerConfig(queue, p, 0).Durable
		if _, err := c.js.PauseConsumer(ctx, streamName, name, until); err != nil {
			return fmt.Errorf("queue: pause %s: %w", queue, err)
		}
	}
	return nil
}

// Resume lets the workers of a paused queue take its jobs again.
func (c *Client) Resume(ctx context.Context, queue string) error {
	if !validQueue(queue) {
		return fmt.Errorf("queue: resume: queue %q: want letters, digits and - _ = /", queue)
	}
	for _, p := range []Priority{High, Default, Low} {
		name := consumerConfig(queue, p, 0).Durable
		_, err := c.js.ResumeConsumer(ctx, streamName, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // never had jobs at this priority: nothing to resume
		}
		if err != nil {
			return fmt.Errorf("queue: resume %s: %w", queue, err)
		}
	}
	return nil
}

// workerConsumer returns the consumer through which a worker takes the jobs
// of a queue at a priority, with the worker's lease; it keeps a pause.
func (c *Client) workerConsumer(ctx context.Context, queue string, p Priority, lease time.Duration) (jetstream.Consumer, error) {
	cc := consumerConfig(queue, p, lease)
	cons, err := c.js.Consumer(ctx, streamName, cc.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = c.js.CreateConsumer(ctx, streamName, cc)
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return cons, err
		}
		return c.workerConsumer(ctx, queue, p, lease) // made meanwhile by another
	case err != nil:
		return nil, err
	}
	have := cons.CachedInfo().Config
	if have.AckWait == lease {
		return cons, nil
	}
	cc.PauseUntil = have.PauseUntil // a pause is kept when the lease changes
	return c.js.UpdateConsumer(ctx, streamName, cc)
}
