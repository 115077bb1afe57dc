package queue

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/goherd/herd/queue/internal/embedded"
)

// ServerConfig sets up a queue server that other processes connect to:
// what herd queue serve runs. The zero value listens on 127.0.0.1:4222,
// with no authentication, storing its data in [DefaultDir] and flushing
// every write to disk.
type ServerConfig struct {
	// Listen is the host:port clients connect to. Empty means
	// 127.0.0.1:4222; port 0 means any free port.
	Listen string

	// Dir, SyncInterval and MaxStore are as in [Config].
	Dir          string
	SyncInterval time.Duration
	MaxStore     int64

	// Name names the server; the servers of a cluster need different
	// names. Empty means "herd".
	Name string

	// User and Password, or Token, are what clients must present. Empty
	// means no authentication.
	User, Password string
	Token          string

	// TLS, if set, makes clients connect with TLS.
	TLS *tls.Config

	// Cluster, if its Name is set, joins this server to a NATS cluster.
	Cluster ClusterConfig

	// Replicas, if set, is how many servers of the cluster keep a copy of
	// each job (see [Config.Replicas]): once the cluster is up, the server
	// sets up the queue with that many. Zero leaves the queue as it is, or
	// as its first client makes it.
	Replicas int

	// Logger receives the server's log lines. Nil means none.
	Logger *slog.Logger
}

// ClusterConfig joins a server to a cluster.
type ClusterConfig struct {
	Name   string   // the cluster's name, the same on every server
	Listen string   // host:port where this server listens for the others
	Routes []string // the others (or all, this one included): nats-route://host:port
}

// Server is a running queue server.
type Server struct {
	ns       *embedded.Server
	dir      string
	stop     context.CancelFunc
	setupRun sync.WaitGroup
}

// Serve starts a queue server and returns once it accepts connections.
func Serve(cfg ServerConfig) (*Server, error) {
	if cfg.MaxStore < 0 {
		return nil, fmt.Errorf("queue: serve: max store %d: must not be negative", cfg.MaxStore)
	}
	ec := embedded.Config{Dir: cfg.Dir, SyncInterval: cfg.SyncInterval, MaxStore: cfg.MaxStore, Name: cfg.Name,
		User: cfg.User, Password: cfg.Password, Token: cfg.Token, TLS: cfg.TLS, Logger: cfg.Logger}
	if ec.Dir == "" {
		var err error
		if ec.Dir, err = DefaultDir(); err != nil {
			return nil, err
		}
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("queue: serve: sync interval %v: must not be negative", cfg.SyncInterval)
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	var err error
	if ec.Host, ec.Port, err = hostPort("listen", listen); err != nil {
		return nil, err
	}
	if cfg.Cluster.Name != "" {
		ec.Cluster.Name, ec.Cluster.Routes = cfg.Cluster.Name, cfg.Cluster.Routes
		if ec.Cluster.Host, ec.Cluster.Port, err = hostPort("cluster listen", cfg.Cluster.Listen); err != nil {
			return nil, err
		}
	}
	ns, err := embedded.Start(ec)
	if err != nil {
		return nil, fmt.Errorf("queue: serve: %w", err)
	}
	s := &Server{ns: ns, dir: ec.Dir}
	if cfg.Cluster.Name == "" && ns.Recovered(streamName) {
		// A server of a cluster recovers from the others.
		s.repair(cfg)
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	if cfg.Replicas > 0 {
		s.setupRun.Go(func() { s.setup(ctx, cfg) })
	}
	return s, nil
}

// setup sets the queue up with cfg.Replicas copies, trying until the
// cluster has elected its leader, or the server stops.
func (s *Server) setup(ctx context.Context, cfg ServerConfig) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		// A cluster without a leader leaves requests unanswered: give
		// each try a short time, and try often.
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := open(tctx, Config{User: cfg.User, Password: cfg.Password, Token: cfg.Token, Replicas: cfg.Replicas}, s.ns.Server)
		cancel()
		if err == nil {
			c.Close()
			log.Info("queue: ready, each job kept on this many servers", "replicas", cfg.Replicas)
			return
		}
		log.Debug("queue: setting up; trying again", "error", err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// repair repairs the queue that the server found damaged when it started,
// as it starts (see [Client.Repair]).
func (s *Server) repair(cfg ServerConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := open(ctx, Config{User: cfg.User, Password: cfg.Password, Token: cfg.Token, Logger: cfg.Logger}, s.ns.Server)
	if err != nil {
		if cfg.Logger != nil {
			cfg.Logger.Error("queue: the server rebuilt the queue from its files; checking the jobs' records failed: run herd queue repair", "error", err)
		}
		return
	}
	defer c.Close()
	c.repairAtStart(ctx)
}

// hostPort splits a listening address; port 0 becomes -1, which the
// embedded server reads as any free port.
func hostPort(what, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("queue: serve: %s address %q: want host:port", what, addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("queue: serve: %s address %q: bad port", what, addr)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// Open connects a client to the server in process, with no network and no
// TLS between them. cfg's URL and Dir are ignored; its User and Password, or
// Token, must be the server's.
func (s *Server) Open(ctx context.Context, cfg Config) (*Client, error) {
	cfg.URL, cfg.Dir = "", ""
	return open(ctx, cfg, s.ns.Server)
}

// URL is where clients connect: the URL to give [Config.URL].
func (s *Server) URL() string { return s.ns.ClientURL() }

// Dir is the folder the server stores its data in.
func (s *Server) Dir() string { return s.dir }

// Close stops the server once it has written out what it holds.
func (s *Server) Close() {
	s.stop()
	s.setupRun.Wait()
	s.ns.Close()
}
