// Package herd runs work on a fixed number of goroutines: a queue of things
// to be done, and workers pulling things off the queue.
//
// A [Pool] is the queue and its workers. Submitting to a full queue waits,
// and honours the caller's context; [Pool.TryGo] never waits.
// [Pool.Shutdown] stops it like [net/http.Server.Shutdown]: stop accepting,
// drain, and on the deadline cancel what runs and report what never ran.
//
//	p, err := herd.New(herd.Config{Workers: 8})
//	if err != nil { ... }
//	defer p.Close()
//	p.Go(ctx, func(ctx context.Context) error { ... })
//
// A [Group] waits for a set of tasks on a pool, either collecting every
// error ([NewGroup]) or stopping at the first ([NewFailFastGroup]), like
// golang.org/x/sync/errgroup:
//
//	g := herd.NewFailFastGroup(ctx, p)
//	for _, url := range urls {
//		g.Go(func(ctx context.Context) error { return fetch(ctx, url) })
//	}
//	err := g.Wait()
//
// [Group.SetLimit] caps a group's share of the pool's workers, and a
// [ResultGroup] collects each task's typed result in submission order.
//
// [Map], [MapUnordered] and [MapSlice] run a typed function over a sequence
// with N workers and give the results back in input order, in completion
// order, or as a slice:
//
//	for size, err := range herd.Map(ctx, 4, slices.Values(files), fileSize) { ... }
//
// # Guarantees
//
// A panicking task never disappears and never kills its worker: it becomes
// a [*PanicError], carrying the panic value and the stack of the goroutine
// that panicked, and reaches whoever waits for that task — the group's
// Wait, the range loop of Map, [Config.OnError], or else [Pool.Close].
//
// [Config.Workers] bounds how many tasks run at once. A task may still
// submit to its own pool, and wait for its own subtasks, without
// deadlocking it when the queue is full: a submit or a wait made by one of
// the pool's tasks runs queued tasks on the task's goroutine while it waits
// (the task is suspended meanwhile, so the bound holds), instead of waiting
// for a worker that might be itself. The pool knows the caller is a task by
// the context it passes: [Pool.Go] with the task's context, a group made with
// it, or [Group.GoContext] and [Group.WaitContext]. Any other caller waits.
//
// No goroutine outlives the call that owns it: the workers exit in Close or
// Shutdown, and the goroutines of Map when the range loop ends.
package herd
