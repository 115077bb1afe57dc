package embedded

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The server's own limit (MaxStore, or JetStream's share of the disk's free
// space when it started) counts the bytes of the messages it keeps. The disk
// fills faster than that: the server's files have indexes and metadata, a
// message removed keeps its place in its block until the block is
// compacted, and other programs write to the same disk. A server whose
// write finds no space left stops storing in that stream ("critical write
// error") and answers nothing more until restarted.
//
// So the server's account gets a limit when its disk runs low: once the
// disk has no more than twice the reserve free, the account may store no
// more than it stores now, and every write is refused as the server's own
// limit refuses them (the queue's ErrFull), while the disk still has at
// least the reserve for what is written before the next look, and for the
// removals and compactions that make room again. With more free, the
// account has no limit of its own. All writes are refused alike, small or
// big, so that a client that can write a little knows the queue has room.

// diskTick is how often the disk's free space is read.
const diskTick = 100 * time.Millisecond

// Reserve is the room kept free on a disk of size bytes: 2% of it, between
// 1 MiB and 256 MiB, and at most a quarter of the disk.
func Reserve(size int64) int64 {
	return min(max(size/50, 1<<20), 256<<20, size/4)
}

// diskGuard is the goroutine that keeps the account's limit, and how to
// stop it.
type diskGuard struct {
	acc  *server.Account
	dir  string
	log  *serverLog
	last int64 // the account's limit as last set; -1 for none
	full bool  // the disk has no more than twice the reserve free

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// guardDisk starts keeping the account's limit of storage by the disk of
// the server's folder. It sets the first limit before it returns.
func (s *Server) guardDisk() error {
	if sp, err := diskSpace(s.dir); err != nil || sp.size == 0 {
		// A file system that reports no size (some FUSE ones) says
		// nothing of its room: the server's own limit is all there is.
		return err
	}
	g := &diskGuard{stop: make(chan struct{}), acc: s.GlobalAccount(), dir: s.dir, log: s.log, last: -1}
	g.check()
	s.guard = g
	g.wg.Go(func() {
		t := time.NewTicker(diskTick)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				g.check()
			}
		}
	})
	return nil
}

// check sets the account's limit from the disk's free space now.
func (g *diskGuard) check() {
	space, err := diskSpace(g.dir)
	if err != nil {
		return
	}
	low := space.free <= 2*space.reserve
	if low != g.full {
		g.full = low
		if low {
			g.log.l.Error("queue: the disk of the queue is nearly full: writes are refused until there is room (herd queue purge, or room made on the disk)",
				"dir", g.dir, "free", space.free, "reserve", space.reserve)
		} else {
			g.log.l.Info("queue: the disk of the queue has room again", "dir", g.dir, "free", space.free)
		}
	}
	limit := int64(-1) // none of the account's own: the server's applies
	if low {
		limit = int64(g.acc.JetStreamUsage().Store)
	}
	if limit == g.last {
		return
	}
	err = g.acc.UpdateJetStreamLimits(map[string]server.JetStreamAccountLimits{"": {
		MaxMemory: -1, MaxStore: limit, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1,
		MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1,
	}})
	if err == nil {
		g.last = limit
	}
}

// close stops the guard and waits for it; it may be called again, as the
// server's Close may.
func (g *diskGuard) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// space is what statfs says of a disk: its size and the bytes free to this
// process (both 0 on a file system that does not say), and the reserve kept
// on it.
type space struct {
	size, free, reserve int64
}

// diskSpace reads the space of the disk that holds dir.
func diskSpace(dir string) (space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return space{}, fmt.Errorf("embedded: the space of the disk of %s: %w", dir, err)
	}
	bsize := int64(st.Bsize)
	size := int64(st.Blocks) * bsize
	return space{size: size, free: int64(st.Bavail) * bsize, reserve: Reserve(size)}, nil
}
