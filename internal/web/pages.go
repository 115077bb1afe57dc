package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
)

// QueueRow is a named queue's figures on the overview: its priorities
// added up.
type QueueRow struct {
	Queue         string        `json:"queue"`
	Waiting       uint64        `json:"waiting"`   // not handed to a worker yet, scheduled ones included
	Running       int           `json:"running"`   // in the workers' hands, as their heartbeats say
	InFlight      int           `json:"in_flight"` // handed out: running, or held for a retry or its time
	Ahead         int           `json:"ahead"`     // taken by a worker ahead of a free slot of its own: they start next
	Later         int           `json:"later"`     // in flight but not running: retrying or scheduled
	Pending       uint64        `json:"pending"`   // waiting for their parents
	Dead          uint64        `json:"dead"`
	Paused        bool          `json:"paused,omitempty"`
	OldestWaiting time.Duration `json:"oldest_waiting_ns"`
	Rate          float64       `json:"settled_per_second"`
	// Limits are the queue's limits across every worker, if it has any
	// (herd queue limit); Held counts its jobs workers hold until a slot
	// frees (part of InFlight, not of Later).
	Limits *queue.Limits `json:"limits,omitempty"`
	Held   int           `json:"held,omitempty"`
}

// Overview is the overview page's data.
type Overview struct {
	Queues  []QueueRow    `json:"queues"`
	Dead    uint64        `json:"dead"`
	Pending uint64        `json:"pending"`
	Records uint64        `json:"records"`
	Workers int           `json:"workers"`
	Chart   template.HTML `json:"-"`
}

// summarize adds up a queue's priorities.
func summarize(st *queue.Stats, now time.Time) []QueueRow {
	var rows []QueueRow
	for _, q := range st.Queues {
		if len(rows) == 0 || rows[len(rows)-1].Queue != q.Queue {
			rows = append(rows, QueueRow{Queue: q.Queue, Dead: st.DeadIn[q.Queue], Pending: st.PendingIn[q.Queue]})
		}
		r := &rows[len(rows)-1]
		r.Waiting += q.Waiting
		r.InFlight += q.InFlight
		r.Paused = r.Paused || q.Paused
		if !q.Oldest.IsZero() {
			r.OldestWaiting = max(r.OldestWaiting, now.Sub(q.Oldest))
		}
	}
	for _, l := range st.Limits {
		i, found := slices.BinarySearchFunc(rows, l.Queue, func(r QueueRow, name string) int { return strings.Compare(r.Queue, name) })
		if !found { // limited before it had jobs
			rows = slices.Insert(rows, i, QueueRow{Queue: l.Queue})
		}
		rows[i].Limits, rows[i].Held = &l.Limits, l.Held
	}
	return rows
}

func (d *dashboard) overview(r *http.Request) (any, error) {
	st, err := d.stats(r.Context())
	if err != nil {
		return nil, err
	}
	ws, err := d.c.Workers(r.Context())
	if err != nil {
		return nil, err
	}
	running, ahead := map[string]int{}, map[string]int{}
	for _, w := range ws {
		for _, j := range w.Running {
			running[j.Queue]++
		}
		for q, n := range w.Ahead {
			ahead[q] += n
		}
	}
	rates, series := d.rates()
	o := &Overview{Queues: summarize(st, time.Now()), Dead: st.Dead, Pending: st.Pending, Records: st.Records, Workers: len(ws), Chart: chart(series)}
	for i := range o.Queues {
		q := &o.Queues[i]
		q.Running = min(running[q.Queue], q.InFlight)
		q.Held = min(q.Held, q.InFlight-q.Running)
		q.Ahead = min(ahead[q.Queue], q.InFlight-q.Running-q.Held)
		q.Later = q.InFlight - q.Running - q.Held - q.Ahead
		q.Rate = rates[q.Queue]
	}
	return o, nil
}

