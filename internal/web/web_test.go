package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/internal/web"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := testutil.Leaked("goherd/herd/internal/web", "goherd/herd/queue", "nats-io/nats.go", "chromedp"); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// start serves cfg on a free loopback port until the test ends, and
// checks that Serve returns cleanly then.
func start(t *testing.T, cfg web.Config) *web.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := web.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return 10s after its context was done")
		}
	})
	return s
}

// do sends a request and returns the status and body.
func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return do(t, req)
}

func post(t *testing.T, url string, form url.Values, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

// deadJob makes a dead job with the given id.
func deadJob(t testing.TB, c *queue.Client, id string) {
	t.Helper()
	if _, err := c.Enqueue(t.Context(), "fails", nil, queue.Options{ID: id, MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("fails", func(context.Context, *queue.Job) ([]byte, error) { return nil, errors.New("it broke") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	info, err := c.Wait(wctx, id)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil || info.State != queue.Dead {
		t.Fatalf("job %s = %+v, %v; want dead", id, info, err)
	}
}

// An address other machines can reach needs credentials.
func TestListenRefusesOpenAddressWithoutCredentials(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:8080"} {
		_, err := web.Listen(web.Config{Addr: addr, Queue: nil})
		if err == nil || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("Listen(%s, no credentials) = %v, want an error asking for credentials", addr, err)
		}
	}
	for _, cfg := range []web.Config{{Addr: "127.0.0.1:0", User: "u"}, {Addr: "127.0.0.1:0", User: "u", Password: "p", Token: "t"}, {Addr: "nowhere"}} {
		if _, err := web.Listen(cfg); err == nil {
			t.Errorf("Listen(%+v) = nil error", cfg)
		}
	}
}

// With credentials, every page needs them but the health checks.
func TestCredentials(t *testing.T) {
	c := queuetest.New(t)
	s := start(t, web.Config{Token: "s3cret", Queue: c})
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/", "", http.StatusUnauthorized},
		{"/metrics", "", http.StatusUnauthorized},
		{"/api/jobs", "Bearer wrong", http.StatusUnauthorized},
		{"/api/jobs", "Bearer s3cret", http.StatusOK},
		{"/", "Basic " + basic("anyone", "s3cret"), http.StatusOK},
		{"/", "Basic " + basic("anyone", "nope"), http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if got, body := do(t, req); got != tc.want {
			t.Errorf("GET %s with %q = %d (%s), want %d", tc.path, tc.auth, got, strings.TrimSpace(body), tc.want)
		}
	}
	u := start(t, web.Config{User: "ops", Password: "pw", Queue: c})
	req, _ := http.NewRequest(http.MethodGet, u.URL()+"/", nil)
	req.SetBasicAuth("ops", "pw")
	if got, _ := do(t, req); got != http.StatusOK {
		t.Errorf("GET / as ops = %d, want 200", got)
	}
	req.SetBasicAuth("ops", "s3cret")
	if got, _ := do(t, req); got != http.StatusUnauthorized {
		t.Errorf("GET / as ops with the wrong password = %d, want 401", got)
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// Read-only: no action is shown, and every action is refused.
func TestReadOnly(t *testing.T) {
	c := queuetest.New(t)
	deadJob(t, c, "d1")
	if err := c.SetLimits(t.Context(), "q", queue.Limits{Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c, ReadOnly: true})
	if code, body := get(t, s.URL()+"/jobs/d1"); code != http.StatusOK || strings.Contains(body, "<form class=\"inline\" method=\"post\"") || !strings.Contains(body, "it broke") {
		t.Errorf("GET /jobs/d1 read-only = %d, with an action or without the error:\n%s", code, body)
	}
	if code, body := get(t, s.URL()+"/"); code != http.StatusOK || strings.Contains(body, "<form") || !strings.Contains(body, "at most 2 at once") {
		t.Errorf("GET / read-only = %d, with a form or without the queue's limits:\n%s", code, body)
	}
	for _, path := range []string{"/jobs/d1/retry", "/jobs/d1/delete", "/api/jobs/d1/retry", "/dead/retry", "/queues/q/limits", "/limits"} {
		if code, _ := post(t, s.URL()+path, url.Values{"id": {"d1"}}); code != http.StatusForbidden {
			t.Errorf("POST %s read-only = %d, want 403", path, code)
		}
	}
	if info, err := c.Info(t.Context(), "d1"); err != nil || info.State != queue.Dead {
		t.Errorf("job d1 after the refused actions = %+v, %v; want dead still", info, err)
	}
	if all, err := c.Limits(t.Context()); err != nil || all["q"] != (queue.Limits{Concurrency: 2}) {
		t.Errorf("limits after the refused actions = %v, %v; want q's as they were", all, err)
	}
}

// The overview shows each queue's limits, a queue limited before it had
// jobs included, and its form sets and clears them.
func TestLimitsForm(t *testing.T) {
	c := queuetest.New(t)
	s := start(t, web.Config{Queue: c})
	if code, body := get(t, s.URL()+"/"); code != http.StatusOK || !strings.Contains(body, `<form method="post" action="/limits">`) {
		t.Fatalf("GET / = %d, without the form to set limits:\n%s", code, body)
	}
	// The browser is sent back to the overview, which shows the change.
	code, body := post(t, s.URL()+"/limits", url.Values{"queue": {"mail"}, "concurrency": {"4"}, "rate": {"30/m"}, "burst": {"2"}, "key_concurrency": {""}})
	if code != http.StatusOK || !strings.Contains(body, `<tr data-queue="mail">`) || !strings.Contains(body, "at most 4 at once, at most 30/m (burst 2)") {
		t.Errorf("POST /limits = %d, not the overview with queue mail's limits:\n%s", code, body)
	}
	want := queue.Limits{Concurrency: 4, Rate: 0.5, Burst: 2}
	if all, err := c.Limits(t.Context()); err != nil || all["mail"] != want {
		t.Errorf("limits after the form = %v, %v; want mail: %v", all, err, want)
	}
	if _, body := get(t, s.URL()+"/api/"); !strings.Contains(body, `"concurrency": 4`) {
		t.Errorf("GET /api/ does not give queue mail's limits:\n%s", body)
	}
	for _, bad := range []url.Values{
		{"queue": {"mail"}, "rate": {"fast"}},
		{"queue": {"mail"}, "concurrency": {"-3"}},
		{"queue": {"mail"}, "concurrency": {"two"}},
		{"queue": {"a.b"}, "concurrency": {"1"}},
		{"queue": {"mail"}, "burst": {"5"}},
	} {
		if code, body := post(t, s.URL()+"/limits", bad); code != http.StatusBadRequest {
			t.Errorf("POST /limits %v = %d (%s), want 400", bad, code, body)
		}
	}
	if all, err := c.Limits(t.Context()); err != nil || all["mail"] != want {
		t.Errorf("limits after refused forms = %v, %v; want mail's unchanged", all, err)
	}
	if code, body := post(t, s.URL()+"/api/queues/mail/limits", url.Values{"clear": {"1"}}); code != http.StatusNoContent {
		t.Errorf("POST /api/queues/mail/limits clear=1 = %d (%s), want 204", code, body)
	}
	if all, err := c.Limits(t.Context()); err != nil || len(all) != 0 {
		t.Errorf("limits after clearing = %v, %v; want none", all, err)
	}
}

// A POST from another site is refused; one from the dashboard's own page,
// or from a program (no browser headers), is done.
func TestCrossSiteRefused(t *testing.T) {
	c := queuetest.New(t)
	deadJob(t, c, "d1")
	deadJob(t, c, "d2")
	s := start(t, web.Config{Queue: c})
	if code, _ := post(t, s.URL()+"/jobs/d1/delete", nil, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site POST = %d, want 403", code)
	}
	if code, _ := post(t, s.URL()+"/jobs/d1/delete", nil, "Origin", "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("POST from origin evil.example = %d, want 403", code)
	}
	if _, err := c.Info(t.Context(), "d1"); err != nil {
		t.Errorf("job d1 after forged deletes: %v, want it kept", err)
	}
	if code, body := post(t, s.URL()+"/api/jobs/d1/delete", nil, "Sec-Fetch-Site", "same-origin"); code != http.StatusNoContent {
		t.Errorf("same-origin POST /api/jobs/d1/delete = %d (%s), want 204", code, body)
	}
	if _, err := c.Info(t.Context(), "d1"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("job d1 after its delete: %v, want it gone", err)
	}
	if code, body := post(t, s.URL()+"/api/jobs/d2/retry", nil); code != http.StatusNoContent {
		t.Errorf("POST /api/jobs/d2/retry = %d (%s), want 204", code, body)
	}
	if info, err := c.Info(t.Context(), "d2"); err != nil || info.State != queue.Queued {
		t.Errorf("job d2 after its retry = %+v, %v; want queued", info, err)
	}
	if code, _ := post(t, s.URL()+"/api/jobs/nope/retry", nil); code != http.StatusNotFound {
		t.Errorf("POST /api/jobs/nope/retry = %d, want 404", code)
	}
}

// /metrics parses, and its figures are the jobs run; /readyz says ready.
func TestMetrics(t *testing.T) {
	c := queuetest.New(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.Enqueue(t.Context(), "ok", nil, queue.Options{ID: id, Queue: "q1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Enqueue(t.Context(), "ok", nil, queue.Options{ID: "waits", Queue: "q2"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(queue.WorkerConfig{Queues: []string{"q1"}})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("ok", func(context.Context, *queue.Job) ([]byte, error) { return nil, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.Wait(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadJob(t, c, "d1")

	if err := c.SetLimits(t.Context(), "q1", queue.Limits{Concurrency: 2, Rate: 5, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c, Version: "v9.9.9"})
	code, body := get(t, s.URL()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("/metrics has no %s", name)
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("/metrics has no %s%v", name, labels)
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herd_queue_jobs_enqueued_total", map[string]string{"queue": "q1"}, 3},
		{"herd_queue_jobs_enqueued_total", map[string]string{"queue": "default"}, 1},
		{"herd_queue_jobs_finished_total", map[string]string{"queue": "q1", "outcome": "succeeded"}, 3},
		{"herd_queue_jobs_finished_total", map[string]string{"queue": "default", "outcome": "dead"}, 1},
		{"herd_queue_job_duration_seconds", map[string]string{"queue": "q1"}, 3},
		{"herd_queue_job_wait_seconds", map[string]string{"queue": "q1"}, 3},
		{"herd_queue_jobs", map[string]string{"queue": "q2", "state": "waiting"}, 1},
		{"herd_queue_jobs", map[string]string{"queue": "q1", "state": "waiting"}, 0},
		{"herd_queue_jobs", map[string]string{"queue": "default", "state": "dead"}, 1},
		{"herd_build_info", map[string]string{"version": "v9.9.9"}, 1},
		{"herd_queue_limit", map[string]string{"queue": "q1", "limit": "concurrency"}, 2},
		{"herd_queue_limit", map[string]string{"queue": "q1", "limit": "rate"}, 5},
		{"herd_queue_limit", map[string]string{"queue": "q1", "limit": "burst"}, 3},
		{"herd_queue_limit", map[string]string{"queue": "q1", "limit": "key_concurrency"}, 0},
		{"herd_queue_limit_running", map[string]string{"queue": "q1"}, 0},
		{"herd_queue_jobs_held", map[string]string{"queue": "q1"}, 0},
	} {
		if got := value(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := value("herd_queue_oldest_waiting_seconds", map[string]string{"queue": "q2"}); got <= 0 || got > 60 {
		t.Errorf("herd_queue_oldest_waiting_seconds{queue=q2} = %v, want the seconds since the job was enqueued", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if code, body := get(t, s.URL()+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d (%s), want 200", code, body)
	}
}

// /readyz says not ready, with the reason, once the queue's server is
// gone; /healthz still says the process is up.
func TestReadyzWithoutServer(t *testing.T) {
	srv, err := queue.Serve(queue.ServerConfig{Listen: "127.0.0.1:0", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := queue.Open(t.Context(), queue.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := start(t, web.Config{Queue: c, MetricsOnly: true})
	if code, _ := get(t, s.URL()+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz with the server up = %d, want 200", code)
	}
	if code, _ := get(t, s.URL()+"/"); code != http.StatusNotFound {
		t.Errorf("GET / with MetricsOnly = %d, want 404", code)
	}
	srv.Close()
	if code, body := get(t, s.URL()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not") {
		t.Errorf("GET /readyz with the server gone = %d (%s), want 503 and why", code, body)
	}
	if code, _ := get(t, s.URL()+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz with the server gone = %d, want 200", code)
	}
}

// Every page and its JSON twin answer; bad queries are 400, unknown ids 404.
func TestPagesAndAPI(t *testing.T) {
	c := queuetest.New(t)
	deadJob(t, c, "d1")
	s := start(t, web.Config{Queue: c})
	for _, path := range []string{"/", "/runs", "/jobs", "/jobs?state=dead", "/jobs?state=succeeded&queue=default", "/jobs/d1", "/workers"} {
		code, body := get(t, s.URL()+path)
		if code != http.StatusOK || !strings.Contains(body, `<main id="live" data-hash=`) {
			t.Errorf("GET %s = %d:\n%s", path, code, body)
		}
		code, body = get(t, s.URL()+"/api"+path)
		if code != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(body), "{") && !strings.HasPrefix(strings.TrimSpace(body), "[") || strings.Contains(body, "null") {
			t.Errorf("GET /api%s = %d:\n%s", path, code, body)
		}
	}
	if _, body := get(t, s.URL()+"/api/jobs?state=dead"); !strings.Contains(body, `"id": "d1"`) || !strings.Contains(body, `"count": 1`) {
		t.Errorf("GET /api/jobs?state=dead = %s, want d1 and a count of 1", body)
	}
	for path, want := range map[string]int{
		"/jobs?state=bogus": http.StatusBadRequest, "/jobs?after=x": http.StatusBadRequest, "/jobs?queue=a.b": http.StatusBadRequest,
		"/jobs/nope": http.StatusNotFound, "/runs/nope": http.StatusNotFound, "/events": http.StatusBadRequest,
	} {
		if code, _ := get(t, s.URL()+path); code != want {
			t.Errorf("GET %s = %d, want %d", path, code, want)
		}
	}
	// What is not there: a page that says so and leads on; for /api/,
	// JSON that says so.
	for path, want := range map[string]string{
		"/nope":       "there is no page /nope",
		"/runs/nope":  "there is no run nope on the queue",
		"/jobs/nope":  "no such job",
		"/runs/x/y/z": "there is no page /runs/x/y/z",
	} {
		code, body := get(t, s.URL()+path)
		if code != http.StatusNotFound || !strings.Contains(body, want) || !strings.Contains(body, `<a href="/runs"`) {
			t.Errorf("GET %s = %d, want 404 saying %q with the pages' links:\n%s", path, code, want, body)
		}
		if p, ok := strings.CutPrefix(want, "there is no page "); ok {
			want = "there is no page /api" + p
		}
		code, body = get(t, s.URL()+"/api"+path)
		var e struct {
			Error  string
			Status int
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusNotFound || e.Status != http.StatusNotFound || !strings.Contains(e.Error, want) {
			t.Errorf("GET /api%s = %d %s, want 404 and JSON saying %q", path, code, body, want)
		}
	}
	if code, body := get(t, s.URL()+"/api/jobs?state=bogus"); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Errorf("GET /api/jobs?state=bogus = %d %s, want 400 and JSON", code, body)
	}
}

// commandRun puts run r1 of herd run --queue on c: its state, with
// command as its command, and a job for each line, numbered from 1.
func commandRun(t *testing.T, c *queue.Client, command string, lines ...string) {
	t.Helper()
	st, _ := json.Marshal(remote.State{Jobs: len(lines), Command: command, Started: time.Now()})
	if err := c.PutMeta(t.Context(), remote.RunKey("r1"), st); err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		payload, _ := json.Marshal(remote.Job{Run: "r1", Seq: i + 1, Shell: "/bin/sh", Attempts: 1, Line: line})
		if _, err := c.Enqueue(t.Context(), remote.Kind, payload, queue.Options{ID: fmt.Sprint("r1.", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
}

// workRun runs the jobs of run r1 with herd work's handler, one at a time,
// and waits until the n of them have finished.
func workRun(t *testing.T, c *queue.Client, n int) {
	t.Helper()
	rw, err := remote.NewWorker(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rw.Close() })
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 1}, map[string]queue.Handler{remote.Kind: rw.Handle})
	ctx, cancel := context.WithTimeout(t.Context(), testutil.Backstop)
	defer cancel()
	for seq := 1; seq <= n; seq++ {
		if _, err := c.Wait(ctx, fmt.Sprint("r1.", seq)); err != nil {
			t.Fatal(err)
		}
	}
}

// A job whose output is too big for its record (kept apart) is shown and
// logged as it ran, not as a job the queue gave up on.
func TestRunJobWithBigOutput(t *testing.T) {
	c := queuetest.New(t)
	const line = "head -c 200000 /dev/zero | tr '\\0' x"
	commandRun(t, c, line, line)
	workRun(t, c, 1)
	if info, err := c.Info(t.Context(), "r1.1"); err != nil || !info.ResultApart {
		t.Fatalf("Info = %+v, %v; want a result kept apart", info, err)
	}
	s := start(t, web.Config{Queue: c})
	_, log := get(t, s.URL()+"/runs/r1/joblog")
	rows := strings.Split(strings.TrimSpace(log), "\n")
	if cols := strings.Split(rows[len(rows)-1], "\t"); len(rows) != 2 || len(cols) != 9 || cols[6] != "0" || cols[1] == ":" {
		t.Errorf("job log:\n%s\nwant job 1 with its host and exit status 0", log)
	}
	for range 2 { // read back, then remembered
		if _, body := get(t, s.URL()+"/api/runs/r1"); !strings.Contains(body, `"exit": 0`) || strings.Contains(body, "gave up") || !strings.Contains(body, "more bytes") {
			t.Errorf("GET /api/runs/r1:\n%s\nwant job 1 with exit status 0 and its output cut", body)
		}
	}
	if _, body := get(t, s.URL()+"/api/runs"); !strings.Contains(body, `"failed": 0`) {
		t.Errorf("GET /api/runs:\n%s\nwant no job failed", body)
	}
}

// A run one of whose finished jobs was deleted counts it as done (gone),
// rather than waiting for it for ever.
func TestRunWithDeletedJob(t *testing.T) {
	c := queuetest.New(t)
	commandRun(t, c, "true", "true", "true")
	workRun(t, c, 2)
	if err := c.Delete(t.Context(), "r1.2"); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c})
	// The run is read at most once a second, and a job counts as gone once
	// two reads have missed it.
	testutil.Eventually(t, "the run to count the deleted job as done", func() bool {
		_, body := get(t, s.URL()+"/api/runs")
		return strings.Contains(body, `"done": 2`) && strings.Contains(body, `"gone": 1`) && !strings.Contains(body, "eta_ns")
	})
}

// A run's job has a page that reads as the run's page does: its run, its
// command, how it ended, its output
// decoded, and the worker that ran it.
func TestRunJobPage(t *testing.T) {
	c := queuetest.New(t)
	commandRun(t, c, "sh", "echo hi; echo oops >&2; exit 3")
	workRun(t, c, 1)
	s := start(t, web.Config{Queue: c})
	_, page := get(t, s.URL()+"/jobs/r1.1")
	for _, want := range []string{
		`<td id="state">dead</td>`,
		`<td id="outcome" class="bad">exit 3</td>`,
		`<a href="/runs/r1">r1</a>, job 1`,
		`<pre class="stdout" id="stdout">hi`,
		`<pre class="stderr bad" id="stderr">oops`,
		"on worker <code>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /jobs/r1.1 lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<h2>Result</h2>") {
		t.Errorf("GET /jobs/r1.1 shows the raw result:\n%s", page)
	}
	_, body := get(t, s.URL()+"/api/jobs/r1.1")
	var got struct {
		Worker  string
		Command struct {
			Run    string
			Exit   int
			Failed bool
			Stdout string
			Worker string
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET /api/jobs/r1.1: %v:\n%s", err, body)
	}
	if cmd := got.Command; cmd.Run != "r1" || cmd.Exit != 3 || !cmd.Failed || cmd.Stdout != "hi\n" || got.Worker == "" || cmd.Worker != got.Worker {
		t.Errorf("GET /api/jobs/r1.1:\n%s\nwant its command decoded, exit 3, failed, with its worker", body)
	}
	// The run's page names the worker too: hosts may run several.
	if _, run := get(t, s.URL()+"/runs/r1"); got.Worker == "" || !strings.Contains(run, ">"+got.Worker+"</span>") {
		t.Errorf("GET /runs/r1 does not name worker %q:\n%s", got.Worker, run)
	}
}

// The buttons that act on every dead job of a filter say how many jobs
// that is when the page knows it; after acting, the page keeps the filter
// and says what was done.
func TestBulkActionKeepsFilterAndSaysWhatItDid(t *testing.T) {
	c := queuetest.New(t)
	for _, id := range []string{"a1", "a2", "b1"} {
		deadJob(t, c, id)
	}
	s := start(t, web.Config{Queue: c})
	for path, want := range map[string]string{
		"/jobs?state=dead&id=a":  "Retry the 2 dead jobs that match the filter",
		"/jobs?state=dead&id=b":  "Retry the one dead job that matches the filter",
		"/jobs?state=dead":       "Retry the 3 dead jobs",
		"/jobs?state=dead&id=zz": "No job",
	} {
		if _, body := get(t, s.URL()+path); !strings.Contains(body, want) {
			t.Errorf("GET %s lacks %q:\n%s", path, want, body)
		}
	}
	code, body := post(t, s.URL()+"/dead/delete", url.Values{"all": {"1"}, "prefix": {"a"}})
	if code != http.StatusOK || !strings.Contains(body, `<p class="notice" id="done" role="status">Deleted 2 jobs and their records.</p>`) ||
		!strings.Contains(body, `name="id" value="a"`) {
		t.Errorf("after deleting the filter's jobs: %d:\n%s\nwant what was done said, and the filter kept", code, body)
	}
	if _, err := c.Info(t.Context(), "a1"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("a1 after it was deleted: %v", err)
	}
	if info, err := c.Info(t.Context(), "b1"); err != nil || info.State != queue.Dead {
		t.Errorf("b1, outside the filter: %+v, %v; want it left dead", info, err)
	}
	// A message is only ever one of the dashboard's own.
	if _, body := get(t, s.URL()+"/jobs?state=dead&done=hacked&n=1"); strings.Contains(body, `id="done"`) {
		t.Errorf("a done parameter not the dashboard's was shown:\n%s", body)
	}
}

// Jobs a worker has taken ahead of a free slot are counted as such, not as
// later (retrying or scheduled), which they are not.
func TestOverviewCountsJobsTakenAhead(t *testing.T) {
	c := queuetest.New(t)
	release := make(chan struct{})
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 1}, map[string]queue.Handler{
		"slow": func(ctx context.Context, _ *queue.Job) ([]byte, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	})
	t.Cleanup(func() { close(release) }) // before the worker stops, waiting for its jobs
	for range 4 {
		if _, err := c.Enqueue(t.Context(), "slow", nil, queue.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, web.Config{Queue: c})
	// A worker of one slot takes two jobs: one runs, one waits for the
	// slot. Its heartbeat, every 5s, says so.
	var body string
	testutil.Eventually(t, "the overview to count the job taken ahead", func() bool {
		_, body = get(t, s.URL()+"/api/")
		return strings.Contains(body, `"running": 1,`) && strings.Contains(body, `"ahead": 1,`)
	})
	if !strings.Contains(body, `"later": 0,`) || !strings.Contains(body, `"waiting": 2,`) {
		t.Errorf("GET /api/:\n%s\nwant 2 waiting, 1 running, 1 taken ahead, none later", body)
	}
	if _, page := get(t, s.URL()+"/"); !strings.Contains(page, "+1 taken</span>") {
		t.Errorf("the overview does not show the job taken ahead:\n%s", page)
	}
}

// A run stopped before its jobs started counts them as not started, not
// as failed; a retry runs them.
func TestStoppedRunCountsJobsNotStarted(t *testing.T) {
	c := queuetest.New(t)
	commandRun(t, c, "true", "true", "true", "true", "true")
	if err := remote.Stop(t.Context(), c, "r1", false); err != nil {
		t.Fatal(err)
	}
	// What herd work's handler returns for a job of a run stopped before
	// it started.
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 4}, map[string]queue.Handler{
		remote.Kind: func(context.Context, *queue.Job) ([]byte, error) { return json.Marshal(remote.Result{Skipped: true}) },
	})
	for seq := 1; seq <= 4; seq++ {
		if _, err := c.Wait(t.Context(), fmt.Sprint("r1.", seq)); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, web.Config{Queue: c})
	if _, body := get(t, s.URL()+"/api/runs/r1"); !strings.Contains(body, `"done": 4,`) || !strings.Contains(body, `"failed": 0,`) || !strings.Contains(body, `"not_started": 4,`) {
		t.Errorf("GET /api/runs/r1:\n%s\nwant 4 done, none failed, 4 not started", body)
	}
	if _, page := get(t, s.URL()+"/runs/r1"); !strings.Contains(page, "stopped (soon): 4 jobs not started") || !strings.Contains(page, "Retry the 4 failed or not started jobs") {
		t.Errorf("GET /runs/r1 does not say the jobs did not start, or offer to run them:\n%s", page)
	}
}

// A run whose jobs cannot start says why: their queue is paused, or no
// worker serves it.
func TestRunSaysWhyItsJobsWait(t *testing.T) {
	c := queuetest.New(t)
	commandRun(t, c, "true", "true", "true")
	if err := c.Pause(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c})
	_, page := get(t, s.URL()+"/runs/r1")
	for _, want := range []string{
		"Queue default is paused: its jobs wait until it is resumed (herd queue resume default).",
		"No worker serves queue default: its jobs wait for one",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /runs/r1 lacks %q:\n%s", want, page)
		}
	}
	if err := c.Resume(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	workRun(t, c, 2)
	if _, body := get(t, s.URL()+"/api/runs/r1"); strings.Contains(body, `"hints"`) {
		t.Errorf("GET /api/runs/r1 once its jobs ran:\n%s\nwant no hint", body)
	}
}
