package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/goherd/herd/internal/buildinfo"
	"github.com/goherd/herd/internal/web"
	"github.com/goherd/herd/queue"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// httpFlags are the options of the dashboard, metrics and health server.
type httpFlags struct {
	addr           string
	user, password string
	token          string
	readOnly       bool
}

// add adds the flags, for serving what; dashboard adds --read-only.
func (h *httpFlags) add(fs *pflag.FlagSet, what string, dashboard bool) {
	fs.StringVar(&h.addr, "http", h.addr, "serve "+what+" on `HOST:PORT` (127.0.0.1 only, unless credentials are given)")
	fs.StringVar(&h.user, "http-user", "", "require HTTP basic authentication as `NAME` (with --http-password)")
	fs.StringVar(&h.password, "http-password", "", "the HTTP user's `PASSWORD` (default $HERD_HTTP_PASSWORD)")
	fs.StringVar(&h.token, "http-token", "", "require this bearer `TOKEN` (or it as the basic password) (default $HERD_HTTP_TOKEN)")
	if dashboard {
		fs.BoolVar(&h.readOnly, "read-only", false, "show the dashboard without its actions (retry, delete, cancel, stop, drain)")
	}
}

// config returns the web server's configuration for the queue c.
func (h *httpFlags) config(c *queue.Client, stderr io.Writer) web.Config {
	if h.password == "" && h.user != "" {
		h.password = os.Getenv("HERD_HTTP_PASSWORD")
	}
	if h.token == "" {
		h.token = os.Getenv("HERD_HTTP_TOKEN")
	}
	return web.Config{
		Addr: h.addr, User: h.user, Password: h.password, Token: h.token, ReadOnly: h.readOnly,
		Queue: c, Version: buildinfo.Version(version), Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// check refuses what Listen would, before anything starts.
func (h *httpFlags) check() error {
	switch {
	case h.user != "" && h.password == "" && os.Getenv("HERD_HTTP_PASSWORD") == "":
		return errors.New("--http-user needs --http-password (or $HERD_HTTP_PASSWORD)")
	case h.user == "" && h.password != "":
		return errors.New("--http-password needs --http-user")
	}
	return nil
}

// serveHTTP starts the web server for cfg and returns a function that
// stops it and waits for it.
func serveHTTP(cfg web.Config, what string, stderr io.Writer) (stop func(), err error) {
	s, err := web.Listen(cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "herd: %s at %s\n", what, s.URL())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(stderr, "herd: %s: %v\n", what, err)
		}
	}, nil
}

const uiHelp = `Serve the dashboard of a queue on any NATS server (a cluster, or herd queue serve
elsewhere): its queues and their figures, the runs of herd run --queue with their
jobs and output, jobs by state, dead jobs, workers; /metrics for Prometheus, and
/healthz and /readyz. Pages update live.

It listens on 127.0.0.1 unless given credentials: whoever reaches the dashboard can
retry, delete and stop jobs, which run commands on the workers. --read-only shows
everything and allows no action. It runs until SIGINT or SIGTERM.`

func newUICommand(ctx context.Context, sigs <-chan os.Signal) *cobra.Command {
	var conn connFlags
	h := httpFlags{addr: "127.0.0.1:8080"}
	cmd := &cobra.Command{
		Use:   "ui [--queue URL] [--http HOST:PORT]",
		Short: "serve the queue's live dashboard, metrics and health checks over HTTP",
		Long:  uiHelp,
		Example: `  herd queue ui --queue nats://queue-host:4222              # http://127.0.0.1:8080
  HERD_HTTP_PASSWORD=s3cret herd queue ui --http 0.0.0.0:8080 --http-user ops --read-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.check(); err != nil {
				return err
			}
			conn.resolve()
			c, err := conn.open(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer c.Close()
			stop, err := serveHTTP(h.config(c, cmd.ErrOrStderr()), "dashboard", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer stop()
			select {
			case s := <-sigs:
				fmt.Fprintf(cmd.ErrOrStderr(), "herd queue ui: got %v: stopping\n", s)
			case <-ctx.Done():
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	conn.add(f, true)
	h.add(f, "the dashboard", true)
	return cmd
}
