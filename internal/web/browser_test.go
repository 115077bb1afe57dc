package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/goherd/herd/internal/run/remote"
	"github.com/goherd/herd/internal/testutil"
	"github.com/goherd/herd/internal/web"
	"github.com/goherd/herd/queue"
	"github.com/goherd/herd/queue/queuetest"
)

// go test -run TestBrowser ./internal/web -args -screenshots doc/img
// writes the README's screenshots, taken from the real pages.
var screenshots = flag.String("screenshots", "", "write screenshots of the pages to this `folder`")

// browser starts a headless Chromium for the test (Debian's chromium,
// which CI installs and requires: HERD_BROWSER=required; elsewhere the
// test is skipped without it, saying why). It accepts the pages'
// confirmation dialogs.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testutil.Need(t, "HERD_BROWSER", "Chromium is needed for the dashboard's browser tests (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, for as long as ctx
		t.Fatalf("starting %s: %v", path, err)
	}
	var dialogs sync.WaitGroup
	opening := chromedp.Events(ctx, page.JavascriptDialogOpening)
	dialogs.Go(func() {
		for _, err := range opening {
			if err != nil {
				return
			}
			// Accepted from another goroutine than the one reading events.
			dialogs.Go(func() {
				chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
					_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
					return err
				}))
			})
		}
	})
	tctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancel()
		cancelBrowser()
		cancelAlloc()
		dialogs.Wait()
	})
	return tctx
}

// run runs browser actions, failing the test with what was done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// void runs an action for its effect.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// click clicks the element that the CSS selector finds, once there is
// one: found and clicked in one step of the page's JavaScript, so that a
// live update that replaces the page's live part in between cannot leave
// the click a node that is gone.
func click(selector string) chromedp.Action[chromedp.Void] {
	sel, _ := json.Marshal(selector)
	return waitFor(`(() => {
		const e = document.querySelector(` + string(sel) + `);
		if (!e) return false;
		e.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true, view: window}));
		return true;
	})()`)
}

// waitFor waits until the page's JavaScript expression is true, looking
// every 50ms, through the loads of new pages, up to testutil.Backstop.
func waitFor(expr string) chromedp.Action[chromedp.Void] {
	eval := chromedp.Evaluate[bool]("!!(" + expr + ")")
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var last error
		for deadline := time.Now().Add(testutil.Backstop); time.Now().Before(deadline); {
			ok, err := eval(ctx, t)
			if ok && err == nil {
				return chromedp.Void{}, nil
			}
			last = err
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			}
		}
		return chromedp.Void{}, fmt.Errorf("timed out waiting for %s (last error: %v)", expr, last)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*screenshots, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// worker runs a queue worker with handlers until the test ends.
func worker(t *testing.T, c *queue.Client, handlers map[string]queue.Handler) {
	t.Helper()
	queuetest.Work(t, c, queue.WorkerConfig{Concurrency: 2, Backoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}, handlers)
}

