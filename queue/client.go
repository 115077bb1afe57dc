package queue

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goherd/herd/queue/internal/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where the queue lives. The zero value is an embedded server
// storing its data in [DefaultDir], flushing every write to disk.
type Config struct {
	// URL names the NATS server or cluster, as a comma-separated list of
	// URLs. Empty means a NATS server embedded in this process.
	URL string

	// Dir is the embedded server's data folder. Empty means [DefaultDir].
	Dir string

	// SyncInterval is how often the embedded server flushes written jobs to
	// disk. Zero means after every write: an enqueue that returned, or a
	// result recorded, survives an operating-system crash or a power cut
	// (writes made at the same time are synced together, see the package
	// doc).
	// NATS's own default is two minutes, which loses the jobs of the last
	// two minutes in such a crash (a crash of herd alone loses nothing
	// either way). See BENCHMARKS.md for what each costs.
	SyncInterval time.Duration

	// MaxStore is the most bytes the embedded server stores on disk, jobs,
	// records and results together; past it, writes fail with [ErrFull].
	// Zero means three quarters of the free space of Dir's disk, as
	// JetStream reckons by default.
	MaxStore int64

	// User and Password, Token, or CredsFile authenticate to an external
	// server. TLS, if set, is used for the connection.
	User, Password string
	Token          string
	CredsFile      string
	TLS            *tls.Config

	// Replicas is how many servers keep a copy of each job: use 3 on a
	// cluster of three or more. It is a setting of the queue, made when it
	// is created, or changed by a client that names another. Zero means
	// the queue's setting, or 1 for a new queue.
	Replicas int

	// Retention is how long the record of a finished job is kept. Like
	// Replicas, it is a setting of the queue. Zero means the queue's
	// setting, or a week for a new queue.
	Retention time.Duration

	// Logger receives the queue's log lines. Nil means none.
	Logger *slog.Logger
}

// DefaultDir is the embedded server's data folder when [Config.Dir] is
// empty: $XDG_DATA_HOME/herd/queue, or ~/.local/share/herd/queue.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "herd", "queue"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("queue: no data folder: %w", err)
	}
	return filepath.Join(home, ".local", "share", "herd", "queue"), nil
}

// Names of the JetStream assets the queue uses besides its stream
// (layout.go).
const (
	resultStore = "HERD_RESULTS" // results too big for a job's record
)

// Client is a connection to a queue: it enqueues jobs, reports on them,
// and runs [Worker]s. It is safe for concurrent use.
type Client struct {
	cfg    Config
	srv    *embedded.Server // the embedded server, if any
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream // jobs and records (layout.go)
	commit *committer       // stores jobs and records in group commits
	gets   *getter          // reads them
	tidier *tidier          // removes what released jobs waited with (flow.go)
	// consumers holds the queue.priority names whose consumer this
	// client has made sure of.
	consumers sync.Map
	meta      jetstream.KeyValue
	schedules jetstream.KeyValue
	limits    jetstream.KeyValue // the queues' limits (limit.go)
	slots     jetstream.KeyValue // the slots taken under them
	results   jetstream.ObjectStore
	log       *slog.Logger
	counts    counts // this client's own figures (Counts)

	// retention is how long finished records are kept: the queue's
	// setting, read when the client opens.
	retention time.Duration
	// upgrade is set while a stream of layout 2 is moved to this layout.
	upgrade bool
	// openedAt is the stream's last sequence when the client opened.
	openedAt uint64

	mu          sync.Mutex
	reconnected chan struct{}      // closed, and replaced, when the client reconnects
	workers     jetstream.KeyValue // the workers' heartbeats, made on first use
}

// Open connects to the queue that cfg names, starting the embedded server
// if it names none, and creates the stream and bucket the queue keeps its
// jobs in if they do not exist yet.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	return open(ctx, cfg, nil)
}

