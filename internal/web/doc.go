// Package web is herd's operations surface over HTTP: a live dashboard of a
// queue (its queues, the runs of herd run --queue, jobs by state, dead jobs,
// workers), a JSON twin of each page under /api/, Prometheus metrics at
// /metrics, and /healthz and /readyz.
//
// Pages are server-rendered with html/template from files built into the
// binary, and kept live by server-sent events: the page's live part is
// rendered again each second while the tab is visible, and sent when it
// changes. No JavaScript is fetched from elsewhere.
//
// A [Server] listens on loopback unless it is given credentials: anyone who
// can reach the dashboard can retry, delete and stop jobs, which run
// commands on the workers. Actions are POSTs, refused from other sites
// (Go's [http.CrossOriginProtection]) and in read-only mode.
//
//	s, err := web.Listen(web.Config{Addr: "127.0.0.1:8080", Queue: c})
//	err = s.Serve(ctx) // until ctx is done
package web