// The overview's counts change as jobs finish, without the page being
// loaded again.
func TestBrowserOverviewLive(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	for i := range 3 {
		if _, err := c.Enqueue(t.Context(), "ok", nil, queue.Options{ID: fmt.Sprint("job", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, web.Config{Queue: c})
	waiting := `document.querySelector('tr[data-queue="default"] td.waiting')`
	run(t, ctx, "the overview with 3 jobs waiting",
		chromedp.Navigate(s.URL()+"/"),
		waitFor(waiting+` && `+waiting+`.textContent === "3"`),
		void(chromedp.Evaluate[bool](`window.notReloaded = true`)),
	)
	release := make(chan struct{})
	worker(t, c, map[string]queue.Handler{"ok": func(ctx context.Context, _ *queue.Job) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}})
	running := `document.querySelector('tr[data-queue="default"] td.running').textContent`
	run(t, ctx, "the overview once a worker runs 2 of them and has taken the third ahead (its heartbeat says so within 5s)",
		waitFor(waiting+`.textContent === "0 +1 taken" && `+running+` === "2"`))
	close(release)
	run(t, ctx, "the overview once the jobs are done", waitFor(running+` === "0" && window.notReloaded === true`))
	screenshot(t, ctx, "overview.png")
}

// A run's page shows its jobs' output as they finish.
func TestBrowserRunPage(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	st, _ := json.Marshal(remote.State{Jobs: 3, Command: "echo hello from job {}; exit $(({} == 3))", Started: time.Now()})
	if err := c.PutMeta(t.Context(), remote.RunKey("r1"), st); err != nil {
		t.Fatal(err)
	}
	var jobs []queue.NewJob
	for seq := 1; seq <= 3; seq++ {
		payload, _ := json.Marshal(remote.Job{Run: "r1", Seq: seq, Args: []string{fmt.Sprint(seq)}, Shell: "/bin/sh", Attempts: 1,
			Line: fmt.Sprintf("echo hello from job %d; exit $((%d == 3))", seq, seq)})
		jobs = append(jobs, queue.NewJob{Kind: remote.Kind, Payload: payload, Options: queue.Options{ID: fmt.Sprintf("r1.%d", seq)}})
	}
	if _, err := c.EnqueueBatch(t.Context(), jobs); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c})
	run(t, ctx, "the run's page before any worker",
		chromedp.Navigate(s.URL()+"/runs/r1"),
		waitFor(`document.getElementById("run-done").textContent === "0/3"`),
	)
	rw, err := remote.NewWorker(2)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	worker(t, c, map[string]queue.Handler{remote.Kind: rw.Handle})
	run(t, ctx, "the run's page as its jobs finish",
		waitFor(`document.getElementById("run-done").textContent === "3/3"`),
		waitFor(`(document.querySelector('tr[data-seq="2"] pre.stdout') || {}).textContent === "hello from job 2\n"`),
		waitFor(`document.getElementById("run-failed").textContent === "1" && document.querySelector('tr[data-seq="3"] td.exit').textContent.trim() === "1"`),
	)
	screenshot(t, ctx, "run.png")

	// The job log is GNU parallel's.
	code, log := get(t, s.URL()+"/runs/r1/joblog")
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if code != http.StatusOK || len(lines) != 4 || !strings.HasPrefix(lines[0], "Seq\tHost\tStarttime") {
		t.Fatalf("GET /runs/r1/joblog = %d:\n%s", code, log)
	}
	if cols := strings.Split(lines[3], "\t"); len(cols) != 9 || cols[0] != "3" || cols[6] != "1" || cols[8] != "echo hello from job 3; exit $((3 == 3))" {
		t.Errorf("job log row of job 3 = %q, want job 3 with exit status 1", cols)
	}
}

