package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/goherd/herd/internal/run"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
)

const serveHelp = `Run the queue's server: a NATS server with JetStream, storing jobs in --dir, for
herd work and herd run --queue to connect to from this machine or others.

By default it listens on 127.0.0.1 only, with no authentication. To serve other
machines, listen on an address they can reach, and protect it: anyone who can put
jobs on the queue can run commands on its workers. Give --user and --password (or
--token), and --tls-cert and --tls-key for TLS; the password and token can also come
from $HERD_QUEUE_PASSWORD and $HERD_QUEUE_TOKEN, out of sight of ps.

Every write is flushed to disk before it is acknowledged (--sync-interval 0), so an
acknowledged job survives a power cut; a longer interval is faster and can lose the
jobs of that interval in an operating-system crash (not in a crash of herd alone).

Several servers form a cluster with --cluster-name, --cluster-listen and --routes
(every server's cluster address), and --replicas 3 keeps each job on three of them, so
that the queue goes on when one is lost. Give the clients every server's URL,
comma-separated.

--http 127.0.0.1:8080 serves a live dashboard of the queue beside it (its queues, the
runs of herd run --queue, jobs, dead jobs, workers), /metrics for Prometheus, and
/healthz and /readyz; herd queue ui serves the same for a queue elsewhere.

It runs until SIGINT or SIGTERM, then stops cleanly.`

// serveOptions are herd queue serve's flags.
type serveOptions struct {
	cfg                               queue.ServerConfig
	http                              httpFlags
	tlsCert, tlsKey, routes, maxStore string
}

// check checks the flags together and completes the server's
// configuration from them and the environment.
func (o *serveOptions) check() error {
	secretsFromEnv(&o.cfg.Password, &o.cfg.Token)
	if (o.cfg.User == "") != (o.cfg.Password == "") {
		return errors.New("--user and --password go together")
	}
	if o.cfg.User != "" && o.cfg.Token != "" {
		return errors.New("--token and --user: choose one")
	}
	certs, err := loadCert(o.tlsCert, o.tlsKey)
	if err != nil {
		return err
	}
	if certs != nil {
		o.cfg.TLS = &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	}
	if o.routes != "" {
		o.cfg.Cluster.Routes = strings.Split(o.routes, ",")
	}
	if o.cfg.Cluster.Name == "" && (o.cfg.Cluster.Listen != "" || o.routes != "") {
		return errors.New("--cluster-listen and --routes need --cluster-name")
	}
	if o.cfg.Cluster.Name != "" && o.cfg.Cluster.Listen == "" {
		return errors.New("--cluster-name needs --cluster-listen HOST:PORT")
	}
	if o.cfg.Replicas < 0 || (o.cfg.Replicas > 1 && o.cfg.Cluster.Name == "") {
		return fmt.Errorf("--replicas %d: want 1, or up to the number of servers with --cluster-name", o.cfg.Replicas)
	}
	if o.maxStore != "" {
		if o.cfg.MaxStore, err = run.ParseSize("--max-store", o.maxStore); err != nil {
			return err
		}
	}
	return o.http.check()
}

// newServeCommand returns herd queue serve's command.
func newServeCommand(sigs <-chan os.Signal) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve [--listen HOST:PORT] [--dir FOLDER]",
		Short: "run the queue's server for workers and submitters on other machines",
		Long:  serveHelp,
		Example: `  herd queue serve                                   # 127.0.0.1:4222, this machine only
  HERD_QUEUE_PASSWORD=s3cret herd queue serve --listen 0.0.0.0:4222 --user herd \
      --tls-cert server.pem --tls-key server-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			o.cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return serve(o.cfg, o.http, sigs, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&o.cfg.Listen, "listen", "127.0.0.1:4222", "accept clients on `HOST:PORT` (port 0: any free port)")
	f.StringVar(&o.cfg.Dir, "dir", "", "store the jobs in `FOLDER` (default "+defaultDirText()+")")
	f.DurationVar(&o.cfg.SyncInterval, "sync-interval", 0, "flush writes to disk this often (like 1s); 0 means before acknowledging each")
	f.StringVar(&o.maxStore, "max-store", "", "store at most `SIZE` on disk, like 20G (default: 3/4 of the disk's free space)")
	f.StringVar(&o.cfg.Name, "name", "", "the server's name, different for each server of a cluster (default herd)")
	f.StringVar(&o.cfg.User, "user", "", "clients must log in as `NAME` with --password")
	f.StringVar(&o.cfg.Password, "password", "", "the clients' `PASSWORD` (default $HERD_QUEUE_PASSWORD)")
	f.StringVar(&o.cfg.Token, "token", "", "clients must present this `TOKEN` (default $HERD_QUEUE_TOKEN)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this certificate `FILE` (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the certificate's key `FILE` (PEM)")
	f.StringVar(&o.cfg.Cluster.Name, "cluster-name", "", "join a cluster of this `NAME`")
	f.StringVar(&o.cfg.Cluster.Listen, "cluster-listen", "", "listen for the cluster's other servers on `HOST:PORT`")
	f.StringVar(&o.routes, "routes", "", "the cluster's servers: nats-route://HOST:PORT[,...]")
	f.IntVar(&o.cfg.Replicas, "replicas", 0, "keep each job on `N` servers of the cluster (default: as the queue is, or 1)")
	o.http.add(f, "the live dashboard, /metrics and /healthz", true)
	return cmd
}

func serve(cfg queue.ServerConfig, h httpFlags, sigs <-chan os.Signal, stdout, stderr io.Writer) error {
	srv, err := queue.Serve(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if h.addr != "" {
		c, err := srv.Open(context.Background(), queue.Config{User: cfg.User, Password: cfg.Password, Token: cfg.Token, Logger: cfg.Logger})
		if err != nil {
			return err
		}
		defer c.Close()
		stop, err := serveHTTP(h.config(c, stderr), "dashboard", stderr)
		if err != nil {
			return err
		}
		defer stop()
	}
	durability := "every write flushed to disk"
	if cfg.SyncInterval > 0 {
		durability = fmt.Sprintf("writes flushed to disk every %v", cfg.SyncInterval)
	}
	url := srv.URL()
	fmt.Fprintf(stdout, "herd queue: serving %s (jobs in %s, %s)\n", url, srv.Dir(), durability)
	fmt.Fprintf(stdout, "  workers:     herd work --queue %s\n", url)
	fmt.Fprintf(stdout, "  submitters:  herd run --queue %s COMMAND ::: INPUTS\n", url)
	s := <-sigs
	fmt.Fprintf(stderr, "herd queue serve: got %v: stopping\n", s)
	return nil
}
