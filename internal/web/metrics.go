package web

import (
	"context"
	"runtime"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// queueCollector exports a queue's figures: those of the whole queue, read
// from its own counts at each scrape, and this process's counters
// (queue.Client.Counts). No label names a job, a run, a command or a host.
type queueCollector struct {
	c *queue.Client

	jobs, oldest, paused, enqueued, finished, duration, wait *prometheus.Desc
	limit, slots, held                                       *prometheus.Desc
}

func newQueueCollector(c *queue.Client) *queueCollector {
	return &queueCollector{
		c: c,
		jobs: prometheus.NewDesc("herd_queue_jobs",
			"Jobs in the queue by state: waiting for a worker (scheduled ones included), in_flight (running, or held by a worker for a retry or their time), dead, pending (waiting for their parents).",
			[]string{"queue", "state"}, nil),
		oldest: prometheus.NewDesc("herd_queue_oldest_waiting_seconds",
			"How long the oldest job not yet handed to a worker has been ready to run.", []string{"queue"}, nil),
		paused: prometheus.NewDesc("herd_queue_paused", "1 while the queue is paused.", []string{"queue"}, nil),
		enqueued: prometheus.NewDesc("herd_queue_jobs_enqueued_total",
			"Jobs this process enqueued.", []string{"queue"}, nil),
		finished: prometheus.NewDesc("herd_queue_jobs_finished_total",
			"Attempts this process's workers finished, by outcome: succeeded, failed (to be tried again), dead, cancelled.",
			[]string{"queue", "outcome"}, nil),
		duration: prometheus.NewDesc("herd_queue_job_duration_seconds",
			"How long the attempts this process's workers ran took.", []string{"queue"}, nil),
		wait: prometheus.NewDesc("herd_queue_job_wait_seconds",
			"How long jobs waited from when they could run to their first attempt, in this process's workers.", []string{"queue"}, nil),
		limit: prometheus.NewDesc("herd_queue_limit",
			"A limited queue's limits across every worker (herd queue limit): concurrency (jobs at once), rate (starts a second), burst, key_concurrency (jobs of one key at once); 0 is no limit.",
			[]string{"queue", "limit"}, nil),
		slots: prometheus.NewDesc("herd_queue_limit_running",
			"Jobs of a queue with a concurrency limit running now across every worker: the slots held.", []string{"queue"}, nil),
		held: prometheus.NewDesc("herd_queue_jobs_held",
			"Jobs of a limited queue that workers hold until a slot frees (part of in_flight); the queue's other jobs not started wait in it.", []string{"queue"}, nil),
	}
}

func (qc *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{qc.jobs, qc.oldest, qc.paused, qc.enqueued, qc.finished, qc.duration, qc.wait, qc.limit, qc.slots, qc.held} {
		ch <- d
	}
}

func (qc *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := qc.c.Stats(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(qc.jobs, err)
	} else {
		for _, q := range summarize(st, time.Now()) {
			ch <- prometheus.MustNewConstMetric(qc.jobs, prometheus.GaugeValue, float64(q.Waiting), q.Queue, "waiting")
			ch <- prometheus.MustNewConstMetric(qc.jobs, prometheus.GaugeValue, float64(q.InFlight), q.Queue, "in_flight")
			ch <- prometheus.MustNewConstMetric(qc.jobs, prometheus.GaugeValue, float64(q.Dead), q.Queue, "dead")
			ch <- prometheus.MustNewConstMetric(qc.jobs, prometheus.GaugeValue, float64(q.Pending), q.Queue, "pending")
			ch <- prometheus.MustNewConstMetric(qc.oldest, prometheus.GaugeValue, q.OldestWaiting.Seconds(), q.Queue)
			ch <- prometheus.MustNewConstMetric(qc.paused, prometheus.GaugeValue, boolValue(q.Paused), q.Queue)
		}
		for _, l := range st.Limits {
			for name, v := range map[string]float64{"concurrency": float64(l.Concurrency), "rate": l.Rate, "burst": float64(l.Burst), "key_concurrency": float64(l.KeyConcurrency)} {
				ch <- prometheus.MustNewConstMetric(qc.limit, prometheus.GaugeValue, v, l.Queue, name)
			}
			if l.Concurrency > 0 {
				ch <- prometheus.MustNewConstMetric(qc.slots, prometheus.GaugeValue, float64(l.Running), l.Queue)
			}
			ch <- prometheus.MustNewConstMetric(qc.held, prometheus.GaugeValue, float64(l.Held), l.Queue)
		}
	}
	for _, q := range qc.c.Counts().Queues {
		ch <- prometheus.MustNewConstMetric(qc.enqueued, prometheus.CounterValue, float64(q.Enqueued), q.Queue)
		for outcome, n := range map[string]uint64{"succeeded": q.Succeeded, "failed": q.Failed, "dead": q.Dead, "cancelled": q.Cancelled} {
			ch <- prometheus.MustNewConstMetric(qc.finished, prometheus.CounterValue, float64(n), q.Queue, outcome)
		}
		ch <- histogram(qc.duration, q.Duration, q.Queue)
		ch <- histogram(qc.wait, q.Wait, q.Queue)
	}
}

func histogram(d *prometheus.Desc, h queue.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b.Seconds()] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// buildInfo is herd_build_info: 1, labelled with herd's version and Go's.
func buildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "herd_build_info",
		Help:        "1, labelled with the version of herd and of the Go that built it.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
