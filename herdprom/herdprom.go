// Package herdprom exports a [herd.Pool]'s figures to Prometheus, for
// programs that embed the pool: herd itself stays free of dependencies, and
// a program that does not use Prometheus does not link it.
//
//	pool, _ := herd.New(herd.Config{Workers: 8})
//	prometheus.MustRegister(herdprom.NewPoolCollector(pool, "resize"))
//
// Each scrape takes one [herd.Pool.Metrics] snapshot, which costs the pool
// nothing on its tasks' path.
package herdprom

import (
	"github.com/goherd/herd"
	"github.com/prometheus/client_golang/prometheus"
)

// NewPoolCollector returns a collector of the pool's figures, labelled
// pool=name so that a program can export several pools:
//
//	herd_pool_workers                     workers running now
//	herd_pool_tasks_waiting               tasks queued, not picked up yet
//	herd_pool_tasks_running               tasks running now
//	herd_pool_tasks_submitted_total       tasks accepted
//	herd_pool_tasks_finished_total        by outcome: succeeded, failed, panicked, not_run
//	herd_pool_task_duration_seconds       a summary of the sampled run times (one task in 16)
func NewPoolCollector(p *herd.Pool, name string) prometheus.Collector {
	labels := prometheus.Labels{"pool": name}
	return &poolCollector{
		p:         p,
		workers:   prometheus.NewDesc("herd_pool_workers", "Workers running now.", nil, labels),
		waiting:   prometheus.NewDesc("herd_pool_tasks_waiting", "Tasks queued, not picked up by a worker yet.", nil, labels),
		running:   prometheus.NewDesc("herd_pool_tasks_running", "Tasks running now.", nil, labels),
		submitted: prometheus.NewDesc("herd_pool_tasks_submitted_total", "Tasks the pool accepted.", nil, labels),
		finished: prometheus.NewDesc("herd_pool_tasks_finished_total",
			"Tasks finished, by outcome: succeeded, failed (after their retries), panicked, not_run (discarded by Shutdown).",
			[]string{"outcome"}, labels),
		duration: prometheus.NewDesc("herd_pool_task_duration_seconds",
			"How long tasks ran, retries included, sampled one task in 16 per worker; the quantiles are upper bounds within a factor of two.",
			nil, labels),
	}
}

type poolCollector struct {
	p                                                        *herd.Pool
	workers, waiting, running, submitted, finished, duration *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.workers, c.waiting, c.running, c.submitted, c.finished, c.duration} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.p.Metrics()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(c.workers, m.Workers)
	gauge(c.waiting, m.Waiting)
	gauge(c.running, m.Running)
	ch <- prometheus.MustNewConstMetric(c.submitted, prometheus.CounterValue, float64(m.Submitted))
	for outcome, n := range map[string]uint64{"succeeded": m.Succeeded, "failed": m.Failed, "panicked": m.Panicked, "not_run": m.NotRun} {
		ch <- prometheus.MustNewConstMetric(c.finished, prometheus.CounterValue, float64(n), outcome)
	}
	l := m.Latency
	ch <- prometheus.MustNewConstSummary(c.duration, l.Samples, l.Mean.Seconds()*float64(l.Samples),
		map[float64]float64{0.5: l.P50.Seconds(), 0.9: l.P90.Seconds(), 0.99: l.P99.Seconds()})
}
