package powercut_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goherd/herd/internal/powercut"
	"github.com/goherd/herd/internal/testutil"
)

// mount mounts a file system on a new folder, unmounted when the test ends.
func mount(t *testing.T) (*powercut.FS, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := powercut.Mount(dir, t.TempDir())
	if err != nil {
		testutil.Need(t, "HERD_FUSE", fmt.Sprintf("%v (the test needs FUSE: /dev/fuse, and root or fusermount3)", err))
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f, dir
}

func write(t *testing.T, path string, data []byte, off int64, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != int64(len(b)) {
		t.Errorf("%s: stat says %v (%v), read %d bytes", path, st.Size(), err, len(b))
	}
	return b
}

// syncDir syncs the folder path.
func syncDir(t *testing.T, path string) {
	t.Helper()
	d, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, f *powercut.FS) {
	t.Helper()
	if err := f.Cut(); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// What was synced survives a cut; what was written after, to the same
// file or another, is lost; until the cut, every read sees every write.
func TestCutLosesWhatWasNotSynced(t *testing.T) {
	f, dir := mount(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	synced := bytes.Repeat([]byte("s"), 10000) // over two pages and a half
	write(t, a, synced, 0, true)
	write(t, b, []byte("never synced"), 0, false)
	syncDir(t, dir)
	write(t, a, []byte("later"), 9998, false) // across the synced end

	want := append(bytes.Clone(synced[:9998]), "later"...)
	if got := read(t, a); !bytes.Equal(got, want) {
		t.Errorf("before the cut, a reads %d bytes ending %q, want %d ending %q", len(got), got[max(0, len(got)-8):], len(want), want[len(want)-8:])
	}
	if got := read(t, b); string(got) != "never synced" {
		t.Errorf("before the cut, b reads %q", got)
	}
	if f.Unsynced() == 0 {
		t.Error("nothing unsynced before the cut")
	}

	cut(t, f)
	if got := read(t, a); !bytes.Equal(got, synced) {
		t.Errorf("after the cut, a reads %d bytes, want the %d synced", len(got), len(synced))
	}
	// Its name was made durable, its data not.
	if got := read(t, b); len(got) != 0 {
		t.Errorf("after the cut, b reads %q, want nothing", got)
	}
	if n := f.Unsynced(); n != 0 {
		t.Errorf("%d bytes unsynced after the cut", n)
	}
}

// A file or folder created, renamed or removed in a folder is created,
// renamed or removed for good once that folder is synced, not before: the
// way a store writes a file in full and renames it over the old one.
func TestCutUndoesWhatFoldersDidNotSync(t *testing.T) {
	f, dir := mount(t)
	meta, tmp, sub := filepath.Join(dir, "meta"), filepath.Join(dir, "meta.tmp"), filepath.Join(dir, "sub")
	write(t, meta, []byte("v1"), 0, true)
	syncDir(t, dir)

	// A new version renamed over the old, and a folder with a synced file
	// in it.
	change := func() {
		t.Helper()
		write(t, tmp, []byte("v2"), 0, true)
		if err := os.Rename(tmp, meta); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(sub, "x"), []byte("x"), 0, true)
		syncDir(t, sub)
	}

	// Not synced: undone by a cut.
	change()
	if got := read(t, meta); string(got) != "v2" {
		t.Errorf("before the cut, meta reads %q", got)
	}
	cut(t, f)
	if got := read(t, meta); string(got) != "v1" {
		t.Errorf("after the cut, meta reads %q, want the old version", got)
	}
	if exists(tmp) || exists(sub) {
		t.Errorf("after the cut, meta.tmp (%v) or sub (%v) is there, in a folder never synced with them", exists(tmp), exists(sub))
	}

	// Removed, not synced: back after the cut.
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	cut(t, f)
	if got := read(t, meta); string(got) != "v1" {
		t.Errorf("removed without a sync, then cut: meta reads %q", got)
	}

	// The same, synced: for good.
	change()
	syncDir(t, dir)
	cut(t, f)
	if got := read(t, meta); string(got) != "v2" {
		t.Errorf("synced, then cut: meta reads %q", got)
	}
	if got := read(t, filepath.Join(sub, "x")); string(got) != "x" {
		t.Errorf("synced, then cut: sub/x reads %q", got)
	}
}

// A truncation is data: lost unless the file is synced.
func TestCutUndoesTruncations(t *testing.T) {
	f, dir := mount(t)
	p := filepath.Join(dir, "f")
	write(t, p, []byte("synced before the truncation"), 0, true)
	syncDir(t, dir)
	if err := os.Truncate(p, 6); err != nil {
		t.Fatal(err)
	}
	write(t, p, []byte("!"), 10, false) // a hole of zeros between
	if got := read(t, p); string(got) != "synced\x00\x00\x00\x00!" {
		t.Errorf("before the cut: %q", got)
	}
	cut(t, f)
	if got := read(t, p); string(got) != "synced before the truncation" {
		t.Errorf("after the cut: %q", got)
	}

	if err := os.Truncate(p, 6); err != nil {
		t.Fatal(err)
	}
	write(t, p, []byte("!"), 10, true)
	cut(t, f)
	if got := read(t, p); string(got) != "synced\x00\x00\x00\x00!" {
		t.Errorf("synced, then cut: %q", got)
	}
	// Opening with O_TRUNC truncates too.
	g, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if got := read(t, p); len(got) != 0 {
		t.Errorf("after O_TRUNC: %q", got)
	}
	cut(t, f)
	if got := read(t, p); len(got) != 11 {
		t.Errorf("O_TRUNC, not synced, then cut: %q", got)
	}
}

// A cut waits for the files open on the file system to be closed.
func TestCutWaitsForOpenFiles(t *testing.T) {
	f, dir := mount(t)
	g, err := os.Create(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- f.Cut() }()
	select {
	case err := <-done:
		t.Fatalf("Cut returned (%v) with a file open", err)
	case <-time.After(200 * time.Millisecond):
	}
	g.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "x")) {
		t.Error("x, made in a folder never synced, is there after the cut")
	}
}
