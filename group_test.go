package herd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd"
)

func TestGroupCollectsEveryError(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			var p *herd.Pool
			if shared {
				p = newPool(t, herd.Config{Workers: 3})
				defer p.Close()
			}
			g := herd.NewGroup(t.Context(), p)
			var ran atomic.Int64
			for i := range 10 {
				g.Go(func(context.Context) error {
					ran.Add(1)
					if i%3 == 0 {
						return fmt.Errorf("task %d failed", i)
					}
					return nil
				})
			}
			err := g.Wait()
			if ran.Load() != 10 {
				t.Errorf("%d tasks ran, want 10", ran.Load())
			}
			for _, i := range []int{0, 3, 6, 9} {
				if !strings.Contains(fmt.Sprint(err), fmt.Sprintf("task %d failed", i)) {
					t.Errorf("Wait = %v, want it to include task %d's error", err, i)
				}
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 4 {
				t.Errorf("Wait joined %d errors, want 4", n)
			}
		})
	}
}

func TestGroupNoErrors(t *testing.T) {
	g := herd.NewGroup(t.Context(), nil)
	for range 100 {
		g.Go(func(context.Context) error { return nil })
	}
	if err := g.Wait(); err != nil {
		t.Errorf("Wait = %v, want nil", err)
	}
	// An empty group waits for nothing.
	if err := herd.NewGroup(t.Context(), nil).Wait(); err != nil {
		t.Errorf("empty Wait = %v, want nil", err)
	}
}

func TestFailFastGroupStopsAtFirstError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 4, QueueSize: 100})
		defer p.Close()
		g := herd.NewFailFastGroup(t.Context(), p)
		errFirst := errors.New("first")
		var causes atomic.Int64
		for range 3 {
			g.Go(func(ctx context.Context) error {
				<-ctx.Done()
				if errors.Is(context.Cause(ctx), errFirst) {
					causes.Add(1)
				}
				return ctx.Err()
			})
		}
		g.Go(func(context.Context) error {
			time.Sleep(time.Second)
			return errFirst
		})
		var late atomic.Bool
		synctest.Wait()
		time.Sleep(2 * time.Second)
		if err := g.Go(func(context.Context) error { late.Store(true); return nil }); !errors.Is(err, errFirst) {
			t.Errorf("Go after the failure = %v, want the first error", err)
		}
		if err := g.Wait(); err != errFirst {
			t.Errorf("Wait = %v, want %v", err, errFirst)
		}
		if causes.Load() != 3 {
			t.Errorf("%d tasks saw the first error as their context's cause, want 3", causes.Load())
		}
		if late.Load() {
			t.Errorf("a task submitted after the failure ran")
		}
	})
}

func TestGroupPanicIsAnErrorWithStack(t *testing.T) {
	for _, failFast := range []bool{false, true} {
		newGroup := herd.NewGroup
		if failFast {
			newGroup = herd.NewFailFastGroup
		}
		g := newGroup(t.Context(), nil)
		g.Go(func(context.Context) error { panicky(); return nil })
		err := g.Wait()
		pe, ok := errors.AsType[*herd.PanicError](err)
		if !ok || !strings.Contains(string(pe.Stack), "panicky") || !strings.Contains(err.Error(), "boom") {
			t.Errorf("failFast=%v: Wait = %v, want a *PanicError from panicky", failFast, err)
		}
	}
}

func TestGroupParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	g := herd.NewGroup(ctx, nil)
	for range 5 {
		g.Go(func(context.Context) error { t.Error("task ran"); return nil })
	}
	err := g.Wait()
	if !errors.Is(err, context.Canceled) || err.Error() != context.Canceled.Error() {
		t.Errorf("Wait = %q, want context.Canceled once", err)
	}
}

// Tasks adding to a group made outside the pool pass their context, so that
// a full queue makes them help rather than wait for the only worker.
func TestGroupTasksSubmitToTheirOwnGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1, QueueSize: 1})
		defer p.Close()
		g := herd.NewGroup(t.Context(), p)
		var n atomic.Int64
		var fan func(depth int) func(context.Context) error
		fan = func(depth int) func(context.Context) error {
			return func(ctx context.Context) error {
				n.Add(1)
				for range depth {
					g.GoContext(ctx, fan(depth-1))
				}
				return nil
			}
		}
		g.Go(fan(5)) // 1+5+20+60+120+120 = 326 tasks
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 326 {
			t.Errorf("%d tasks ran, want 326", n.Load())
		}
	})
}

func TestGroupOnClosedPool(t *testing.T) {
	p := newPool(t, herd.Config{})
	p.Close()
	g := herd.NewGroup(t.Context(), p)
	if err := g.Go(func(context.Context) error { return nil }); !errors.Is(err, herd.ErrClosed) {
		t.Errorf("Go on a closed pool = %v, want ErrClosed", err)
	}
	if err := g.Wait(); !errors.Is(err, herd.ErrClosed) {
		t.Errorf("Wait = %v, want ErrClosed", err)
	}
}
