// Package embedded runs a NATS server with JetStream inside the process,
// storing its data in a folder, for herd's queue when no server is named.
package embedded

import (
	"errors"
	"fmt"
	"os"
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

	// Listen, if set, is the host:port the server accepts clients on;
	// otherwise only this process can connect to it.
	Host string
	Port int
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded: no data folder")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: data folder: %w", err)
	}
	opts := &server.Options{
		ServerName: "herd",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.Port == 0,
		Host:       cfg.Host,
		Port:       cfg.Port,
	}
	if cfg.SyncInterval == 0 {
		opts.SyncAlways = true
	} else {
		opts.SyncInterval = cfg.SyncInterval
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	ns.Start() // does not block: the server runs until Shutdown
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded: server in %s did not start (is another process using that folder?)", cfg.Dir)
	}
	return ns, nil
}
