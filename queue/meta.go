package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const metaBucket = "HERD_META"

// PutMeta stores a small value under key, for the programs that share the
// queue to coordinate through: herd run --queue keeps the state of each run
// there, for its workers to see. Keys are as job ids; values expire with
// finished jobs' records.
func (c *Client) PutMeta(ctx context.Context, key string, value []byte) error {
	if !validID(key) {
		return fmt.Errorf("queue: meta %q: want letters, digits, dots and - _ = /", key)
	}
	// A server that does not answer (it restarts, or a cluster elects a
	// leader) is given as long as the committer gives it.
	deadline := time.Now().Add(commitRetryFor)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, err := c.meta.Put(ctx, key, value)
		if err == nil {
			break
		}
		if !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("queue: meta %s: %w", key, fullError(err))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	if err := c.durable(); err != nil {
		return fmt.Errorf("queue: meta %s: %w", key, err)
	}
	return nil
}

// Meta returns the value stored under key, or an error wrapping
// [ErrNotFound].
func (c *Client) Meta(ctx context.Context, key string) ([]byte, error) {
	e, err := c.meta.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: meta %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: meta %s: %w", key, err)
	}
	return e.Value(), nil
}

// MetaEntry is a value stored with [Client.PutMeta].
type MetaEntry struct {
	Key   string
	Value []byte
}

// WatchMeta sends the values whose keys match pattern (as in
// [Client.Watch]): first those stored now, then each one stored later,
// until ctx is done or the watcher is stopped.
func (c *Client) WatchMeta(ctx context.Context, pattern string) (*Watcher[MetaEntry], error) {
	prefix := "$KV." + metaBucket + "."
	return watch(ctx, c, "KV_"+metaBucket, []string{prefix + pattern}, nil, func(subject string, value []byte) (*MetaEntry, error) {
		return &MetaEntry{Key: strings.TrimPrefix(subject, prefix), Value: value}, nil
	})
}

// ListMeta returns the values whose keys match pattern (as in
// [Client.Watch]), in the order they were stored.
func (c *Client) ListMeta(ctx context.Context, pattern string) ([]MetaEntry, error) {
	w, err := c.meta.Watch(ctx, pattern, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("queue: meta %s: %w", pattern, err)
	}
	defer w.Stop()
	var out []MetaEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil // all there was
			}
			out = append(out, MetaEntry{Key: e.Key(), Value: e.Value()})
		case <-ctx.Done():
			return nil, fmt.Errorf("queue: meta %s: %w", pattern, ctx.Err())
		}
	}
}
