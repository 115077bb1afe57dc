package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/queue"
)

//go:embed templates static
var files embed.FS

// The overview samples the queue's figures every sampleEvery, and keeps
// them for chartSpan, for the rates and the chart.
const (
	sampleEvery = 2 * time.Second
	chartSpan   = 5 * time.Minute
	liveEvery   = time.Second
)

// dashboard serves the pages and their JSON twins.
type dashboard struct {
	cfg  Config
	c    *queue.Client
	log  *slog.Logger
	tmpl map[string]*template.Template // by page
	runs *runs
	mux  *http.ServeMux // the server's routes, which render live parts

	mu        sync.Mutex
	samples   []sample     // oldest first, over chartSpan
	latest    *queue.Stats // the last sample's figures, which pages show
	latestAt  time.Time    // when the last sample began reading the queue
	changedAt time.Time    // when an action last changed the queue

	bg     sync.WaitGroup // the sampler
	stopBg context.CancelFunc

	lives    chan struct{} // closed when the live pages are to end
	endLives sync.Once
}

// stats returns the queue's figures: the sampler's, if it took them less
// than sampleEvery ago, or fresh ones. Counting a queue's records takes
// the server time in proportion to them (about 55 ms for a million), so
// the pages and their live streams share the sampler's count.
func (d *dashboard) stats(ctx context.Context) (*queue.Stats, error) {
	d.mu.Lock()
	var st *queue.Stats
	if n := len(d.samples); n > 0 && time.Since(d.samples[n-1].at) < sampleEvery && d.latestAt.After(d.changedAt) {
		st = d.latest
	}
	d.mu.Unlock()
	if st != nil {
		return st, nil
	}
	return d.c.Stats(ctx)
}

// sample is the queue's figures at one moment.
type sample struct {
	at      time.Time
	settled map[string]uint64 // by queue: jobs handed out and no longer in flight
	waiting uint64
}

func newDashboard(cfg Config, log *slog.Logger) (*dashboard, error) {
	d := &dashboard{cfg: cfg, c: cfg.Queue, log: log, tmpl: map[string]*template.Template{}}
	d.runs = newRuns(cfg.Queue)
	d.lives = make(chan struct{})
	funcs := template.FuncMap{
		"ago":      ago,
		"duration": roundDuration,
		"query":    withQuery,
		"trunc":    truncate,
		"when":     func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
		"bytes":    func(b []byte) string { return truncate(string(b), 4096) },
		"add":      func(a, b int) int { return a + b },
		"link":     func(encoded string) template.URL { return template.URL(encoded) }, // url.Values.Encode's
	}
	pages, err := fs.Glob(files, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/page_"), ".html")
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		d.tmpl[name] = t
	}
	return d, nil
}

func (d *dashboard) routes(mux *http.ServeMux) {
	d.mux = mux
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /events", d.events)

	page := func(pattern, name string, data func(*http.Request) (any, error)) {
		mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) { d.page(w, r, name, data) })
		mux.HandleFunc("GET /api"+pattern, func(w http.ResponseWriter, r *http.Request) { d.api(w, r, data) })
	}
	page("/{$}", "overview", d.overview)
	page("/runs", "runs", d.runList)
	page("/runs/{id}", "run", d.run)
	page("/jobs", "jobs", d.jobs)
	page("/jobs/{id}", "job", d.job)
	page("/workers", "workers", d.workers)
	mux.HandleFunc("GET /runs/{id}/joblog", d.joblog)
	mux.HandleFunc("GET /", d.unknown)

	d.action(mux, "/jobs/{id}/retry", d.retryJob)
	d.action(mux, "/jobs/{id}/delete", d.deleteJob)
	d.action(mux, "/jobs/{id}/cancel", d.cancelJob)
	d.action(mux, "/dead/retry", d.bulk(true))
	d.action(mux, "/dead/delete", d.bulk(false))
	d.action(mux, "/runs/{id}/stop", d.stopRun)
	d.action(mux, "/runs/{id}/retry", d.retryRun)
	d.action(mux, "/workers/{id}/drain", d.drain)
	d.action(mux, "/queues/{name}/limits", d.setLimits)
	d.action(mux, "/limits", d.setLimits) // the overview's form, which names the queue
}