// chart draws the jobs settled per second and waiting over the last
// minutes, as SVG made of numbers only.
func chart(series []point) template.HTML {
	const w, h = 600.0, 120.0
	if len(series) < 2 {
		return `<p class="muted">The chart fills in as the dashboard samples the queue, every 2 seconds.</p>`
	}
	var top float64
	var topWaiting uint64
	for _, p := range series {
		top, topWaiting = max(top, p.rate), max(topWaiting, p.waiting)
	}
	top, topWaiting = max(top, 1), max(topWaiting, 1)
	start := series[len(series)-1].at.Add(-chartSpan)
	line := func(y func(point) float64) string {
		var b strings.Builder
		for _, p := range series {
			x := p.at.Sub(start).Seconds() / chartSpan.Seconds() * w
			fmt.Fprintf(&b, "%.1f,%.1f ", x, h-y(p)*(h-4)-2)
		}
		return b.String()
	}
	return template.HTML(fmt.Sprintf(`<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="jobs settled per second (up to %.0f) and waiting (up to %d) over the last 5 minutes">`+
		`<polyline class="waiting" points="%s"/><polyline class="rate" points="%s"/></svg>`+
		`<p class="legend"><span class="rate">settled/s, up to %.1f</span> <span class="waiting">waiting, up to %d</span> · last 5 minutes</p>`,
		w, h, top, topWaiting,
		line(func(p point) float64 { return float64(p.waiting) / float64(topWaiting) }),
		line(func(p point) float64 { return p.rate / top }),
		top, topWaiting))
}

// JobsPage is the jobs page's data.
type JobsPage struct {
	Query  queue.JobQuery `json:"query"`
	Jobs   []*queue.Info  `json:"jobs"`
	Next   string         `json:"next,omitempty"` // the next page's query string
	Count  uint64         `json:"count"`          // of the state, from the queue's figures (not of the filter)
	States []queue.State  `json:"-"`
	Queues []string       `json:"-"`
	// Done says what the action that led here did ("Retried 3 jobs."),
	// or is "".
	Done string `json:"-"`
	// Whole is set when the page holds every job of the filter: then
	// len(Jobs) is how many match it.
	Whole bool `json:"-"`
}

// Filtered reports whether the page's jobs are filtered on more than their
// state and queue: then Count, the queue's figure, is not theirs.
func (p *JobsPage) Filtered() bool {
	return p.Query.Kind != "" || p.Query.IDPrefix != "" || p.Query.Error != ""
}

// Matching names the dead jobs that the page's buttons for every job of
// the filter act on: "the 3 dead jobs of queue mail", "every dead job that
// matches the filter" when how many is not known.
func (p *JobsPage) Matching() string {
	n := 0 // not known
	switch {
	case p.Whole:
		n = len(p.Jobs)
	case !p.Filtered():
		n = int(p.Count)
	}
	s := "every dead job"
	switch {
	case n == 1:
		s = "the one dead job"
	case n > 1:
		s = fmt.Sprintf("the %d dead jobs", n)
	}
	if p.Query.Queue != "" {
		s += " of queue " + p.Query.Queue
	}
	switch {
	case p.Filtered() && n > 1:
		s += " that match the filter"
	case p.Filtered():
		s += " that matches the filter"
	}
	return s
}

// doneMessage says what an action did, from the done and n parameters of
// the page it sent the browser to (made by actionDone); "" if they are
// not an action's.
func doneMessage(v url.Values) string {
	n, err := strconv.Atoi(v.Get("n"))
	if err != nil || n < 0 {
		return ""
	}
	jobs := "jobs"
	if n == 1 {
		jobs = "job"
	}
	switch v.Get("done") {
	case "retried":
		return fmt.Sprintf("Retried %d %s: queued to run again.", n, jobs)
	case "deleted":
		return fmt.Sprintf("Deleted %d %s and their records.", n, jobs)
	}
	return ""
}

