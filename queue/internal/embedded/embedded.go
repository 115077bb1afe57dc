// Package embedded runs a NATS server with JetStream inside the process,
// storing its data in a folder: herd's queue when no server is named, and
// the servers of the queue's tests.
package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says how to run the server.
type Config struct {
	// Dir is the folder JetStream stores its data in. It must be set.
	Dir string

	// SyncInterval is how often written data is flushed to disk. Zero
	// means after every write.
	SyncInterval time.Duration

	// GroupSync, with a zero SyncInterval, leaves the syncs to the
	// process, which calls [Server.Sync] after each group of writes that
	// must be durable; the server syncs every two minutes besides.
	GroupSync bool

	// Name names the server; it must differ between the servers of a
	// cluster. Empty means "herd".
	Name string

	// Host and Port are where the server accepts clients. A zero Port
	// means only this process can connect, in process; -1 means a free
	// port.
	Host string
	Port int

	// User and Password, or Token, are what clients must present.
	User, Password string
	Token          string

	// TLS, if set, makes clients connect with TLS.
	TLS *tls.Config

	// Tune, if set, changes the server's options last: for settings this
	// Config does not name, such as decentralized (JWT) authentication.
	Tune func(*server.Options)

	// Cluster joins the server to a cluster: its name, where this server
	// listens for the others, and the routes to them.
	Cluster struct {
		Name   string
		Host   string
		Port   int
		Routes []string // nats-route://host:port
	}
}

// Server is a running server. It holds a lock on its data folder, so that
// no other server in any process uses the folder at the same time.
type Server struct {
	*server.Server
	lock *os.File
	dir  string

	syncMu   sync.Mutex
	lastSync time.Time // when the last Sync began
}

// Close stops the server, waits until it has, and releases its folder.
func (s *Server) Close() {
	s.Shutdown()
	s.WaitForShutdown()
	s.lock.Close()
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded: no data folder")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: data folder: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = "herd"
	}
	opts := &server.Options{
		ServerName:    name,
		JetStream:     true,
		StoreDir:      cfg.Dir,
		NoSigs:        true,
		NoLog:         true,
		DontListen:    cfg.Port == 0,
		Host:          cfg.Host,
		Port:          cfg.Port,
		Username:      cfg.User,
		Password:      cfg.Password,
		Authorization: cfg.Token,
	}
	if cfg.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, cfg.TLS, 2
	}
	switch {
	case cfg.SyncInterval > 0:
		opts.SyncInterval = cfg.SyncInterval
	case cfg.GroupSync:
		opts.SyncInterval = 2 * time.Minute
	default:
		opts.SyncAlways = true
	}
	if cfg.Cluster.Name != "" {
		opts.Cluster.Name = cfg.Cluster.Name
		opts.Cluster.Host = cfg.Cluster.Host
		opts.Cluster.Port = cfg.Cluster.Port
		for _, r := range cfg.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("embedded: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.Tune != nil {
		cfg.Tune(opts)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	s := &Server{Server: ns, lock: lock, dir: cfg.Dir}
	ns.Start() // does not block: the server runs until Shutdown
	if !ns.ReadyForConnections(30 * time.Second) {
		s.Close()
		return nil, fmt.Errorf("embedded: server in %s did not start", cfg.Dir)
	}
	return s, nil
}

// Sync makes durable every write the server has made to its store: it
// syncs the files and folders of the store changed since the last Sync
// began. The server writes each message it stores to its files before it
// acknowledges it (the store of a stream kept on one server flushes in
// place), so what was acknowledged before Sync is called is on disk when
// it returns.
func (s *Server) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	start := time.Now()
	// File times come from a clock coarser than time.Now: take a margin.
	since := s.lastSync.Add(-time.Second)
	err := filepath.WalkDir(filepath.Join(s.dir, "jetstream"), func(path string, d fs.DirEntry, err error) error {
		if err == nil {
			var info fs.FileInfo
			if info, err = d.Info(); err == nil && info.ModTime().Before(since) {
				return nil
			}
		}
		if err == nil {
			var f *os.File
			if f, err = os.Open(path); err == nil {
				err = f.Sync()
				f.Close()
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("embedded: sync: %w", err)
	}
	s.lastSync = start
	return nil
}

// lockDir takes the lock of a data folder: two servers writing one
// JetStream store would corrupt it. The lock goes with the file, when the
// server closes it or its process ends.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "herd.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded: data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded: the queue in %s is in use by another process (herd queue serve, or a program with the queue embedded): connect to that one with its URL, or give another folder", dir)
		}
		return nil, fmt.Errorf("embedded: locking %s: %w", dir, err)
	}
	return f, nil
}
