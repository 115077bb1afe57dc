package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/queue"
)

// runs keeps a tally of each run of herd run --queue that the dashboard
// was asked about. A job's outcome, once finished, does not change (a
// retry from the dashboard forgets it), so each look reads only the jobs
// not finished at the last one.
type runs struct {
	c     *queue.Client
	mu    sync.Mutex
	by    map[string]*tally
	apart map[string]apartView // see pageViews
}

// apartView is what a run's page shows of a finished job whose result is
// kept apart, as it was at updated.
type apartView struct {
	updated time.Time
	view    remote.JobView
}

// maxApartViews bounds the views pageViews remembers: each holds at most
// 32 KiB of output.
const maxApartViews = 1024

// tally is what is known of one run's jobs.
type tally struct {
	mu       sync.Mutex
	finished map[int]finished // by job number
	missing  map[int]bool     // jobs the queue did not have at the last read
	read     time.Time
}

type finished struct {
	exit    int
	failed  bool // a skipped job is failed too: a retry runs it
	skipped bool // never started: the run was stopped
	gone    bool // deleted from the queue, or expired, without an outcome seen
	at      time.Time
}

// RunRow is a run of herd run --queue as the runs page lists it.
type RunRow struct {
	ID         string         `json:"id"`
	Command    string         `json:"command"`
	Started    time.Time      `json:"started"`
	Jobs       int            `json:"jobs"` // enqueued so far
	Enqueueing bool           `json:"enqueueing,omitempty"`
	Stopped    string         `json:"stopped,omitempty"`
	Done       int            `json:"done"`
	Failed     int            `json:"failed"`                     // started, and did not succeed
	NotStarted int            `json:"not_started,omitempty"`      // done without starting: the run was stopped first
	Gone       int            `json:"gone,omitempty"`             // done: deleted from the queue, or expired, with no outcome seen
	Exits      map[string]int `json:"failures_by_exit,omitempty"` // failed jobs by exit status
	Rate       float64        `json:"jobs_per_second"`
	ETA        time.Duration  `json:"eta_ns,omitempty"`
}

// ToRetry names the run's jobs that a retry runs again, the failed and
// those not started: "4 failed or not started jobs"; "" if there are none.
func (r RunRow) ToRetry() string {
	switch {
	case r.NotStarted > 0:
		return fmt.Sprintf("%d failed or not started jobs", r.Failed+r.NotStarted)
	case r.Failed > 0:
		return fmt.Sprintf("%d failed jobs", r.Failed)
	}
	return ""
}

// Finished reports whether every job of the run has finished.
func (r RunRow) Finished() bool { return !r.Enqueueing && r.Done >= r.Jobs }

func newRuns(c *queue.Client) *runs {
	return &runs{c: c, by: map[string]*tally{}, apart: map[string]apartView{}}
}

