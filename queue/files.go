package queue

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Files that jobs take with them or bring back (herd run --transfer and
// --return) are kept in the queue's object store, beside the results too
// big for their records, under names of their own.
const filePrefix = "file/"

// PutFile stores what r holds as the file name, for as long as the queue
// keeps finished jobs, or until DeleteFile.
func (c *Client) PutFile(ctx context.Context, name string, r io.Reader) error {
	if _, err := c.results.Put(ctx, jetstream.ObjectMeta{Name: filePrefix + name}, r); err != nil {
		return fmt.Errorf("queue: put file %s: %w", name, fullError(err))
	}
	return nil
}

// GetFile writes the file name to w; an error wraps [ErrNotFound] if there
// is no such file.
func (c *Client) GetFile(ctx context.Context, name string, w io.Writer) error {
	obj, err := c.results.Get(ctx, filePrefix+name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("queue: get file %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("queue: get file %s: %w", name, err)
	}
	defer obj.Close()
	if _, err := io.Copy(w, obj); err != nil {
		return fmt.Errorf("queue: get file %s: %w", name, err)
	}
	return nil
}

// DeleteFile deletes the file name; a file that is not there is no error.
func (c *Client) DeleteFile(ctx context.Context, name string) error {
	if err := c.results.Delete(ctx, filePrefix+name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("queue: delete file %s: %w", name, err)
	}
	return nil
}