// A dead job is retried from the dead jobs' page, and runs.
func TestBrowserRetryDeadJob(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	var tries atomic.Int32
	worker(t, c, map[string]queue.Handler{"flaky": func(context.Context, *queue.Job) ([]byte, error) {
		if tries.Add(1) == 1 {
			return nil, errors.New("first time unlucky")
		}
		return []byte("fine now"), nil
	}})
	if _, err := c.Enqueue(t.Context(), "flaky", nil, queue.Options{ID: "flaky-1", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Wait(t.Context(), "flaky-1"); err != nil || info.State != queue.Dead {
		t.Fatalf("flaky-1 = %+v, %v; want dead", info, err)
	}
	s := start(t, web.Config{Queue: c})
	run(t, ctx, "retrying flaky-1 from the dead jobs' page",
		chromedp.Navigate(s.URL()+"/jobs?state=dead"),
		chromedp.WaitVisible(chromedp.CSS(`input[value="flaky-1"]`)),
		click(`input[value="flaky-1"]`),
		click(`#retry-selected`),
		waitFor(`location.pathname === "/jobs" && !document.querySelector('input[value="flaky-1"]') && (document.getElementById("done") || {}).textContent === "Retried 1 job: queued to run again."`),
	)
	info, err := c.Wait(t.Context(), "flaky-1")
	if err != nil || info.State != queue.Succeeded || string(info.Result) != "fine now" {
		t.Fatalf("flaky-1 after its retry = %+v, %v; want it run and succeeded", info, err)
	}
	run(t, ctx, "the job's page after its retry",
		chromedp.Navigate(s.URL()+"/jobs/flaky-1"),
		waitFor(`document.getElementById("state").textContent === "succeeded" && document.getElementById("result").textContent === "fine now"`),
	)
}

// A queue's limits are set from the overview's form, which the live
// updates leave alone while it is open, and cleared from its row.
func TestBrowserLimits(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	if _, err := c.Enqueue(t.Context(), "waits", nil, queue.Options{Queue: "payments"}); err != nil {
		t.Fatal(err)
	}
	s := start(t, web.Config{Queue: c})
	run(t, ctx, "setting queue payments' limits from the overview",
		chromedp.Navigate(s.URL()+"/"),
		click(`#set-limits summary`),
		chromedp.SendKeys(chromedp.CSS(`#set-limits input[name=queue]`), "payments"),
		chromedp.SendKeys(chromedp.CSS(`#set-limits input[name=concurrency]`), "5"),
		chromedp.SendKeys(chromedp.CSS(`#set-limits input[name=rate]`), "50/s"),
		chromedp.SendKeys(chromedp.CSS(`#set-limits input[name=burst]`), "10"),
		void(chromedp.Evaluate[bool](`document.activeElement.blur(), true`)),
	)
	// A change the live updates would show must not wipe what was typed.
	if _, err := c.Enqueue(t.Context(), "waits", nil, queue.Options{Queue: "payments"}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "sending the form after the queue changed",
		chromedp.Sleep(2500*time.Millisecond),
		click(`#set-limits button`),
		waitFor(`location.pathname === "/" && (document.querySelector('tr[data-queue="payments"] .limits') || {}).textContent.includes("at most 5 at once, at most 50/s (burst 10)")`),
	)
	want := queue.Limits{Concurrency: 5, Rate: 50, Burst: 10}
	if all, err := c.Limits(t.Context()); err != nil || all["payments"] != want {
		t.Fatalf("limits after the form = %v, %v; want payments: %v", all, err, want)
	}
	run(t, ctx, "clearing them from the queue's row",
		click(`tr[data-queue="payments"] .limits button`),
		waitFor(`location.pathname === "/" && document.querySelector('tr[data-queue="payments"] .limits').textContent.trim() === ""`),
	)
	if all, err := c.Limits(t.Context()); err != nil || len(all) != 0 {
		t.Errorf("limits after clearing = %v, %v; want none", all, err)
	}
}

// Read-only, the page has no action and the server refuses one sent
// anyway; a form on another site that posts to the dashboard is refused.
func TestBrowserRefusals(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	deadJob(t, c, "d1")
	ro := start(t, web.Config{Queue: c, ReadOnly: true})
	run(t, ctx, "a read-only job page",
		chromedp.Navigate(ro.URL()+"/jobs/d1"),
		waitFor(`document.getElementById("state") && !document.getElementById("retry") && !document.querySelector("form[method=post]")`),
	)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/jobs/d1/retry", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden {
		t.Errorf("a retry posted to a read-only dashboard = %d, want 403", status)
	}

	s := start(t, web.Config{Queue: c})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="post" action="%s/jobs/d1/delete"></form><script>document.getElementById("f").submit()</script>`, s.URL())
	}))
	defer evil.Close()
	run(t, ctx, "another site's form posting to the dashboard",
		chromedp.Navigate(evil.URL),
		waitFor(fmt.Sprintf(`location.href.startsWith(%q) && document.body`, s.URL())),
	)
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "cross-origin") {
		t.Errorf("the dashboard's answer to another site's form = %q, want it refused", body)
	}
	if info, err := c.Info(t.Context(), "d1"); err != nil || info.State != queue.Dead {
		t.Errorf("job d1 after another site's form = %+v, %v; want it kept", info, err)
	}
}

// A job's page draws the jobs it waits for and those that wait for it,
// coloured by state, each a link; a run's page draws the runs it waits
// for and those that wait for it.
func TestBrowserGraphs(t *testing.T) {
	ctx := browser(t)
	c := queuetest.New(t)
	rw, err := remote.NewWorker(2)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	worker(t, c, map[string]queue.Handler{remote.Kind: rw.Handle, "step": func(_ context.Context, j *queue.Job) ([]byte, error) {
		if string(j.Payload) == "fail" {
			return nil, queue.Permanent(errors.New("told to fail"))
		}
		return nil, nil
	}})
	var g queue.Graph
	g.Add("top", queue.NewJob{Kind: "step", Options: queue.Options{ID: "top"}})
	g.Add("left", queue.NewJob{Kind: "step", Payload: []byte("fail"), Options: queue.Options{ID: "left"}}, "top")
	g.Add("right", queue.NewJob{Kind: "step", Options: queue.Options{ID: "right"}}, "top")
	g.Add("bottom", queue.NewJob{Kind: "step", Options: queue.Options{ID: "bottom"}}, "left", "right")
	if _, err := c.EnqueueGraph(t.Context(), &g); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Wait(t.Context(), "bottom"); err != nil || info.State != queue.Skipped {
		t.Fatalf("bottom = %+v, %v; want skipped", info, err)
	}
	s := start(t, web.Config{Queue: c})
	node := func(id string) string { return `document.querySelector('#job-graph a[data-id="` + id + `"] g')` }
	run(t, ctx, "the graph on the page of a job that did not run",
		chromedp.Navigate(s.URL()+"/jobs/bottom"),
		waitFor(`document.querySelectorAll("#job-graph g.node").length === 4 && document.querySelectorAll("#job-graph path.edge").length === 4`),
		waitFor(node("bottom")+`.classList.contains("state-skipped") && `+node("bottom")+`.classList.contains("focus")`),
		waitFor(node("left")+`.classList.contains("state-dead") && `+node("top")+`.classList.contains("state-succeeded")`),
	)
	screenshot(t, ctx, "graph.png")
	run(t, ctx, "a node of the graph is a link to its job's page",
		click(`#job-graph a[data-id="left"] rect`),
		waitFor(`location.pathname === "/jobs/left" && document.getElementById("state").textContent === "dead"`),
	)

	// Two runs, the second after the first (herd run --after).
	for i, id := range []string{"r1", "r2"} {
		st, _ := json.Marshal(remote.State{Jobs: 1, Command: "true", Started: time.Now().Add(time.Duration(i) * time.Second)})
		if err := c.PutMeta(t.Context(), remote.RunKey(id), st); err != nil {
			t.Fatal(err)
		}
	}
	job := func(run string) []byte {
		b, _ := json.Marshal(remote.Job{Run: run, Seq: 1, Shell: "/bin/sh", Attempts: 1, Line: "true"})
		return b
	}
	if _, err := c.Enqueue(t.Context(), remote.Kind, job("r1"), queue.Options{ID: "r1.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(t.Context(), queue.Barrier, nil, queue.Options{ID: "r2-after", After: []string{"r1.1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(t.Context(), remote.Kind, job("r2"), queue.Options{ID: "r2.1", After: []string{"r2-after"}}); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Wait(t.Context(), "r2.1"); err != nil || info.State != queue.Succeeded {
		t.Fatalf("r2.1 = %+v, %v; want it run after r1.1", info, err)
	}
	run(t, ctx, "the graph of a run's page",
		chromedp.Navigate(s.URL()+"/runs/r1"),
		waitFor(`document.querySelectorAll("#run-graph g.node").length === 2 && document.querySelector('#run-graph a[data-id="r2"]')`),
		click(`#run-graph a[data-id="r2"] rect`),
		waitFor(`location.pathname === "/runs/r2" && document.querySelector('#run-graph a[data-id="r1"] g.state-succeeded')`),
	)
}
