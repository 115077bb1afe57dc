package herd_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goherd/herd"
)

func TestResultGroupKeepsSubmissionOrder(t *testing.T) {
	p := newPool(t, herd.Config{Workers: 4})
	defer p.Close()
	g := herd.NewResultGroup[int](t.Context(), p)
	const n = 1000 // several blocks of places
	for i := range n {
		g.Go(func(context.Context) (int, error) {
			if i%7 == 0 {
				time.Sleep(time.Microsecond) // finish out of order
			}
			return i * i, nil
		})
	}
	got, err := g.Wait()
	if err != nil || len(got) != n {
		t.Fatalf("Wait = %d results, %v", len(got), err)
	}
	for i, v := range got {
		if v != i*i {
			t.Fatalf("result %d = %d, want %d", i, v, i*i)
		}
	}
}

func TestResultGroupFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 1})
		defer p.Close()
		g := herd.NewResultGroup[string](t.Context(), p)
		g.SetLimit(1)
		errPartial := errors.New("partial")
		release := make(chan struct{})
		g.Go(func(context.Context) (string, error) { <-release; return "a", nil })
		if g.TryGo(func(context.Context) (string, error) { return "refused", nil }) {
			t.Error("TryGo past the limit = true")
		}
		close(release)
		g.Go(func(context.Context) (string, error) { return "b", errPartial })
		g.Go(func(context.Context) (string, error) { panic("boom") })
		synctest.Wait()
		if !g.TryGo(func(context.Context) (string, error) { return "d", nil }) {
			t.Error("TryGo with room = false")
		}
		got, err := g.Wait()
		if want := []string{"a", "b", "", "d"}; !slices.Equal(got, want) {
			t.Errorf("results %q, want %q", got, want)
		}
		if _, panicked := errors.AsType[*herd.PanicError](err); !errors.Is(err, errPartial) || !panicked {
			t.Errorf("Wait error = %v, want partial and a panic", err)
		}
	})
}

func TestFailFastResultGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, herd.Config{Workers: 2})
		defer p.Close()
		errFirst := errors.New("first")
		g := herd.NewFailFastResultGroup[int](t.Context(), p)
		g.GoContext(t.Context(), func(context.Context) (int, error) { return 1, errFirst })
		synctest.Wait()
		if err := g.Go(func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, errFirst) {
			t.Errorf("Go after the group failed = %v, want its error", err)
		}
		got, err := g.WaitContext(t.Context())
		if !errors.Is(err, errFirst) || !slices.Equal(got, []int{1, 0}) {
			t.Errorf("WaitContext = %v, %v; want [1 0], first", got, err)
		}
	})
}
