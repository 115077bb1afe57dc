package herd

import (
	"errors"
	"fmt"
	"runtime/debug"
)

var (
	// ErrClosed is returned when submitting to a [Pool] that has been
	// closed or shut down.
	ErrClosed = errors.New("herd: pool closed")

	// ErrNotRun is the error of a task that was still queued when
	// [Pool.Shutdown] gave up waiting, and so never ran.
	ErrNotRun = errors.New("herd: task never ran: pool shut down")

	// ErrTimeout is the cause (see [context.Cause]) of a task context
	// cancelled because the task ran longer than [Config.TaskTimeout].
	ErrTimeout = errors.New("herd: task timed out")

	// errNotStarted is what running a task returns when Shutdown gave up
	// before it could start: it is counted as never run.
	errNotStarted = errors.New("herd: task not started")

	// errGoexit is the error of a task that called runtime.Goexit.
	errGoexit = errors.New("herd: task called runtime.Goexit")
)

// PanicError is the error of a task that panicked. It carries the value
// passed to panic and the stack of the goroutine at the moment of the panic,
// so the cause is never lost even though the task ran on another goroutine.
// The worker that ran the task keeps serving.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack, as runtime/debug.Stack formats it
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// escaped is the error of a task that did not return: v is what recover
// gave, in a function deferred by the task's caller. A panic becomes a
// *PanicError, and a runtime.Goexit errGoexit.
//
// Unlike errgroup, which lets a panicking goroutine take the program down,
// herd turns a panic into the task's error: the task ran on a worker the
// caller never sees, and a long-running pool (a server, a queue worker)
// would otherwise die with every task in flight. The error keeps the value
// and the stack, so nothing is lost; the worker goes on serving.
func escaped(v any) error {
	if v != nil {
		return newPanicError(v)
	}
	return errGoexit
}

// Error reports the panic value followed by the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("herd: task panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error, so that [errors.Is] and
// [errors.As] see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