// action routes a POST that changes the queue: refused when read-only; on
// success, the browser goes to the page it returns, and an API client gets
// 204.
func (d *dashboard) action(mux *http.ServeMux, pattern string, do func(*http.Request) (string, error)) {
	h := func(w http.ResponseWriter, r *http.Request) {
		if d.cfg.ReadOnly {
			http.Error(w, "herd: the dashboard is read-only", http.StatusForbidden)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		to, err := do(r)
		d.mu.Lock()
		d.changedAt = time.Now() // the page the browser is sent to reads the queue afresh
		d.mu.Unlock()
		if err != nil {
			status := http.StatusBadRequest
			if errorsIsNotFound(err) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	}
	mux.HandleFunc("POST "+pattern, h)
	mux.HandleFunc("POST /api"+pattern, h)
}

// view is what every page's template gets.
type view struct {
	Title    string
	Path     string // the page's path and query, for its live stream
	ReadOnly bool
	Version  string
	Data     any
	Query    url.Values
}

func (d *dashboard) page(w http.ResponseWriter, r *http.Request, name string, data func(*http.Request) (any, error)) {
	v, err := data(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	err = d.tmpl[name].Execute(&buf, view{Title: name, Path: r.URL.RequestURI(), ReadOnly: d.cfg.ReadOnly, Version: d.cfg.Version, Data: v, Query: r.URL.Query()})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	// The live part's hash, for the page's live stream to send it again
	// only once it changes.
	page := bytes.Replace(buf.Bytes(), []byte(`<main id="live">`), []byte(`<main id="live" data-hash="`+liveHash(liveOf(buf.Bytes()))+`">`), 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
}

func (d *dashboard) api(w http.ResponseWriter, r *http.Request, data func(*http.Request) (any, error)) {
	v, err := data(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// fail answers a request that failed: with a page that says why and leads
// on, or for /api/, with JSON: {"error": why, "status": code}.
func (d *dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, title := http.StatusBadGateway, "The queue did not answer"
	var nf notFound
	switch bad, ok := err.(badRequest); {
	case errors.As(err, &nf):
		status, title = http.StatusNotFound, "Not found"
	case errorsIsNotFound(err):
		status, title = http.StatusNotFound, "Not found"
		err = notFound{strings.TrimPrefix(err.Error(), "queue: ")}
	case ok:
		status, title, err = http.StatusBadRequest, "A request the dashboard cannot read", bad.error
	default:
		d.log.Error("web: page", "error", err)
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}{err.Error(), status})
		return
	}
	var buf bytes.Buffer
	if d.tmpl["error"].Execute(&buf, view{Title: title, ReadOnly: d.cfg.ReadOnly, Version: d.cfg.Version,
		Data: struct{ Title, Message string }{title, err.Error()}}) != nil {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// notFound is a page or a thing the request names that is not there, in
// words for the page.
type notFound struct{ msg string }

func (e notFound) Error() string { return e.msg }

// unknown answers a path that names no page.
func (d *dashboard) unknown(w http.ResponseWriter, r *http.Request) {
	d.fail(w, r, notFound{"there is no page " + r.URL.Path})
}

// badRequest is an error in what the request asked for.
type badRequest struct{ error }

// events streams the live part of the page named by ?page= as server-sent
// events: rendered again every second, and sent when it changes. The page
// closes the stream while its tab is hidden.
func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	u, err := url.Parse(r.URL.Query().Get("page"))
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		http.Error(w, "herd: events: want ?page=PATH", http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "herd: events: streaming not supported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	last := r.URL.Query().Get("have") // the hash of what the page shows
	t := time.NewTicker(liveEvery)
	defer t.Stop()
	for {
		req := r.Clone(r.Context())
		req.URL, req.RequestURI, req.Method = u, u.RequestURI(), http.MethodGet
		rec := &recorder{header: http.Header{}}
		d.mux.ServeHTTP(rec, req) // a GET of the page itself, answered in process
		if live := liveOf(rec.body.Bytes()); rec.status == 0 && liveHash(live) != last {
			last = liveHash(live)
			data, _ := json.Marshal(string(live))
			fmt.Fprintf(w, "event: live\nid: %s\ndata: %s\n\n", last, data)
			flusher.Flush()
		}
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-d.lives:
			return
		}
	}
}

// liveOf returns the live part of a rendered page: what its
// <main id="live"> holds.
func liveOf(page []byte) []byte {
	i := bytes.Index(page, []byte(`<main id="live"`))
	if i < 0 {
		return nil
	}
	k := bytes.IndexByte(page[i:], '>')
	j := bytes.LastIndex(page, []byte(`</main>`))
	if k < 0 || j < i+k {
		return nil
	}
	return page[i+k+1 : j]
}

// liveHash identifies a live part's content.
func liveHash(live []byte) string {
	h := fnv.New64a()
	h.Write(live)
	return strconv.FormatUint(h.Sum64(), 36)
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int // 0: 200
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if code != http.StatusOK {
		r.status = code
	}
}

// start starts the sampler; stop stops it and waits for it.
func (d *dashboard) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.stopBg = cancel
	d.bg.Go(func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			d.sample(ctx)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	})
}

func (d *dashboard) stop() {
	if d.stopBg != nil {
		d.stopBg()
	}
	d.bg.Wait()
	d.closeStreams()
}

// closeStreams ends the live pages' streams.
func (d *dashboard) closeStreams() { d.endLives.Do(func() { close(d.lives) }) }

func (d *dashboard) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	began := time.Now()
	st, err := d.c.Stats(ctx)
	if err != nil {
		return
	}
	s := sample{at: time.Now(), settled: map[string]uint64{}}
	for _, q := range st.Queues {
		s.settled[q.Queue] += q.Settled()
		s.waiting += q.Waiting
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.samples, d.latest, d.latestAt = append(d.samples, s), st, began
	cut := 0
	for cut < len(d.samples) && s.at.Sub(d.samples[cut].at) > chartSpan {
		cut++
	}
	d.samples = slices.Delete(d.samples, 0, cut)
}

// rates returns the jobs settled per second in each queue over the last
// ten seconds or so, and the series of all queues' for the chart.
func (d *dashboard) rates() (map[string]float64, []point) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rates := map[string]float64{}
	n := len(d.samples)
	if n >= 2 {
		last, first := d.samples[n-1], d.samples[max(0, n-6)]
		if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
			for q, v := range last.settled {
				if v >= first.settled[q] {
					rates[q] = float64(v-first.settled[q]) / dt
				}
			}
		}
	}
	var series []point
	for i := 1; i < n; i++ {
		a, b := d.samples[i-1], d.samples[i]
		var settled uint64
		for q, v := range b.settled {
			if v >= a.settled[q] {
				settled += v - a.settled[q]
			}
		}
		series = append(series, point{at: b.at, rate: float64(settled) / b.at.Sub(a.at).Seconds(), waiting: b.waiting})
	}
	return rates, series
}

type point struct {
	at      time.Time
	rate    float64
	waiting uint64
}