// actionDone is the dead jobs' page, with the filter the action was
// given, saying what the action did to n jobs.
func actionDone(r *http.Request, done string, n int) string {
	v := url.Values{"state": {"dead"}, "done": {done}, "n": {strconv.Itoa(n)}}
	for param, field := range map[string]string{"queue": "queue", "kind": "kind", "id": "prefix", "error": "error"} {
		if f := r.PostFormValue(field); f != "" {
			v.Set(param, f)
		}
	}
	return "/jobs?" + v.Encode()
}

var listedStates = []queue.State{"", queue.Queued, queue.Running, queue.Retrying, queue.Scheduled, queue.Pending, queue.Succeeded, queue.Dead, queue.Cancelled, queue.Skipped}

func (d *dashboard) jobs(r *http.Request) (any, error) {
	v := r.URL.Query()
	q := queue.JobQuery{State: queue.State(v.Get("state")), Queue: v.Get("queue"), Kind: v.Get("kind"), IDPrefix: v.Get("id"), Error: v.Get("error")}
	if !slices.Contains(listedStates, q.State) {
		return nil, badRequest{fmt.Errorf("no state %q", q.State)}
	}
	if strings.ContainsAny(q.Queue, ".*> \t") {
		return nil, badRequest{fmt.Errorf("no queue %q", q.Queue)}
	}
	if a := v.Get("after"); a != "" {
		var err error
		if q.After, err = strconv.ParseUint(a, 10, 64); err != nil {
			return nil, badRequest{fmt.Errorf("after %q: want a number", a)}
		}
	}
	page, err := d.c.Jobs(r.Context(), q)
	if err != nil {
		return nil, err
	}
	st, err := d.stats(r.Context())
	if err != nil {
		return nil, err
	}
	p := &JobsPage{Query: q, Jobs: page.Jobs, States: listedStates, Done: doneMessage(v), Whole: q.After == 0 && page.Next == 0}
	if p.Jobs == nil {
		p.Jobs = []*queue.Info{} // [] in JSON
	}
	for _, row := range summarize(st, time.Now()) {
		if q.Queue == "" || q.Queue == row.Queue {
			switch q.State {
			case queue.Dead:
				p.Count += row.Dead
			case "":
				p.Count += row.Waiting + uint64(row.InFlight)
			case queue.Queued:
				p.Count += row.Waiting
			case queue.Pending:
				p.Count += row.Pending
			}
		}
		p.Queues = append(p.Queues, row.Queue)
	}
	if page.Next != 0 {
		v.Set("after", strconv.FormatUint(page.Next, 10))
		p.Next = v.Encode()
	}
	return p, nil
}

// JobPage is a job's page's data: the job, and its graph if it waits for
// other jobs or others wait for it.
type JobPage struct {
	*queue.Info
	Graph template.HTML `json:"-"`
	// Command is a command job of herd run --queue decoded: its run, its
	// command line, how it ended and its output.
	Command *remote.JobView `json:"command,omitempty"`
}

