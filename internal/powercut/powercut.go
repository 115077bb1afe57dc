// Package powercut mounts a file system that keeps in memory what is
// written to it until it is synced, and can lose all of that at once, as a
// power cut loses what a disk had not yet made durable. The tests of the
// queue's storage run a server on it, cut the power at random moments, and
// check that nothing the server had acknowledged is gone.
//
// It is a loopback over a folder. A file's data and size become durable
// when the file is synced (fsync or fdatasync); a folder's entries (files
// and folders created, renamed or removed in it) when the folder is synced.
// Until then, reads see every write, as on a real file system. [FS.Cut]
// brings back the durable state, as LazyFS's "clear-cache" fault does, and
// stricter than LazyFS, whose folders are durable at once: a file created or
// renamed in a folder not synced since is gone after a cut, or has its old
// name back.
//
// Mounting needs /dev/fuse and the right to mount: root, or the
// fusermount3 program of the fuse3 package.
package powercut

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// pageSize is the size of the blocks in which unsynced data is kept.
const pageSize = 4096

// FS is a mounted file system that loses what was not synced on [FS.Cut].
type FS struct {
	dir   string // where it is mounted
	root  string // the folder that holds the files' durable data
	attic string // files removed since the last cut, by inode number, for a cut to bring back
	state string // the folder holding root and attic

	server *fuse.Server

	mu    sync.Mutex
	files map[uint64]*unsynced          // by inode number, the files written since their last sync
	names map[uint64]map[string]element // by inode number, each folder's entries when it was last synced
	top   uint64                        // root's inode number
}

// element is an entry of a folder.
type element struct {
	ino    uint64
	folder bool
}

// unsynced is what was written to a file since it was last synced.
type unsynced struct {
	mtime time.Time        // when it was last written
	size  int64            // the file's size as written
	base  int64            // the backing file holds the data below base; above it, zeros
	pages map[int64][]byte // written pages, by index, each pageSize long
}

// Mount mounts at dir a file system whose durable state is kept in the
// folder state, which it owns: what state/root holds when Mount is called
// is the file system's content. The caller must [FS.Unmount] it.
func Mount(dir, state string) (*FS, error) {
	f := &FS{
		dir:   dir,
		root:  filepath.Join(state, "root"),
		attic: filepath.Join(state, "attic"),
		state: state,
		files: map[uint64]*unsynced{},
	}
	for _, d := range []string{f.root, f.attic} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("powercut: %w", err)
		}
	}
	if err := f.scan(); err != nil {
		return nil, err
	}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) mount() error {
	root, err := fs.NewLoopbackRoot(f.root)
	if err != nil {
		return fmt.Errorf("powercut: %w", err)
	}
	zero := time.Duration(0)
	srv, err := fs.Mount(f.dir, &node{LoopbackNode: root.(*fs.LoopbackNode), fs: f}, &fs.Options{
		// No cached names or attributes: a size always comes from here.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:      "powercut",
			Name:        "powercut",
			DirectMount: true,
		},
	})
	if err != nil {
		return fmt.Errorf("powercut: mount %s: %w", f.dir, err)
	}
	f.server = srv
	return nil
}

