package herd

import "context"

// The queue of a Pool is one buffered channel, p.tasks: the channel pool of
// every Go tutorial, which is what the Go runtime makes cheapest. A submit
// is one send; a worker takes one task at a time and holds none it has not
// started, so an idle worker never waits behind a busy one, and a worker
// asked to exit leaves nothing behind.
//
// What a bare channel pool lacks is built around the channel, off the path
// of a task:
//
//   - Waking idle workers: a worker that finds the queue empty waits for a
//     task or for p.notify to be closed, which Close and a shrinking Resize
//     do to make every idle worker look at p.closed and p.shrink.
//   - Closing: p.tasks is never closed, so a submit that raced with Close
//     cannot panic. A worker of a closed pool exits once the queue is
//     empty, deciding so and leaving p.workers in one critical section of
//     p.mu. A submit that finds the pool closed after its send looks, under
//     p.mu, for a worker left: if there is none, it runs what is queued
//     itself (see queued). Either the last worker sees the task, or the
//     submit sees no worker: no task is left behind.
//   - Shrinking: Resize adds to p.shrink; each worker looks at it after
//     every task and before it waits.
//   - Helping: a task of the pool that waits (for room in the queue, for a
//     group, for room under a group's limit) receives from p.tasks in the
//     same select as its own event, and runs what it receives.

// poke wakes every idle worker to look at p.closed and p.shrink.
func (p *Pool) poke() {
	c := make(chan struct{})
	close(*p.notify.Swap(&c))
}

// wait blocks until the queue has a task for w, and reports false when w
// is to exit instead: to shrink the pool, or because the pool is closed and
// its queue empty. In both cases w has left p.workers.
func (p *Pool) wait(w *worker) (item, bool) {
	for {
		poked := *p.notify.Load() // before the looks below: see poke
		if p.shrink.Load() > 0 && p.exiting() {
			p.retire(w)
			return item{}, false
		}
		if p.closed.Load() && p.retireIfDrained(w) {
			return item{}, false
		}
		select {
		case it := <-p.tasks:
			return it, true
		case <-poked:
		}
	}
}

// exiting reports whether a worker is to exit now to shrink the pool, and
// if so takes that exit.
func (p *Pool) exiting() bool {
	for {
		k := p.shrink.Load()
		if k <= 0 {
			return false
		}
		if p.shrink.CompareAndSwap(k, k-1) {
			return true
		}
	}
}

// retireIfDrained retires w if the queue of the closed pool is empty, and
// reports whether it did.
func (p *Pool) retireIfDrained(w *worker) bool {
	w.publish()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tasks) > 0 {
		return false
	}
	p.retireLocked(w)
	return true
}

// retire takes w out of the pool's workers, keeping its counts.
func (p *Pool) retire(w *worker) {
	w.publish()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retireLocked(w)
}

func (p *Pool) retireLocked(w *worker) {
	delete(p.workers, w)
	p.retired.add(w.snapshot())
	if p.closed.Load() && len(p.workers) == 0 {
		close(p.exited)
	}
}

// queued makes sure that a task the caller has just queued runs: if the
// pool was closed meanwhile and its last worker has exited, the caller runs
// what is queued itself.
func (p *Pool) queued() {
	if !p.closed.Load() {
		return
	}
	p.mu.Lock()
	gone := len(p.workers) == 0
	p.mu.Unlock()
	for gone {
		select {
		case it := <-p.tasks:
			p.help(it)
		default:
			return
		}
	}
}

// help runs a task that a waiting caller received from the queue.
func (p *Pool) help(it item) {
	p.helper.received.Add(1)
	p.runItem(&p.helper, it)
}

// helping returns the queue for a caller that is one of p's tasks to
// receive from while it waits, and nil (a channel never ready) for any
// other caller.
func (p *Pool) helping(caller context.Context) <-chan item {
	if caller.Value(poolKey{}) == p {
		return p.tasks
	}
	return nil
}