// open is Open, connecting in process to local if it is set.
func open(ctx context.Context, cfg Config, local *server.Server) (*Client, error) {
	if cfg.Replicas < 0 || cfg.SyncInterval < 0 || cfg.Retention < 0 || cfg.MaxStore < 0 {
		return nil, fmt.Errorf("queue: open: replicas %d, sync interval %v, retention %v, max store %d: must not be negative", cfg.Replicas, cfg.SyncInterval, cfg.Retention, cfg.MaxStore)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, reconnected: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name("herd"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				c.log.Warn("queue: lost the server; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("queue: reconnected", "server", nc.ConnectedUrlRedacted())
			c.mu.Lock()
			defer c.mu.Unlock()
			close(c.reconnected)
			c.reconnected = make(chan struct{})
		}),
	}
	url := cfg.URL
	if local != nil {
		opts = append(opts, nats.InProcessServer(local))
	} else if url == "" {
		dir := cfg.Dir
		if dir == "" {
			var err error
			if dir, err = DefaultDir(); err != nil {
				return nil, err
			}
		}
		srv, err := embedded.Start(embedded.Config{Dir: dir, SyncInterval: cfg.SyncInterval, MaxStore: cfg.MaxStore, GroupSync: true, Logger: c.log})
		if err != nil {
			return nil, fmt.Errorf("queue: open: %w", err)
		}
		c.srv = srv
		opts = append(opts, nats.InProcessServer(srv.Server))
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("queue: open %s: %w", c.where(), err)
	}
	c.nc = nc
	if err := c.setup(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("queue: open %s: %w", c.where(), err)
	}
	if c.srv != nil && c.srv.Recovered(streamName) {
		c.repairAtStart(ctx)
	}
	return c, nil
}

func (c *Client) where() string {
	if c.cfg.URL != "" {
		return c.cfg.URL
	}
	return "embedded server"
}

func (c *Client) setup(ctx context.Context) error {
	var err error
	if c.js, err = jetstream.New(c.nc); err != nil {
		return err
	}
	if err := c.setupStream(ctx); err != nil {
		return err
	}
	if c.gets, err = newGetter(c.nc); err != nil {
		return err
	}
	if c.openedAt, err = c.lastSeq(ctx); err != nil {
		return err
	}
	// With the embedded server, this process syncs its files once for each
	// group of writes; a server elsewhere syncs as it is set up to, and
	// takes a large group as one atomic batch.
	var sync func() error
	atomicMin := 256
	if c.srv != nil {
		atomicMin = 0
		if c.cfg.SyncInterval == 0 {
			sync = c.srv.Sync
		}
	}
	if c.commit, err = newCommitter(c.nc, c.log, sync, atomicMin); err != nil {
		return err
	}
	c.tidier = newTidier(c)

	// The other assets follow the stream's settings.
	replicas := c.stream.CachedInfo().Config.Replicas
	buckets := []struct {
		kv          *jetstream.KeyValue
		name, about string
		ttl         time.Duration
	}{
		{&c.meta, metaBucket, "values shared by the programs using herd's queue", c.retention},
		{&c.schedules, scheduleBucket, "the schedules of herd's periodic jobs", 0},
		{&c.limits, limitsBucket, "how many jobs of each queue may run across every worker", 0},
		{&c.slots, slotsBucket, "the slots that running jobs hold under their queues' limits", slotsKept},
	}
	for _, b := range buckets {
		if err := c.ensure(ctx, "KV_"+b.name, b.ttl, func() error {
			_, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: b.name, Description: b.about, Storage: jetstream.FileStorage, Replicas: replicas, TTL: b.ttl,
			})
			return err
		}); err != nil {
			return err
		}
		if *b.kv, err = c.js.KeyValue(ctx, b.name); err != nil {
			return fmt.Errorf("bucket %s: %w", b.name, err)
		}
	}
	if err := c.ensure(ctx, "OBJ_"+resultStore, c.retention, func() error {
		_, err := c.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      resultStore,
			Description: "results of herd's jobs too big to keep in their records",
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			TTL:         c.retention,
		})
		return err
	}); err != nil {
		return err
	}
	if c.results, err = c.js.ObjectStore(ctx, resultStore); err != nil {
		return fmt.Errorf("object store %s: %w", resultStore, err)
	}
	if err := c.migrate(ctx); err != nil {
		return err
	}
	if c.upgrade {
		return c.migrateDead(ctx)
	}
	return nil
}

// setupStream creates the queue's stream, or checks the one there, and
// reads the queue's settings from it.
func (c *Client) setupStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name:               streamName,
		Description:        "herd's jobs, and their records (state, attempts, errors, result), by id",
		Subjects:           []string{jobRoot + ".>", recRoot + ".>", deadRoot + ".>", waitRoot + ".>", skipRoot + ".>", flowRoot + ".>"},
		Retention:          jetstream.LimitsPolicy,
		MaxMsgsPerSubject:  1,
		Storage:            jetstream.FileStorage,
		Replicas:           max(c.cfg.Replicas, 1),
		Duplicates:         2 * time.Minute,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowMsgTTL:        true,
		Metadata:           map[string]string{layoutKey: layoutVersion},
	}
	retention := c.cfg.Retention
	if retention == 0 {
		retention = 7 * 24 * time.Hour
	}
	s, err := c.js.Stream(ctx, streamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		cfg.Metadata[retentionKey] = retention.String()
		if s, err = c.js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", streamName, err)
		}
	case err != nil:
		return fmt.Errorf("stream %s: %w", streamName, err)
	default:
		have := s.CachedInfo().Config
		v := have.Metadata[layoutKey]
		// Layout 2 kept dead jobs in a bucket: the stream takes their
		// marks first, and says it has layout 3 once they are moved
		// (migrateDead).
		// Layout 3 lacked the subjects of jobs that wait for others: they
		// are added.
		c.upgrade = v == "2"
		if v != layoutVersion && v != "3" && !c.upgrade {
			return fmt.Errorf("stream %s has layout %q; this herd reads layout %s: use the herd that made it", streamName, v, layoutVersion)
		}
		if c.upgrade {
			cfg.Metadata[layoutKey] = v
		}
		kept, _ := time.ParseDuration(have.Metadata[retentionKey])
		replicasDiffer := c.cfg.Replicas > 0 && have.Replicas != c.cfg.Replicas
		retentionDiffers := c.cfg.Retention > 0 && kept != c.cfg.Retention
		if !replicasDiffer && !retentionDiffers && !c.upgrade && v == layoutVersion {
			c.stream, c.retention = s, cmp.Or(kept, retention)
			return nil
		}
		if !replicasDiffer {
			cfg.Replicas = have.Replicas
		}
		if !retentionDiffers && kept > 0 {
			retention = kept
		}
		cfg.Metadata[retentionKey] = retention.String()
		if s, err = c.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", streamName, err)
		}
	}
	c.stream, c.retention = s, retention
	return nil
}

// durable makes the writes made so far outside the committer durable, as
// the committer's are, when this client syncs the embedded server's files.
func (c *Client) durable() error {
	if c.commit.sync == nil {
		return nil
	}
	return c.commit.sync()
}

// lastSeq returns the stream's last sequence.
func (c *Client) lastSeq(ctx context.Context) (uint64, error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// ensure creates the stream of the given name with create if it does not
// exist. If it does, it is left as it is, unless its replicas differ from
// the queue's or its retention from maxAge: then create updates it. So a
// client that opens a queue as it is writes nothing.
func (c *Client) ensure(ctx context.Context, stream string, maxAge time.Duration, create func() error) error {
	s, err := c.js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("stream %s: %w", stream, err)
	default:
		cfg := s.CachedInfo().Config
		replicasDiffer := cfg.Replicas != c.stream.CachedInfo().Config.Replicas
		retentionDiffers := cfg.MaxAge != maxAge
		if !replicasDiffer && !retentionDiffers {
			return nil
		}
	}
	if err := create(); err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	return nil
}

// Ping checks that the queue's server answers and JetStream is ready.
func (c *Client) Ping(ctx context.Context) error {
	if !c.nc.IsConnected() {
		return fmt.Errorf("queue: not connected to %s (%s)", c.where(), c.nc.Status())
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("queue: JetStream: %w", err)
	}
	return nil
}

// reconnectSignal returns a channel that is closed when the client next
// reconnects.
func (c *Client) reconnectSignal() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnected
}

// settled returns once what the committer has stored is on disk: with the
// embedded server, a job's outcome is seen by readers as soon as it is
// stored, and synced a moment after, with the rest of its group; a reader
// waits for that sync before it shows the outcome, so that a power cut
// cannot take back an outcome someone saw. A server elsewhere, set to sync
// always, syncs each write before it shows it.
func (c *Client) settled(ctx context.Context) error {
	if c.srv == nil || c.commit == nil {
		return nil // nothing to wait for: no committer syncs
	}
	return c.commit.flush(ctx)
}

// Close closes the connection, and stops the embedded server if there is
// one, after the server has written out what it holds.
func (c *Client) Close() error {
	var errs []error
	if c.tidier != nil {
		c.tidier.close()
	}
	if c.commit != nil {
		c.commit.close() // what was handed over is stored first
	}
	if c.nc != nil {
		if c.nc.IsConnected() {
			errs = append(errs, c.nc.FlushTimeout(5*time.Second)) // acks and records still buffered
		}
		c.nc.Close()
	}
	if c.srv != nil {
		c.srv.Close()
	}
	return errors.Join(errs...)
}