// Unmount unmounts the file system, once nothing has a file open on it
// (it waits up to 10 seconds). The data not synced is lost; the folders'
// entries stay as they are.
func (f *FS) Unmount() error {
	// A killed process's files are closed a moment after it is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f.server.Unmount()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cut cuts the power: the file system comes back with the data of each
// file as it was when the file was last synced, and the entries of each
// folder as they were when the folder was last synced (or mounted). Stop
// the processes using it first: Cut unmounts it, which waits until no file
// is open on it, and mounts it again.
func (f *FS) Cut() error {
	if err := f.Unmount(); err != nil {
		return fmt.Errorf("powercut: cut: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.files)
	if err := f.rebuild(); err != nil {
		return err
	}
	return f.mount()
}

// Unsynced returns how many bytes of written pages the file system holds
// that were not synced.
func (f *FS) Unsynced() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, u := range f.files {
		n += int64(len(u.pages)) * pageSize
	}
	return n
}

// scan takes every folder's entries as they are now as durable.
func (f *FS) scan() error {
	clear(f.names)
	f.names = map[uint64]map[string]element{}
	return filepath.WalkDir(f.root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		ino, err := inode(path)
		if err != nil {
			return err
		}
		if path == f.root {
			f.top = ino
		}
		f.names[ino], err = list(path)
		return err
	})
}

// list returns the entries of the folder path.
func list(path string) (map[string]element, error) {
	des, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	l := make(map[string]element, len(des))
	for _, d := range des {
		ino, err := inode(filepath.Join(path, d.Name()))
		if err != nil {
			return nil, err
		}
		l[d.Name()] = element{ino: ino, folder: d.IsDir()}
	}
	return l, nil
}

func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// rebuild makes root hold what the folders' durable entries name: folders
// made anew, files linked from where they are now, in root or the attic.
func (f *FS) rebuild() error {
	where := map[uint64]string{}
	err := filepath.WalkDir(f.root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ino, err := inode(path)
		where[ino] = path
		return err
	})
	if err != nil {
		return fmt.Errorf("powercut: cut: %w", err)
	}
	removed, err := os.ReadDir(f.attic)
	if err != nil {
		return fmt.Errorf("powercut: cut: %w", err)
	}
	for _, d := range removed {
		ino, err := strconv.ParseUint(d.Name(), 10, 64)
		if err != nil {
			return fmt.Errorf("powercut: cut: %s in the attic", d.Name())
		}
		if _, ok := where[ino]; !ok {
			where[ino] = filepath.Join(f.attic, d.Name())
		}
	}
	fresh, old := filepath.Join(f.state, "fresh"), filepath.Join(f.state, "old")
	var build func(ino uint64, path string) error
	build = func(ino uint64, path string) error {
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		for name, e := range f.names[ino] {
			p := filepath.Join(path, name)
			if e.folder {
				if err := build(e.ino, p); err != nil {
					return err
				}
				continue
			}
			from, ok := where[e.ino]
			if !ok {
				return fmt.Errorf("the file of %s (inode %d) is gone", p, e.ino)
			}
			if err := os.Link(from, p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, step := range []func() error{
		func() error { return os.RemoveAll(fresh) },
		func() error { return build(f.top, fresh) },
		func() error { return os.Rename(f.root, old) },
		func() error { return os.Rename(fresh, f.root) },
		func() error { return os.RemoveAll(old) },
		func() error { return os.RemoveAll(f.attic) },
		func() error { return os.Mkdir(f.attic, 0o755) },
		f.scan,
	} {
		if err := step(); err != nil {
			return fmt.Errorf("powercut: cut: %w", err)
		}
	}
	return nil
}

// file returns what was written to the file ino, held open as fd, since
// its last sync, starting the record if start is set; nil if nothing was.
// f.mu is held.
func (f *FS) file(ino uint64, fd int, start bool) (*unsynced, syscall.Errno) {
	if u := f.files[ino]; u != nil || !start {
		return u, 0
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	u := &unsynced{size: st.Size, base: st.Size, pages: map[int64][]byte{}, mtime: time.Now()}
	f.files[ino] = u
	return u, 0
}

// page returns page i of the file as it reads now: the written page, or
// the backing file's data below u.base and zeros above.
func (u *unsynced) page(fd int, i int64) ([]byte, syscall.Errno) {
	if p := u.pages[i]; p != nil {
		return p, 0
	}
	p := make([]byte, pageSize)
	if end := min(u.base-i*pageSize, pageSize); end > 0 {
		if _, err := syscall.Pread(fd, p[:end], i*pageSize); err != nil {
			return nil, fs.ToErrno(err)
		}
	}
	return p, 0
}

func (u *unsynced) write(fd int, data []byte, off int64) syscall.Errno {
	u.mtime = time.Now()
	for len(data) > 0 {
		i, in := off/pageSize, off%pageSize
		p, errno := u.page(fd, i)
		if errno != 0 {
			return errno
		}
		u.pages[i] = p
		n := copy(p[in:], data)
		data, off = data[n:], off+int64(n)
		u.size = max(u.size, off)
	}
	return 0
}

func (u *unsynced) read(fd int, dest []byte, off int64) ([]byte, syscall.Errno) {
	n := max(min(int64(len(dest)), u.size-off), 0)
	dest = dest[:n]
	for done := 0; done < len(dest); {
		at := off + int64(done)
		p, errno := u.page(fd, at/pageSize)
		if errno != 0 {
			return nil, errno
		}
		done += copy(dest[done:], p[at%pageSize:])
	}
	return dest, 0
}

func (u *unsynced) truncate(size int64) {
	u.mtime = time.Now()
	u.size, u.base = size, min(u.base, size)
	for i, p := range u.pages {
		switch {
		case i*pageSize >= size:
			delete(u.pages, i)
		case (i+1)*pageSize > size:
			clear(p[size-i*pageSize:])
		}
	}
}

// sync writes what was written to the backing file.
func (u *unsynced) sync(fd int) syscall.Errno {
	if err := syscall.Ftruncate(fd, u.base); err != nil {
		return fs.ToErrno(err)
	}
	for i, p := range u.pages {
		if _, err := syscall.Pwrite(fd, p[:min(pageSize, u.size-i*pageSize)], i*pageSize); err != nil {
			return fs.ToErrno(err)
		}
	}
	return fs.ToErrno(syscall.Ftruncate(fd, u.size))
}

// node is a file or folder: the loopback's, with a file's data and size
// taken from what was written to it, and removed files kept for a cut.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.FileReader         = (*file)(nil)
	_ fs.FileWriter         = (*file)(nil)
	_ fs.FileFsyncer        = (*file)(nil)
	_ fs.FileFlusher        = (*file)(nil)
	_ fs.FileReleaser       = (*file)(nil)
	_ fs.FileGetattrer      = (*file)(nil)
	_ fs.FileSetattrer      = (*file)(nil)
	_ fs.FileFsyncdirer     = (*folder)(nil)
	_ fs.FileReaddirenter   = (*folder)(nil)
)

func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

// ino returns a file's inode number, the backing file's.
func (n *node) ino() uint64 { return n.StableAttr().Ino }

// backing returns the node's path in the backing folder.
func (n *node) backing() string { return filepath.Join(n.RootData.Path, n.Path(n.Root())) }

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, _, errno := n.LoopbackNode.Open(ctx, both(flags)&^syscall.O_TRUNC)
	if errno == syscall.EACCES {
		fh, _, errno = n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	}
	if errno != 0 {
		return nil, 0, errno
	}
	h := newFile(n, fh)
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.truncate(h, 0); errno != 0 {
			h.Release(ctx)
			return nil, 0, errno
		}
	}
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, _, errno := n.LoopbackNode.Create(ctx, name, both(flags), mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return in, newFile(in.Operations().(*node), fh), fuse.FOPEN_DIRECT_IO, 0
}

// both opens a file for reading and writing whatever it is opened for: a
// file opened to be read can be synced, which writes what was written
// through other opens, and one opened to be written can read a page
// written in part.
func both(flags uint32) uint32 {
	return flags&^syscall.O_ACCMODE | syscall.O_RDWR
}

// newFile is the file n opened by the loopback as fh.
func newFile(n *node, fh fs.FileHandle) *file {
	lf := fh.(*fs.LoopbackFile)
	fd, _ := lf.PassthroughFd()
	return &file{lf: lf, fd: fd, node: n}
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.fs.keep(filepath.Join(n.backing(), name)); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if np, ok := newParent.(*node); ok {
		if errno := n.fs.keep(filepath.Join(np.backing(), newName)); errno != 0 && errno != syscall.ENOENT {
			return errno
		}
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

// keep links the file at path, about to be removed or replaced, into the
// attic, where a cut finds it if a folder's durable entries still name it.
func (f *FS) keep(path string) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fs.ToErrno(err)
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return 0
	}
	err := os.Link(path, filepath.Join(f.attic, strconv.FormatUint(st.Ino, 10)))
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fs.ToErrno(err)
	}
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &folder{dirStream: fh.(dirStream), node: n}, fl, 0
}

// Fsync syncs a file, or a folder.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := fh.(*file); ok {
		return h.Fsync(ctx, flags)
	}
	return n.fs.syncFolder(n)
}