// rows lists the runs, newest first, with their tallies.
func (rs *runs) rows(ctx context.Context) ([]RunRow, error) {
	entries, err := rs.c.ListMeta(ctx, remote.RunKey("*"))
	if err != nil {
		return nil, err
	}
	rows := []RunRow{} // [] in JSON when there is none
	for _, e := range entries {
		var st remote.State
		if json.Unmarshal(e.Value, &st) == nil {
			rows = append(rows, rowOf(strings.TrimPrefix(e.Key, remote.RunKey("")), st))
		}
	}
	slices.SortFunc(rows, func(a, b RunRow) int { return b.Started.Compare(a.Started) })
	for i := range rows {
		if err := rs.count(ctx, &rows[i]); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// row returns one run's row.
func (rs *runs) row(ctx context.Context, id string) (*RunRow, error) {
	st, err := remote.ReadState(ctx, rs.c, id)
	if errors.Is(err, queue.ErrNotFound) {
		return nil, notFound{fmt.Sprintf("there is no run %s on the queue (a run is kept for a week after its last job)", id)}
	}
	if err != nil {
		return nil, err
	}
	row := rowOf(id, st)
	return &row, rs.count(ctx, &row)
}

// rowOf is the row of a run, before its jobs are counted.
func rowOf(id string, st remote.State) RunRow {
	return RunRow{ID: id, Command: st.Command, Started: st.Started, Jobs: st.Jobs, Enqueueing: st.Enqueueing, Stopped: st.Stopped}
}

func (rs *runs) tallyOf(id string) *tally {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	t := rs.by[id]
	if t == nil {
		t = &tally{finished: map[int]finished{}}
		rs.by[id] = t
	}
	return t
}

// markGone counts as done the jobs of ids (numbered seqs) the queue has
// lost (deleted, or expired with their records): those missing from infos
// at this read and at the one before, since a server of a cluster may answer before it has
// every write. Otherwise a run with a deleted job would wait for it for
// ever.
func (t *tally) markGone(ids []string, seqs []int, infos map[string]*queue.Info) {
	missing := map[int]bool{}
	for i, id := range ids {
		if infos[id] != nil {
			continue
		}
		seq := seqs[i]
		if t.missing[seq] {
			t.finished[seq] = finished{exit: -1, gone: true, at: time.Now()}
			continue
		}
		missing[seq] = true
	}
	t.missing = missing
}

// forget drops what is known of a run's jobs, which are to run again.
func (rs *runs) forget(id string, seqs []int) {
	t := rs.tallyOf(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, seq := range seqs {
		delete(t.finished, seq)
	}
}

// count fills in a row's figures, reading the jobs not known finished,
// at most once a second per run.
func (rs *runs) count(ctx context.Context, row *RunRow) error {
	t := rs.tallyOf(row.ID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.read) >= time.Second && len(t.finished) < row.Jobs {
		var ids []string
		var seqs []int
		for seq := 1; seq <= row.Jobs; seq++ {
			if _, ok := t.finished[seq]; !ok {
				ids, seqs = append(ids, row.ID+"."+strconv.Itoa(seq)), append(seqs, seq)
			}
		}
		infos, err := rs.c.Infos(ctx, ids)
		if err == nil {
			err = rs.c.ReadResults(ctx, infos) // the exit status is in the result
		}
		if err != nil {
			return err
		}
		for _, info := range infos {
			if !info.State.Finished() {
				continue
			}
			v := remote.View(info)
			t.finished[v.Seq] = finished{exit: v.Exit, failed: v.Failed, skipped: v.Skipped, at: info.UpdatedAt}
		}
		t.markGone(ids, seqs, infos)
		t.read = time.Now()
	}
	var last time.Time
	for _, f := range t.finished {
		row.Done++
		if f.gone {
			row.Gone++
		}
		switch {
		case f.skipped:
			row.NotStarted++
		case f.failed:
			row.Failed++
			if row.Exits == nil {
				row.Exits = map[string]int{}
			}
			row.Exits[strconv.Itoa(f.exit)]++
		}
		if f.at.After(last) {
			last = f.at
		}
	}
	if row.Done > 0 {
		end := time.Now()
		if row.Finished() {
			end = last
		}
		if secs := end.Sub(row.Started).Seconds(); secs > 0 {
			row.Rate = float64(row.Done) / secs
		}
		if !row.Finished() && row.Rate > 0 {
			row.ETA = time.Duration(float64(row.Jobs-row.Done) / row.Rate * float64(time.Second))
		}
	}
	return nil
}

// seqs returns the numbers of the run's jobs that are failed, or all.
func (rs *runs) failedSeqs(id string) []int {
	t := rs.tallyOf(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	var seqs []int
	for seq, f := range t.finished {
		if f.failed {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs
}

func (d *dashboard) runList(r *http.Request) (any, error) { return d.runs.rows(r.Context()) }

// RunPage is a run's page: its row, and a page of its jobs.
type RunPage struct {
	Run        *RunRow          `json:"run"`
	Jobs       []remote.JobView `json:"jobs"`
	FailedOnly bool             `json:"failed_only"`
	Hints      []string         `json:"hints,omitempty"` // why its jobs not started may not start
	From       int              `json:"from"`
	Next       int              `json:"next,omitempty"` // the next page's first job
	Graph      template.HTML    `json:"-"`              // the runs it waits for, and those that wait for it
}

const runPageSize = 50

func (d *dashboard) run(r *http.Request) (any, error) {
	id := r.PathValue("id")
	row, err := d.runs.row(r.Context(), id)
	if err != nil {
		return nil, err
	}
	p := &RunPage{Run: row, Jobs: []remote.JobView{}, FailedOnly: r.URL.Query().Get("failed") == "1", From: 1}
	if f := r.URL.Query().Get("from"); f != "" {
		if p.From, err = strconv.Atoi(f); err != nil || p.From < 1 {
			return nil, badRequest{fmt.Errorf("from %q: want a job number", f)}
		}
	}
	var seqs []int
	if p.FailedOnly {
		for _, seq := range d.runs.failedSeqs(id) {
			if seq >= p.From {
				seqs = append(seqs, seq)
			}
		}
	} else {
		for seq := p.From; seq <= row.Jobs; seq++ {
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) > runPageSize {
		p.Next, seqs = seqs[runPageSize], seqs[:runPageSize]
	}
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = id + "." + strconv.Itoa(seq)
	}
	views, err := d.runs.pageViews(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	for _, jid := range ids {
		if v, ok := views[jid]; ok {
			p.Jobs = append(p.Jobs, v)
		}
	}
	g, err := d.runs.runGraph(r.Context(), row)
	if err != nil {
		return nil, err
	}
	p.Graph = g.svg("run " + id + ", the runs it waits for, and those that wait for it")
	if p.Hints, err = d.stuck(r.Context(), p.Jobs); err != nil {
		return nil, err
	}
	return p, nil
}

// stuck says why jobs not started may not start: their queue is paused,
// or no worker serves it.
func (d *dashboard) stuck(ctx context.Context, jobs []remote.JobView) ([]string, error) {
	waiting := map[string]bool{}
	for _, v := range jobs {
		if v.State == queue.Queued || v.State == queue.Scheduled {
			waiting[v.Queue] = true
		}
	}
	if len(waiting) == 0 {
		return nil, nil
	}
	st, err := d.stats(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := d.c.Workers(ctx)
	if err != nil {
		return nil, err
	}
	var hints []string
	for _, q := range slices.Sorted(maps.Keys(waiting)) {
		if slices.ContainsFunc(st.Queues, func(s queue.QueueStats) bool { return s.Queue == q && s.Paused }) {
			hints = append(hints, fmt.Sprintf("Queue %s is paused: its jobs wait until it is resumed (herd queue resume %s).", q, q))
		}
		if !slices.ContainsFunc(ws, func(w queue.WorkerInfo) bool { return slices.Contains(w.Queues, q) }) {
			hints = append(hints, fmt.Sprintf("No worker serves queue %s: its jobs wait for one (herd work --queue URL --queue-name %s).", q, q))
		}
	}
	return hints, nil
}

// pageViews returns what a run's page shows of the jobs with the given
// ids that the queue has, by id, their output cut to 16 KiB. The page is
// rendered again every second while it is open: a finished job's result
// kept apart (a big output, read back whole) is read once and its view
// remembered, not read again at every render.
func (rs *runs) pageViews(ctx context.Context, ids []string) (map[string]remote.JobView, error) {
	infos, err := rs.c.Infos(ctx, ids)
	if err != nil {
		return nil, err
	}
	views := make(map[string]remote.JobView, len(infos))
	unread := map[string]*queue.Info{}
	rs.mu.Lock()
	for id, info := range infos {
		if !info.ResultApart || !info.State.Finished() {
			views[id] = pageView(info)
		} else if a, ok := rs.apart[id]; ok && a.updated.Equal(info.UpdatedAt) {
			views[id] = a.view
		} else {
			unread[id] = info
		}
	}
	rs.mu.Unlock()
	if err := rs.c.ReadResults(ctx, unread); err != nil {
		return nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.apart)+len(unread) > maxApartViews {
		clear(rs.apart)
	}
	for id, info := range unread {
		views[id] = pageView(info)
		rs.apart[id] = apartView{updated: info.UpdatedAt, view: views[id]}
	}
	return views, nil
}

// pageView is a job as a run's page shows it.
func pageView(info *queue.Info) remote.JobView {
	v := remote.View(info)
	v.Stdout, v.Stderr = truncate(v.Stdout, 16<<10), truncate(v.Stderr, 16<<10)
	return v
}

// joblog sends the run's job log, GNU parallel's nine columns, for the
// jobs finished so far, by job number.
func (d *dashboard) joblog(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	row, err := d.runs.row(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/tab-separated-values; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "herd-"+id+".joblog"))
	fmt.Fprint(w, run.JoblogHeader)
	for from := 1; from <= row.Jobs; from += 256 {
		var ids []string
		for seq := from; seq < from+256 && seq <= row.Jobs; seq++ {
			ids = append(ids, id+"."+strconv.Itoa(seq))
		}
		infos, err := d.c.Infos(r.Context(), ids)
		if err == nil {
			err = d.c.ReadResults(r.Context(), infos)
		}
		if err != nil {
			d.log.Error("web: job log", "run", id, "error", err)
			return
		}
		for _, jid := range ids {
			if info := infos[jid]; info != nil {
				fmt.Fprint(w, remote.View(info).JoblogRow())
			}
		}
	}
}

func (d *dashboard) stopRun(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return "/runs/" + url.PathEscape(id), remote.Stop(r.Context(), d.c, id, r.PostFormValue("now") == "1")
}

// retryRun runs the run's failed jobs again.
func (d *dashboard) retryRun(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, err := d.runs.row(r.Context(), id); err != nil {
		return "", err
	}
	seqs := d.runs.failedSeqs(id)
	if len(seqs) == 0 {
		return "", fmt.Errorf("run %s has no failed job", id)
	}
	defer d.runs.forget(id, seqs)
	for _, seq := range seqs {
		if err := d.c.Retry(r.Context(), id+"."+strconv.Itoa(seq)); err != nil {
			return "", err
		}
	}
	return "/runs/" + url.PathEscape(id), nil
}
