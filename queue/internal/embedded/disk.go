package embedded

import (
	"fmt"
	"math"
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
// So the server's account gets a limit that follows the disk: every tick,
// what JetStream stores now plus what the disk has free, less a reserve.
// Past it, writes are refused as the server's limit refuses them (the
// queue's ErrFull), while the disk still has the reserve: for the
// removals, compactions and small writes that make room again.

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
	acc       *server.Account
	dir       string
	log       *serverLog
	serverMax int64 // the server's own limit; 0 for none
	last      int64 // the account's limit as last set
	full      bool  // the disk has no more than the reserve free

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// guardDisk starts keeping the account's limit of storage on the disk of
// the server's folder, below the server's own limit. It sets the first
// limit before it returns.
func (s *Server) guardDisk() error {
	if sp, err := diskSpace(s.dir); err != nil || sp.size == 0 {
		// A file system that reports no size (some FUSE ones) says
		// nothing of its room: the server's own limit is all there is.
		return err
	}
	g := &diskGuard{stop: make(chan struct{}), acc: s.GlobalAccount(), dir: s.dir, log: s.log, last: -1}
	if cfg := s.JetStreamConfig(); cfg != nil {
		g.serverMax = cfg.MaxStore
	}
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
	used := int64(g.acc.JetStreamUsage().Store)
	limit := used + max(space.free-space.reserve, 0)
	if g.serverMax > 0 {
		// An account's limit may not pass the server's.
		limit = min(limit, g.serverMax-1)
	}
	if full := space.free <= space.reserve; full != g.full {
		g.full = full
		if full {
			g.log.l.Error("queue: the disk of the queue is nearly full: writes are refused until there is room (herd queue purge, or room made on the disk)",
				"dir", g.dir, "free", space.free, "reserve", space.reserve)
		} else {
			g.log.l.Info("queue: the disk of the queue has room again", "dir", g.dir, "free", space.free)
		}
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
	free, size := int64(st.Bavail), int64(st.Blocks)
	if free > math.MaxInt64/bsize || size > math.MaxInt64/bsize {
		return space{size: math.MaxInt64 / 2, free: math.MaxInt64 / 2, reserve: 256 << 20}, nil
	}
	return space{size: size * bsize, free: free * bsize, reserve: Reserve(size * bsize)}, nil
}