// syncFolder makes the folder's entries, as they are now, durable.
func (f *FS) syncFolder(n *node) syscall.Errno {
	// By the backing folder's inode number: the root's, here, is 1.
	ino, err := inode(n.backing())
	if err != nil {
		return fs.ToErrno(err)
	}
	l, err := list(n.backing())
	if err != nil {
		return fs.ToErrno(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[ino] = l
	return 0
}

// dirStream is what the loopback's open folder offers.
type dirStream interface {
	fs.FileReaddirenter
	fs.FileReleasedirer
	fs.FileSeekdirer
	fs.FileFsyncdirer
}

// folder is an open folder: syncing it makes its entries durable.
type folder struct {
	dirStream
	node *node
}

func (d *folder) Fsyncdir(context.Context, uint32) syscall.Errno {
	return d.node.fs.syncFolder(d.node)
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var errno syscall.Errno
	if h, ok := fh.(*file); ok {
		errno = h.lf.Getattr(ctx, out)
	} else {
		errno = n.LoopbackNode.Getattr(ctx, nil, out)
	}
	if errno != 0 {
		return errno
	}
	if size, mtime, ok := n.written(); ok {
		out.Size, out.Blocks = size, (size+511)/512
		out.SetTimes(nil, &mtime, &mtime)
	}
	return 0
}

func (n *node) Statx(ctx context.Context, fh fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	var lf fs.FileHandle
	if h, ok := fh.(*file); ok {
		lf = h.lf
	}
	if errno := n.LoopbackNode.Statx(ctx, lf, flags, mask, out); errno != 0 {
		return errno
	}
	if size, mtime, ok := n.written(); ok {
		out.Size, out.Blocks = size, (size+511)/512
		out.Mtime.FromStatxTimestamp(&unix.StatxTimestamp{Sec: mtime.Unix(), Nsec: uint32(mtime.Nanosecond())})
		out.Ctime = out.Mtime
	}
	return 0
}

// written returns the file's size and time as written, if it was written
// since it was last synced.
func (n *node) written() (size uint64, mtime time.Time, ok bool) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	u := n.fs.files[n.ino()]
	if u == nil {
		return 0, time.Time{}, false
	}
	return uint64(u.size), u.mtime, true
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(fh, int64(size)); errno != 0 {
			return errno
		}
		rest := *in
		rest.Valid &^= fuse.FATTR_SIZE
		in = &rest
	}
	var lf fs.FileHandle
	if h, ok := fh.(*file); ok {
		lf = h.lf
	}
	if errno := n.LoopbackNode.Setattr(ctx, lf, in, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

// truncate sets the file's size as written, through fh if set.
func (n *node) truncate(fh fs.FileHandle, size int64) syscall.Errno {
	fd := -1
	if h, ok := fh.(*file); ok {
		fd = h.fd
	} else {
		of, err := os.Open(n.backing())
		if err != nil {
			return fs.ToErrno(err)
		}
		defer of.Close()
		fd = int(of.Fd())
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	u, errno := n.fs.file(n.ino(), fd, true)
	if errno != 0 {
		return errno
	}
	u.truncate(size)
	return 0
}

// CopyFileRange is not there, so that the kernel copies through reads and
// writes, which this file system sees.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// file is an open file: reads and writes go through what was written since
// the last sync. It offers nothing else (no vectored writes, preallocation,
// holes or passthrough), so the kernel does the rest itself, through these.
type file struct {
	lf   *fs.LoopbackFile
	fd   int
	node *node
}

func (h *file) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.node.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	u, _ := f.file(h.node.ino(), h.fd, false)
	if u == nil {
		n, err := syscall.Pread(h.fd, dest, off)
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
	b, errno := u.read(h.fd, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(b), 0
}

func (h *file) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.node.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	u, errno := f.file(h.node.ino(), h.fd, true)
	if errno != 0 {
		return 0, errno
	}
	if errno := u.write(h.fd, data, off); errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

// Fsync makes what was written to the file durable.
func (h *file) Fsync(context.Context, uint32) syscall.Errno {
	f := h.node.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	u, _ := f.file(h.node.ino(), h.fd, false)
	if u == nil {
		return 0
	}
	if errno := u.sync(h.fd); errno != 0 {
		return errno
	}
	delete(f.files, h.node.ino())
	return 0
}

func (h *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.node.Getattr(ctx, h, out)
}

func (h *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.node.Setattr(ctx, h, in, out)
}

func (h *file) Flush(ctx context.Context) syscall.Errno { return h.lf.Flush(ctx) }

func (h *file) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }
