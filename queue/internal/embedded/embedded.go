// Package embedded runs a NATS server with JetStream inside the process,
// storing its data in a folder: herd's queue when no server is named, and
// the servers of the queue's tests.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

	// MaxStore is the most bytes JetStream stores in Dir. Zero means
	// JetStream's default.
	MaxStore int64

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

	// Logger, if set, receives the server's warnings and errors (damaged
	// files it found when it started, a disk it cannot write), and its
	// notices at the debug level.
	Logger *slog.Logger

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
	log  *serverLog

	syncMu sync.Mutex
	seen   map[string]*seen // by path

	guard *diskGuard // nil for a server of a cluster

	stopKeeper context.CancelFunc // stops keepFolders; nil if it does not run
	keeper     sync.WaitGroup     // keepFolders
}

// serverLog passes the server's log lines to a slog.Logger, and notes the
// streams whose files the server complained of.
type serverLog struct {
	l       *slog.Logger
	mu      sync.Mutex
	streams map[string]bool
}

func (s *serverLog) Noticef(format string, v ...any) {
	s.l.Debug("nats-server: " + fmt.Sprintf(format, v...))
}
func (s *serverLog) Warnf(format string, v ...any) {
	s.l.Warn("nats-server: " + s.note(format, v))
}
func (s *serverLog) Errorf(format string, v ...any) {
	s.l.Error("nats-server: " + s.note(format, v))
}
func (s *serverLog) Fatalf(format string, v ...any) {
	s.l.Error("nats-server: " + s.note(format, v))
}
func (s *serverLog) Debugf(format string, v ...any) {}
func (s *serverLog) Tracef(format string, v ...any) {}

// note returns the line, after noting the stream it names if it is about
// a stream's files ("Filestore [NAME] ...").
func (s *serverLog) note(format string, v []any) string {
	line := fmt.Sprintf(format, v...)
	if rest, ok := strings.CutPrefix(line, "Filestore ["); ok {
		if name, _, ok := strings.Cut(rest, "]"); ok {
			s.mu.Lock()
			s.streams[name] = true
			s.mu.Unlock()
		}
	}
	return line
}

// complaints returns the names of the streams whose files the server
// complained of.
func (s *serverLog) complaints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.streams))
}

// Recovered reports whether the server complained of the named stream's
// files when it started: it found them damaged, or not as it leaves them
// when it stops (after a crash), and rebuilt what it could from them.
func (s *Server) Recovered(stream string) bool {
	return slices.Contains(s.log.complaints(), stream)
}

// Close stops the server, waits until it has, and releases its folder.
func (s *Server) Close() {
	if s.stopKeeper != nil {
		s.stopKeeper()
		s.keeper.Wait()
	}
	if s.guard != nil {
		s.guard.close()
	}
	s.Shutdown()
	s.WaitForShutdown()
	s.syncMu.Lock()
	for _, e := range s.seen {
		e.f.Close()
	}
	s.seen = nil
	s.syncMu.Unlock()
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
	opts, err := options(cfg)
	if err != nil {
		lock.Close()
		return nil, err
	}
	log := &serverLog{l: cfg.Logger, streams: map[string]bool{}}
	if log.l == nil {
		log.l = slog.New(slog.DiscardHandler)
	}
	ns, err := run(opts, log)
	if damaged := log.complaints(); err == nil && len(damaged) > 0 {
		// The server trusts a stream's index when it was written at a
		// clean stop, and finds a damaged block only once it reads it,
		// keeping the index's count of the messages lost. Start it again
		// without the index of each stream it complained of, so that it
		// rebuilds the index from the blocks that it can read.
		ns.Shutdown()
		ns.WaitForShutdown()
		for _, name := range damaged {
			paths, _ := filepath.Glob(filepath.Join(cfg.Dir, "jetstream", "*", "streams", name, "msgs", "index.db"))
			for _, p := range paths {
				if err := os.Remove(p); err != nil {
					lock.Close()
					return nil, fmt.Errorf("embedded: rebuilding the index of %s: %w", name, err)
				}
			}
		}
		log.l.Warn("queue: starting the server again to rebuild the index of streams whose files were damaged or not closed cleanly", "streams", damaged)
		ns, err = run(opts, log)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Server{Server: ns, lock: lock, dir: cfg.Dir, log: log}
	if !cfg.GroupSync && cfg.SyncInterval == 0 {
		ctx, stop := context.WithCancel(context.Background())
		s.stopKeeper = stop
		s.keeper.Go(func() { s.keepFolders(ctx) })
	}
	if cfg.Cluster.Name == "" {
		// A cluster's servers each have their disk; the account's limit
		// is the cluster's.
		if err := s.guardDisk(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// options are the server's options for cfg.
func options(cfg Config) (*server.Options, error) {
	name := cfg.Name
	if name == "" {
		name = "herd"
	}
	opts := &server.Options{
		ServerName:        name,
		JetStream:         true,
		StoreDir:          cfg.Dir,
		JetStreamMaxStore: cfg.MaxStore,
		NoSigs:            true,
		NoLog:             true,
		DontListen:        cfg.Port == 0,
		Host:              cfg.Host,
		Port:              cfg.Port,
		Username:          cfg.User,
		Password:          cfg.Password,
		Authorization:     cfg.Token,
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
	return opts, nil
}

// run starts a server and waits until it accepts connections.
func run(opts *server.Options, log *serverLog) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	opts.NoLog = false
	ns.SetLoggerV2(log, false, false, false)
	ns.Start() // does not block: the server runs until Shutdown
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded: server in %s did not start", opts.StoreDir)
	}
	return ns, nil
}

// Sync makes durable every message the server has stored: it syncs the
// message files of each stream that changed since the last Sync, and the
// folders that hold them if files came or went. The server writes each
// message to its file before it acknowledges it (the store of a stream
// kept on one server flushes in place), so what was acknowledged before
// Sync is called is on disk when it returns. Consumers' states and the
// streams' indexes are left to the server: it rebuilds them from the
// messages, and an acknowledgement lost is a job whose record the worker
// reads again.
//
// Sync is called after every group of writes, a lone enqueue included, so
// it looks at as little as it can: a folder is read again only when it
// changed, and the files it syncs stay open.
func (s *Server) Sync() error {
	return s.sync(true)
}

// sync syncs what changed of the folders that lead to the message files
// (the server makes them, and syncs none but the last), and with files
// set, the message files.
func (s *Server) sync(files bool) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.seen == nil {
		s.seen = map[string]*seen{}
	}
	// The message files are jetstream/<account>/streams/<stream>/msgs/*.blk.
	root := filepath.Join(s.dir, "jetstream")
	accounts, err := s.list(root)
	if err != nil {
		return fmt.Errorf("embedded: sync: %w", err)
	}
	var folders []string
	for _, acc := range accounts {
		streams, err := s.list(filepath.Join(root, acc, "streams"))
		if err != nil {
			return fmt.Errorf("embedded: sync: %w", err)
		}
		for _, stream := range streams {
			dir := filepath.Join(root, acc, "streams", stream, "msgs")
			names, err := s.list(dir)
			if err != nil {
				return fmt.Errorf("embedded: sync: %w", err)
			}
			for _, f := range names {
				if files && strings.HasSuffix(f, ".blk") {
					if err := s.syncChanged(filepath.Join(dir, f)); err != nil {
						return fmt.Errorf("embedded: sync: %w", err)
					}
				}
			}
			folders = append(folders, dir, filepath.Dir(dir))
		}
		folders = append(folders, filepath.Join(root, acc, "streams"), filepath.Join(root, acc))
	}
	// The folders last, deepest first.
	for _, dir := range append(folders, root, s.dir) {
		if err := s.syncChanged(dir); err != nil {
			return fmt.Errorf("embedded: sync: %w", err)
		}
	}
	return nil
}

// keepFolders makes the folders that lead to the message files durable
// soon after they change, until ctx is done: a server that syncs each
// message itself (SyncAlways) syncs the folder of its message files only
// every two minutes, and never the folders above it, which a new stream
// or bucket adds.
func (s *Server) keepFolders(ctx context.Context) {
	t := time.NewTicker(keepFoldersEvery)
	defer t.Stop()
	var failing string // the last error, said once
	for {
		select {
		case <-t.C:
			err := s.sync(false)
			if err != nil && err.Error() != failing {
				s.log.l.Warn("queue: syncing the server's folders", "error", err)
			}
			failing = ""
			if err != nil {
				failing = err.Error()
			}
		case <-ctx.Done():
			return
		}
	}
}

// keepFoldersEvery is how often keepFolders looks: a look is a few dozen
// fstat calls, but waking the process 50 times a second would cost an
// idle server 2% of a core.
const keepFoldersEvery = 100 * time.Millisecond

// seen is what Sync knows of a file or folder, which it keeps open.
type seen struct {
	f      *os.File
	synced *fileState // when it was last synced; nil if never

	names    []string  // a folder's entries, read at listedAt
	listed   fileState // the folder when it was read
	listedAt time.Time
}

// fileState is the size and time of a file or folder.
type fileState struct {
	size  int64
	mtime time.Time
}

// racy is how close to a listing a folder's change must be for Sync to
// doubt it. A folder's time comes from a clock that ticks every few
// milliseconds, so an entry added in the tick of a listing but after it
// leaves the time as the listing saw it; a listing is trusted only once
// the folder's time is well before it (git treats its index the same way).
const racy = 20 * time.Millisecond

// look returns what Sync knows of path, opening it if it is not open yet,
// and its size and time now; nil if it does not exist. Paths stay open
// for as long as the folder that holds them does not change, so each
// look after the first is one fstat.
func (s *Server) look(path string) (*seen, fileState, error) {
	e := s.seen[path]
	if e == nil {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileState{}, nil
		}
		if err != nil {
			return nil, fileState{}, err
		}
		e = &seen{f: f}
		s.seen[path] = e
	}
	info, err := e.f.Stat()
	if err != nil {
		return nil, fileState{}, err
	}
	return e, fileState{info.Size(), info.ModTime()}, nil
}

// list returns the names in a folder, read again only if the folder
// changed since it was last read, or might have. When it is read again,
// what Sync holds open under it and is gone, or replaced by another file
// of the same name, is closed.
func (s *Server) list(dir string) ([]string, error) {
	e, now, err := s.look(dir)
	if e == nil || err != nil {
		return nil, err
	}
	if e.names != nil && e.listed == now && now.mtime.Before(e.listedAt.Add(-racy)) {
		return e.names, nil
	}
	at := time.Now()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(dir)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	// What is held open under dir stays open if its path still leads to it.
	for path, held := range s.seen {
		if !strings.HasPrefix(path, dir+string(filepath.Separator)) {
			continue
		}
		now, err := os.Stat(path)
		was, err2 := held.f.Stat()
		if err != nil || err2 != nil || !os.SameFile(now, was) {
			held.f.Close()
			delete(s.seen, path)
		}
	}
	e.names, e.listed, e.listedAt = names, now, at
	return names, nil
}

// forget closes path, if Sync holds it open, and what it holds under it.
func (s *Server) forget(path string) {
	for p, e := range s.seen {
		if p == path || strings.HasPrefix(p, path+string(filepath.Separator)) {
			e.f.Close()
			delete(s.seen, p)
		}
	}
}

// fsync syncs a file; tests watch it.
var fsync = (*os.File).Sync

// syncChanged syncs the file or folder at path if its size or time differ
// from when Sync last synced it. (A message file only grows, or is
// rewritten smaller, so a change that keeps both is no change.)
func (s *Server) syncChanged(path string) error {
	e, now, err := s.look(path)
	if e == nil || err != nil {
		return err
	}
	if e.synced != nil && *e.synced == now {
		return nil
	}
	if err := fsync(e.f); err != nil {
		return err
	}
	e.synced = &now
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
