package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/goherd/herd/internal/replace"
	"github.com/goherd/herd/queue"
)

// A FileStore holds the files that go with jobs: a *queue.Client.
type FileStore interface {
	PutFile(ctx context.Context, name string, r io.Reader) error
	GetFile(ctx context.Context, name string, w io.Writer) error
	DeleteFile(ctx context.Context, name string) error
}

// baseFiles are a run's --basefile files on this worker's host.
type baseFiles struct {
	once    sync.Once
	err     error
	paths   []string
	cleanup bool
}

// fetch puts the files a job takes with it where it names them, in its
// folder dir: its run's base files, once for each folder, and its own.
func (w *Worker) fetch(ctx context.Context, cj Job, dir string) error {
	if w.FilesHere || w.Files == nil || len(cj.Transfer)+len(cj.Base) == 0 {
		return nil
	}
	if len(cj.Base) > 0 {
		w.mu.Lock()
		b := w.bases[cj.Run+"\x00"+dir]
		if b == nil {
			b = &baseFiles{paths: in(dir, cj.Base), cleanup: cj.Cleanup}
			w.bases[cj.Run+"\x00"+dir] = b
		}
		w.mu.Unlock()
		b.once.Do(func() {
			for i, p := range b.paths {
				if b.err = getFile(ctx, w.Files, FileKey(cj.Run, 0, "", i), p); b.err != nil {
					b.err = fmt.Errorf("--basefile %s: %w", p, b.err)
					return
				}
			}
		})
		if b.err != nil {
			return b.err
		}
	}
	for i, p := range in(dir, cj.Transfer) {
		if err := getFile(ctx, w.Files, FileKey(cj.Run, cj.Seq, "t", i), p); err != nil {
			return fmt.Errorf("--transfer %s: %w", p, err)
		}
	}
	return nil
}

// getFile writes the queue's file name to path, whole or not at all.
func getFile(ctx context.Context, files FileStore, name, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".herd-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // once renamed, there is nothing to remove
	if err := files.GetFile(ctx, name, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// sendBack stores the files a job names with --return that it made (in
// its folder dir), and with --cleanup removes its files from this host.
func (w *Worker) sendBack(ctx context.Context, cj Job, dir string, res *Result) error {
	if w.FilesHere || w.Files == nil {
		return nil
	}
	var errs []error
	for i, p := range in(dir, cj.Return) {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the job did not make it: nothing to send back
		}
		if err == nil {
			err = w.Files.PutFile(ctx, FileKey(cj.Run, cj.Seq, "r", i), f)
			f.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--return %s: %w", p, err))
			continue
		}
		res.Returned = append(res.Returned, i)
	}
	if cj.Cleanup {
		removeAll(in(dir, cj.Transfer))
		removeAll(in(dir, cj.Return))
	}
	return errors.Join(errs...)
}

// in returns paths, the relative ones taken in the folder dir.
func in(dir string, paths []string) []string {
	if dir == "" {
		return paths
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = p
		if !filepath.IsAbs(p) {
			out[i] = filepath.Join(dir, p)
		}
	}
	return out
}

func removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

var _ FileStore = (*queue.Client)(nil)

// putBase stores the run's --basefile files in the queue, for each host to
// fetch once.
func (rm *remote) putBase(ctx context.Context) error {
	for i, p := range rm.r.Config().BaseFiles {
		if err := putFile(ctx, rm.client, FileKey(rm.run, 0, "", i), p); err != nil {
			return fmt.Errorf("--basefile %s: %w", p, err)
		}
	}
	return nil
}

// putFiles stores a job's --transfer files in the queue and names its
// files in its payload.
func (rm *remote) putFiles(ctx context.Context, cj *Job) error {
	cfg := rm.r.Config()
	path := func(t *replace.Template) string {
		if !t.HasReplacement() {
			return t.String() // a file's name: the inputs are not appended
		}
		return t.Expand(cj.Args, cj.Seq, 0, true)
	}
	for _, t := range cfg.Transfer {
		cj.Transfer = append(cj.Transfer, path(t))
	}
	for _, t := range cfg.Return {
		cj.Return = append(cj.Return, path(t))
	}
	for i, p := range cj.Transfer {
		if err := putFile(ctx, rm.client, FileKey(cj.Run, cj.Seq, "t", i), p); err != nil {
			return fmt.Errorf("--transfer %s (job %d): %w", p, cj.Seq, err)
		}
	}
	return nil
}

func putFile(ctx context.Context, files FileStore, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return files.PutFile(ctx, name, f)
}

// bringBack puts the files a finished job sent back (--return) where it
// names them here, and deletes its files from the queue.
func (c *collector) bringBack(info *queue.Info) {
	if cfg := c.r.Config(); !c.attached && len(cfg.Transfer)+len(cfg.Return) == 0 {
		return // no job of this run has files: its payload need not be read again
	}
	var cj Job
	if len(info.Payload) == 0 || json.Unmarshal(info.Payload, &cj) != nil || len(cj.Transfer)+len(cj.Return) == 0 {
		return
	}
	var res Result
	json.Unmarshal(info.Result, &res)
	ctx := context.Background()
	for _, i := range res.Returned {
		if i < 0 || i >= len(cj.Return) {
			continue
		}
		if err := getFile(ctx, c.client, FileKey(cj.Run, cj.Seq, "r", i), cj.Return[i]); err != nil {
			c.r.Warn("job %d: --return %s: %v", cj.Seq, cj.Return[i], err)
		}
	}
	for i := range cj.Transfer {
		c.client.DeleteFile(ctx, FileKey(cj.Run, cj.Seq, "t", i))
	}
	for i := range cj.Return {
		c.client.DeleteFile(ctx, FileKey(cj.Run, cj.Seq, "r", i))
	}
}
