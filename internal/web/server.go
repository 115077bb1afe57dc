package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/goherd/herd/queue"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config sets up a [Server]. Addr is required; the zero value of every
// other field is a read-write dashboard with no credentials, which
// [Listen] accepts on a loopback address only.
type Config struct {
	// Addr is the HOST:PORT to listen on; port 0 picks a free one.
	Addr string

	// User and Password require HTTP basic authentication; Token requires
	// "Authorization: Bearer TOKEN" (or basic authentication with the
	// token as the password, for browsers). Without either, Listen
	// refuses an address that is not loopback.
	User, Password string
	Token          string

	// ReadOnly hides every action and refuses its requests.
	ReadOnly bool

	// Queue is the queue the dashboard shows, /metrics reports on and
	// /readyz checks. Nil means none: metrics and health of the process.
	Queue *queue.Client

	// MetricsOnly serves no dashboard, only /metrics and the health
	// checks (herd work --http).
	MetricsOnly bool

	// Metrics are more collectors for /metrics, besides the Go runtime's,
	// the process's, herd_build_info and the queue's.
	Metrics []prometheus.Collector

	// Version is herd's, for herd_build_info and the pages' footer.
	Version string

	// Logger receives the server's errors. Nil means none.
	Logger *slog.Logger
}

// Server serves the dashboard, the metrics and the health checks.
type Server struct {
	cfg  Config
	ln   net.Listener
	srv  *http.Server
	dash *dashboard // nil without a queue
	log  *slog.Logger

	mu     sync.Mutex
	unused map[net.Conn]bool // connections with no request yet
}

// Listen checks cfg and starts listening on cfg.Addr.
func Listen(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("web: no address to listen on")
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, errors.New("web: a user and a password go together")
	}
	if cfg.User != "" && cfg.Token != "" {
		return nil, errors.New("web: a user and a token: choose one")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: address %q: want HOST:PORT", cfg.Addr)
	}
	if !loopback(host) && cfg.User == "" && cfg.Token == "" {
		return nil, fmt.Errorf("web: %s is reachable from other machines, and anyone who reaches the dashboard can run commands on the workers: give credentials (a user and password, or a token), or listen on 127.0.0.1", cfg.Addr)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(cfg.Version),
	)
	if cfg.Queue != nil {
		reg.MustRegister(newQueueCollector(cfg.Queue))
	}
	for _, c := range cfg.Metrics {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("web: metrics: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.ready)
	if cfg.Queue != nil && !cfg.MetricsOnly {
		s.dash, err = newDashboard(cfg, s.log)
		if err != nil {
			return nil, err
		}
		s.dash.routes(mux)
	}
	cop := http.NewCrossOriginProtection()
	handler := cop.Handler(s.authenticate(mux))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnState: s.track}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Serve serves until ctx is done, then stops taking requests, lets those
// under way finish for up to 5 seconds (live pages are closed at once), and
// returns. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	if s.dash != nil {
		s.dash.start()
		defer s.dash.stop()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	if s.dash != nil {
		s.dash.closeStreams()
	}
	s.closeUnused()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	return err
}

// track keeps the connections that have not sent a request yet, which
// browsers open ahead of need: Shutdown would wait 5 seconds for them.
func (s *Server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		if s.unused == nil {
			s.unused = map[net.Conn]bool{}
		}
		s.unused[c] = true
	} else {
		delete(s.unused, c)
	}
}

// closeUnused closes the connections that have not sent a request.
func (s *Server) closeUnused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.unused {
		c.Close()
	}
}

// ready answers /readyz: 200 once the queue's server answers and
// JetStream is ready, 503 with the reason otherwise.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Queue == nil {
		fmt.Fprintln(w, "ok")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Queue.Ping(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// authenticate requires the configured credentials of every request but
// /healthz and /readyz, which orchestrators probe without them.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.User == "" && s.cfg.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || s.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="herd", charset="UTF-8"`)
		http.Error(w, "herd: credentials required", http.StatusUnauthorized)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	same := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	user, pass, basic := r.BasicAuth()
	if s.cfg.Token != "" {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			return same(bearer, s.cfg.Token)
		}
		return basic && same(pass, s.cfg.Token)
	}
	return basic && same(user, s.cfg.User) && same(pass, s.cfg.Password)
}

// loopback reports whether host names this machine only.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error(fmt.Sprint(v...)) }
