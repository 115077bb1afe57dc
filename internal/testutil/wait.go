package testutil

import (
	"errors"
	"testing"
	"time"
)

// Backstop is how long [Eventually] waits before it gives up. It is no
// measure of how long things take: it only ends a test that would
// otherwise hang, and is generous so that a busy machine passes.
const Backstop = 2 * time.Minute

// Eventually calls cond until it reports true, and fails the test, naming
// what it waited for, if that takes longer than [Backstop]. It polls often
// at first and then less, every 50ms at most. Call it from the test's own
// goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("not yet")

// EventuallyNil calls f until it returns nil, and fails the test with what
// it waited for and f's last error if that takes longer than [Backstop].
func EventuallyNil(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(Backstop)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("waited %v for %s", Backstop, what)
			}
			t.Fatalf("waited %v for %s: %v", Backstop, what, err)
		}
		time.Sleep(wait)
	}
}
