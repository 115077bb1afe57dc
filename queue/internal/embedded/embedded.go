// Package embedded runs a NATS server with JetStream inside the process,
// storing its data in a folder: herd's queue when no server is named, and
// the servers of the queue's tests.
package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
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
	if cfg.SyncInterval == 0 {
		opts.SyncAlways = true
	} else {
		opts.SyncInterval = cfg.SyncInterval
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
	s := &Server{Server: ns, lock: lock}
	ns.Start() // does not block: the server runs until Shutdown
	if !ns.ReadyForConnections(30 * time.Second) {
		s.Close()
		return nil, fmt.Errorf("embedded: server in %s did not start", cfg.Dir)
	}
	return s, nil
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
