package run

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"sync"
)

// roundRobin is --round-robin: Config.Jobs jobs, started once, each
// reading blocks of the input on its standard input as fast as it takes
// them; with -k, in turn (the first job gets blocks 1, n+1, 2n+1 ...).
// cleanup, called once every job has ended, waits for the writers and
// reports input that no job was left to read.
func (cfg *Config) roundRobin(stdin io.Reader) (jobs iter.Seq2[Job, error], cleanup func() error) {
	p := cfg.Pipe
	n := max(cfg.Jobs, 1)
	readers, writers := make([]*os.File, n), make([]*os.File, n)
	for i := range n {
		var err error
		if readers[i], writers[i], err = os.Pipe(); err != nil {
			for _, f := range slices.Concat(readers[:i], writers[:i]) {
				f.Close()
			}
			return func(yield func(Job, error) bool) { yield(Job{}, fmt.Errorf("--round-robin: %w", err)) }, func() error { return nil }
		}
	}
	next, stop := iter.Pull2(blocks(stdin, p.Block, false, p))
	rr := &robin{next: next, alive: make([]bool, n), keep: cfg.KeepOrder}
	rr.cond = sync.NewCond(&rr.mu)
	list := make([]Job, n)
	for i := range n {
		rr.alive[i] = true
		list[i] = Job{Seq: i + 1, Line: cfg.Template.Expand(nil, i+1, slotMarker, cfg.Raw), Stream: readers[i]}
	}
	var wg sync.WaitGroup
	for i, w := range writers {
		wg.Go(func() { rr.write(i, w) })
	}
	jobs = func(yield func(Job, error) bool) {
		for _, j := range list {
			if !yield(j, nil) {
				return
			}
		}
	}
	return jobs, func() error {
		// A job that never started never closes its end: close them all,
		// so that every writer finds its job gone.
		for _, r := range readers {
			r.Close()
		}
		wg.Wait()
		stop()
		return rr.leftover()
	}
}

// robin hands the blocks of the input to the writers of the jobs' pipes.
type robin struct {
	mu      sync.Mutex
	cond    *sync.Cond
	next    func() ([]byte, error, bool)
	keep    bool     // -k: in turn
	turn    int      // whose turn it is, with keep
	tickets int      // without keep: writers served in the order they ask,
	serving int      // so that a writer whose job reads fast does not get every block
	alive   []bool   // the writers whose job still reads
	pending [][]byte // blocks taken by a writer whose job had ended
	done    bool     // the input has ended
	err     error    // reading it
}

// write writes blocks to writer i's job until the input ends or the job
// stops reading.
func (rr *robin) write(i int, w *os.File) {
	defer w.Close()
	for {
		b, ok := rr.take(i)
		if !ok {
			return
		}
		if _, err := w.Write(b); err != nil {
			rr.gone(i, b)
			return
		}
	}
}

// take returns the next block for writer i, waiting for its turn with -k.
func (rr *robin) take(i int) ([]byte, bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	ticket := rr.tickets
	rr.tickets++
	rr.cond.Broadcast() // to the first writers, waiting for the others to ask
	// Without -k the first blocks wait for every writer to ask, or the
	// first one could take them all into its pipe's buffer.
	for !rr.done && ((rr.keep && rr.turn != i) || (!rr.keep && (rr.serving != ticket || rr.tickets < len(rr.alive)))) {
		rr.cond.Wait()
	}
	if !rr.keep {
		rr.serving++
		defer rr.cond.Broadcast()
	}
	var b []byte
	switch {
	case len(rr.pending) > 0:
		b, rr.pending = rr.pending[0], rr.pending[1:]
	case rr.done:
		return nil, false
	default:
		var err error
		var ok bool
		if b, err, ok = rr.next(); !ok || err != nil {
			rr.done, rr.err = true, err
			rr.cond.Broadcast()
			return nil, false
		}
	}
	rr.pass()
	return b, true
}

// pass gives the turn to the next writer whose job still reads. Called
// with rr.mu held.
func (rr *robin) pass() {
	for range rr.alive {
		rr.turn = (rr.turn + 1) % len(rr.alive)
		if rr.alive[rr.turn] {
			break
		}
	}
	rr.cond.Broadcast()
}

// gone notes that writer i's job stopped reading, and keeps the block it
// could not write for another.
func (rr *robin) gone(i int, b []byte) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.alive[i] = false
	rr.pending = append([][]byte{b}, rr.pending...)
	if rr.turn == i || !rr.alive[rr.turn] {
		rr.pass()
	}
	rr.cond.Broadcast()
}

// leftover reports an input that could not be read, or that no job was
// left to read whole.
func (rr *robin) leftover() error {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	switch {
	case rr.err != nil:
		return fmt.Errorf("--round-robin: reading standard input: %w", rr.err)
	case !rr.done || len(rr.pending) > 0:
		return errors.New("--round-robin: every job ended before the input did: the rest of it was not read")
	}
	return nil
}
