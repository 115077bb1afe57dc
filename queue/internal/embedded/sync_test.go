package embedded

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSyncSyncsWhatChanged checks that Sync syncs every message file and
// folder that changed since it last ran, and nothing else: files that
// grow, files and folders that are new (also within a tick of the
// folder's clock), and streams removed and made again under the same name.
func TestSyncSyncsWhatChanged(t *testing.T) {
	dir := t.TempDir()
	s := &Server{dir: dir}
	t.Cleanup(func() {
		for _, e := range s.seen {
			e.f.Close()
		}
	})
	var synced []string
	fsync = func(f *os.File) error {
		rel, _ := filepath.Rel(dir, f.Name())
		synced = append(synced, rel)
		return nil
	}
	t.Cleanup(func() { fsync = (*os.File).Sync })
	msgs := func(stream string) string { return filepath.Join(dir, "jetstream", "$G", "streams", stream, "msgs") }
	rel := func(stream, file string) string {
		p, _ := filepath.Rel(dir, filepath.Join(msgs(stream), file))
		return filepath.Clean(p)
	}
	write := func(stream, file, data string) {
		t.Helper()
		if err := os.MkdirAll(msgs(stream), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(msgs(stream), file), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
	}
	sync := func(want ...string) {
		t.Helper()
		synced = nil
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(synced)
		slices.Sort(want)
		if !slices.Equal(synced, want) {
			t.Fatalf("synced %q, want %q", synced, want)
		}
	}

	// The folders above the message files, which the server makes.
	stream := func(name string) string { return filepath.Join("jetstream", "$G", "streams", name) }
	above := []string{".", "jetstream", filepath.Join("jetstream", "$G"), filepath.Join("jetstream", "$G", "streams")}

	sync(".") // no store yet
	write("A", "1.blk", "one")
	write("B", "1.blk", "one")
	write("B", "index.db", "not a message file")
	sync(append([]string{rel("A", "1.blk"), rel("A", ""), stream("A"), rel("B", "1.blk"), rel("B", ""), stream("B")}, above...)...)
	sync()
	write("A", "1.blk", "two")
	sync(rel("A", "1.blk"))
	// A new file at once after a sync, within a tick of the folder's
	// clock, and one after the listing is trusted.
	write("A", "2.blk", "x")
	sync(rel("A", "2.blk"), rel("A", ""))
	write("A", "3.blk", "x")
	sync(rel("A", "3.blk"), rel("A", ""))
	time.Sleep(2 * racy)
	sync() // the folder is read again once, and nothing changed
	sync()
	write("A", "4.blk", "x")
	write("A", "1.blk", "three")
	sync(rel("A", "1.blk"), rel("A", "4.blk"), rel("A", ""))
	// A stream removed and made again: its new files are synced.
	time.Sleep(2 * racy)
	sync()
	if err := os.RemoveAll(filepath.Join(dir, "jetstream", "$G", "streams", "B")); err != nil {
		t.Fatal(err)
	}
	write("B", "1.blk", "new")
	sync(rel("B", "1.blk"), rel("B", ""), stream("B"), above[3])
	write("B", "1.blk", "more")
	sync(rel("B", "1.blk"))
}
