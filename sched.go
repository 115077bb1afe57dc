package herd

// The queue of a Pool is a ring of tasks under the pool's lock, with three
// ways around it that keep the cost per task low and the workers fair:
//
//   - Idle workers wait on one channel, p.idle, and a submit that finds one
//     hands its task straight over, as a channel pool does, without the
//     lock. The ring only holds tasks while every worker is busy.
//   - A worker that finds tasks in the ring, and no worker idle, takes up to
//     batchSize of them at once into a batch of its own, so that it takes
//     the lock once for many tasks.
//   - A worker that finds the ring empty steals from another worker's batch
//     before it goes idle, and a worker that takes a batch while another
//     goes idle wakes it to steal; so a task never waits behind a busy
//     worker while another is idle.
//
// Going idle is a commitment: a worker adds itself to p.idleN, then looks
// once more at what it checked (the ring, the batches, whether to exit); a
// submit or a wake-up takes one from p.idleN before it sends on p.idle. As
// each side writes its own counter before it reads the other's, one of them
// always sees the other, and no task or wake-up is missed.
//
// Tasks of the pool that wait for something (a group's end, room under a
// group's limit) are helpers: they run queued tasks meanwhile, and when
// there are none they wait for a task to be handed over or their own event,
// whichever comes first.

// reserveIdle takes one idle worker for a send on p.idle, if there is one.
func (p *Pool) reserveIdle() bool {
	for {
		k := p.idleN.Load()
		if k <= 0 {
			return false
		}
		if p.idleN.CompareAndSwap(k, k-1) {
			return true
		}
	}
}

// wakeIdle wakes up to k idle workers to look again at the pool.
func (p *Pool) wakeIdle(k int) {
	for ; k > 0 && p.reserveIdle(); k-- {
		p.idle <- item{}
	}
}

// updateLeave sets p.leave from the state it mirrors and returns how many
// idle workers to wake for it. p.mu must be held.
func (p *Pool) updateLeave() int {
	switch {
	case p.closed.Load() && p.roomWait == 0:
		p.leave.Store(true)
		return len(p.workers)
	case p.shrink > 0:
		p.leave.Store(true)
		return p.shrink
	}
	p.leave.Store(false)
	return 0
}

// push queues it, or picks an idle worker or helper to hand a task to: it
// then returns the channel and the task the caller is to hand over once it
// has unlocked p.mu (see hand). p.mu must be held and the ring must have
// room.
func (p *Pool) push(it item) (chan item, item) {
	p.submitted++
	if p.reserveIdle() {
		return p.idle, it
	}
	if k := len(p.helpers); k > 0 {
		h := p.helpers[k-1]
		p.helpers[k-1] = nil
		p.helpers = p.helpers[:k-1]
		h.parked = false
		return h.handoff, it
	}
	p.ring[(p.head+p.n)%len(p.ring)] = it
	p.n++
	p.ringN.Store(int64(p.n))
	if p.reserveIdle() { // a worker went idle meanwhile: see the top of this file
		return p.idle, p.pop()
	}
	return nil, item{}
}

// hand hands it over on the channel push returned, if any.
func hand(c chan item, it item) {
	if c != nil {
		c <- it
	}
}

// pop takes the oldest queued task. p.mu must be held and the ring must not
// be empty.
func (p *Pool) pop() item {
	it := p.ring[p.head]
	p.ring[p.head] = item{}
	p.head = (p.head + 1) % len(p.ring)
	p.n--
	p.ringN.Store(int64(p.n))
	return it
}

// made tells a submitter waiting for room that there is some. p.mu must be
// held.
func (p *Pool) made() {
	if p.roomWait > 0 && p.n < len(p.ring) {
		select {
		case p.room <- struct{}{}:
		default: // a wake-up is pending already; the one who takes it passes it on
		}
	}
}

// quiet reports whether an idle worker has nothing to look at.
func (p *Pool) quiet() bool {
	return p.ringN.Load() == 0 && p.victimsN.Load() == 0 && !p.leave.Load()
}

