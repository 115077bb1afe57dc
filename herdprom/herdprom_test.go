package herdprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/goherd/herd"
	"github.com/goherd/herd/herdprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The collector's figures are the pool's: 10 tasks, 3 of them failing.
func TestPoolCollector(t *testing.T) {
	p, err := herd.New(herd.Config{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	g := herd.NewGroup(context.Background(), p)
	for i := range 10 {
		g.Go(func(context.Context) error {
			if i%4 == 0 {
				return errors.New("no")
			}
			return nil
		})
	}
	g.Wait()
	p.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(herdprom.NewPoolCollector(p, "test"))
	want := `
# HELP herd_pool_tasks_finished_total Tasks finished, by outcome: succeeded, failed (after their retries), panicked, not_run (discarded by Shutdown).
# TYPE herd_pool_tasks_finished_total counter
herd_pool_tasks_finished_total{outcome="failed",pool="test"} 3
herd_pool_tasks_finished_total{outcome="not_run",pool="test"} 0
herd_pool_tasks_finished_total{outcome="panicked",pool="test"} 0
herd_pool_tasks_finished_total{outcome="succeeded",pool="test"} 7
# HELP herd_pool_tasks_submitted_total Tasks the pool accepted.
# TYPE herd_pool_tasks_submitted_total counter
herd_pool_tasks_submitted_total{pool="test"} 10
# HELP herd_pool_tasks_running Tasks running now.
# TYPE herd_pool_tasks_running gauge
herd_pool_tasks_running{pool="test"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"herd_pool_tasks_finished_total", "herd_pool_tasks_submitted_total", "herd_pool_tasks_running"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "herd_pool_task_duration_seconds", "herd_pool_workers", "herd_pool_tasks_waiting"); err != nil || n != 3 {
		t.Errorf("the duration summary, workers and waiting: %d metrics, %v; want 3", n, err)
	}
}