func (d *dashboard) job(r *http.Request) (any, error) {
	info, err := d.c.Info(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	g, err := jobGraph(r.Context(), d.c, info)
	if err != nil {
		return nil, err
	}
	p := &JobPage{Info: info, Graph: g.svg("job " + info.ID + ", the jobs it waits for, and those that wait for it")}
	if info.Kind == remote.Kind {
		v := remote.View(info)
		p.Command = &v
	}
	return p, nil
}

func (d *dashboard) workers(r *http.Request) (any, error) {
	ws, err := d.c.Workers(r.Context())
	if ws == nil {
		ws = []queue.WorkerInfo{} // [] in JSON
	}
	return ws, err
}

// setLimits sets the limits of the queue named in the path, or by the
// form's queue field, from the overview's form: fields left empty are no
// limit; clear=1 removes them all.
func (d *dashboard) setLimits(r *http.Request) (string, error) {
	var l queue.Limits
	if r.PostFormValue("clear") == "" {
		for _, f := range []struct {
			name string
			n    *int
		}{{"concurrency", &l.Concurrency}, {"burst", &l.Burst}, {"key_concurrency", &l.KeyConcurrency}} {
			v := strings.TrimSpace(r.PostFormValue(f.name))
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", badRequest{fmt.Errorf("%s %q: want a whole number", f.name, v)}
			}
			*f.n = n
		}
		if v := strings.TrimSpace(r.PostFormValue("rate")); v != "" {
			rate, err := queue.ParseRate(v)
			if err != nil {
				return "", badRequest{err}
			}
			l.Rate = rate
		}
	}
	name := r.PathValue("name")
	if name == "" {
		name = strings.TrimSpace(r.PostFormValue("queue"))
	}
	return "/", d.c.SetLimits(r.Context(), name, l)
}

func (d *dashboard) retryJob(r *http.Request) (string, error) {
	return "/jobs/" + url.PathEscape(r.PathValue("id")), d.c.Retry(r.Context(), r.PathValue("id"))
}

func (d *dashboard) deleteJob(r *http.Request) (string, error) {
	return actionDone(r, "deleted", 1), d.c.Delete(r.Context(), r.PathValue("id"))
}

func (d *dashboard) cancelJob(r *http.Request) (string, error) {
	return "/jobs/" + url.PathEscape(r.PathValue("id")), d.c.Cancel(r.Context(), r.PathValue("id"))
}

// bulk retries, or deletes, the dead jobs named by the form's id fields,
// or with all=1 every dead job that its queue, kind, id and error fields
// match (up to 100,000 at once).
func (d *dashboard) bulk(retry bool) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		ids := r.PostForm["id"]
		if r.PostFormValue("all") == "1" {
			q := queue.JobQuery{State: queue.Dead, Queue: r.PostFormValue("queue"), Kind: r.PostFormValue("kind"),
				IDPrefix: r.PostFormValue("prefix"), Error: r.PostFormValue("error"), Limit: 1000}
			for len(ids) < 100_000 {
				page, err := d.c.Jobs(r.Context(), q)
				if err != nil {
					return "", err
				}
				for _, info := range page.Jobs {
					ids = append(ids, info.ID)
				}
				if page.Next == 0 {
					break
				}
				q.After = page.Next
			}
		}
		if len(ids) == 0 {
			return "", errors.New("no job selected")
		}
		var errs []error
		for _, id := range ids {
			var err error
			if retry {
				err = d.c.Retry(r.Context(), id)
			} else {
				err = d.c.Delete(r.Context(), id)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return "", fmt.Errorf("%d of %d jobs: %w", len(errs), len(ids), errs[0])
		}
		verb := "deleted"
		if retry {
			verb = "retried"
		}
		return actionDone(r, verb, len(ids)), nil
	}
}

func (d *dashboard) drain(r *http.Request) (string, error) {
	drain := r.PostFormValue("resume") == ""
	return "/workers", d.c.Drain(r.Context(), r.PathValue("id"), drain)
}

func errorsIsNotFound(err error) bool { return errors.Is(err, queue.ErrNotFound) }

// ago is how long ago t was, in a few characters.
func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return roundDuration(time.Since(t)) + " ago"
}

// roundDuration shows d to a precision a person reads at a glance.
func roundDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// withQuery returns the page's query with key set to value ("" removes
// it), and the cursor reset, safe in a link (url.Values encodes it).
func withQuery(q url.Values, key, value string) template.URL {
	v := url.Values{}
	for k, vs := range q {
		v[k] = slices.Clone(vs)
	}
	v.Del("after")
	if value == "" {
		v.Del(key)
	} else {
		v.Set(key, value)
	}
	return template.URL(v.Encode())
}

// truncate shortens s to at most n bytes, saying how much it left out.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