// next finds w's next task once its batch is empty. It reports false when
// w is to exit.
func (p *Pool) next(w *worker) (item, bool) {
	for {
		if p.quiet() {
			p.idleN.Add(1) // commit, then look again
			if p.quiet() || !p.uncommit() {
				if it := <-p.idle; it.fn != nil {
					return it, true
				}
				continue // a wake-up
			}
		}
		it, found, exit := p.look(w)
		if found || exit {
			return it, !exit
		}
	}
}

// uncommit takes back a worker's commitment to receive on p.idle, unless a
// send has been reserved for it already.
func (p *Pool) uncommit() bool {
	return p.reserveIdle()
}

// look takes w's next task from the ring, taking a batch when no worker is
// idle, or else from another worker's batch; or reports that w is to exit.
func (p *Pool) look(w *worker) (it item, found, exit bool) {
	p.mu.Lock()
	if p.shrink > 0 {
		p.shrink--
		p.updateLeave()
		p.mu.Unlock()
		return item{}, false, true
	}
	wake := 0
	switch {
	case p.n > 0:
		it, found = p.pop(), true
		if p.idleN.Load() == 0 && len(p.helpers) == 0 {
			if k := min(p.n, len(w.batch)); k > 1 {
				for i := range k {
					w.batch[i] = p.pop()
				}
				w.fill(k)
				if !w.victim {
					w.victim = true
					p.victims = append(p.victims, w)
					p.victimsN.Store(int64(len(p.victims)))
				}
				wake = 1 // if a worker went idle meanwhile, it steals
			}
		}
		p.made()
	default:
		it, found = p.steal()
		if found && len(p.victims) > 0 {
			wake = 1 // there is more for another idle worker
		}
	}
	exit = !found && p.closed.Load() && p.roomWait == 0
	p.mu.Unlock()
	p.wakeIdle(wake)
	return it, found, exit
}

// take takes a queued task for a helper, from the ring or from a worker's
// batch. p.mu must be held.
func (p *Pool) take() (item, bool) {
	if p.n > 0 {
		it := p.pop()
		p.made()
		return it, true
	}
	return p.steal()
}

// steal takes a task from the batch of a worker busy with another. p.mu
// must be held.
func (p *Pool) steal() (item, bool) {
	for len(p.victims) > 0 {
		v := p.victims[len(p.victims)-1]
		if it, ok := v.pop(); ok {
			return it, true
		}
		v.victim = false
		p.victims[len(p.victims)-1] = nil
		p.victims = p.victims[:len(p.victims)-1]
		p.victimsN.Store(int64(len(p.victims)))
	}
	return item{}, false
}

// A helper is a task of the pool that waits for an event of its own while
// it runs queued tasks.
type helper struct {
	handoff chan item
	parked  bool // in p.helpers; under p.mu
}

func newHelper() *helper {
	return &helper{handoff: make(chan item, 1)}
}

// helpOrPark runs a queued task on the calling goroutine and reports true;
// or, if no task is queued, parks h and reports false. The caller then
// waits for its own event or a task on h.handoff, whichever comes first: a
// task handed over is run with runItem, after which h is no longer
// parked; on its own event the caller calls unpark.
func (p *Pool) helpOrPark(h *helper) bool {
	p.mu.Lock()
	it, ok := p.take()
	if !ok {
		h.parked = true
		p.helpers = append(p.helpers, h)
	}
	p.mu.Unlock()
	if ok {
		p.runItem(&p.helper, it)
	}
	return ok
}

// unpark ends the wait of a parked helper whose own event came. If a task
// was handed to it meanwhile, it runs it.
func (p *Pool) unpark(h *helper) {
	p.mu.Lock()
	if h.parked {
		h.parked = false
		for i, o := range p.helpers {
			if o == h {
				p.helpers = append(p.helpers[:i], p.helpers[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.runItem(&p.helper, <-h.handoff) // handed over before the lock was ours
}
