package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goherd/herd/queue"
	"github.com/spf13/pflag"
)

// connFlags are the options that say which queue to connect to, and how.
type connFlags struct {
	url                    string
	user, password, token  string
	creds                  string
	tlsCA, tlsCert, tlsKey string
	dir                    string // the embedded server's data folder, when there is no URL
}

// add adds the flags to fs. With embedded, no URL means the queue's
// embedded server in its data folder.
func (c *connFlags) add(fs *pflag.FlagSet, embedded bool) {
	what := "the queue's NATS server: `URL`[,URL...], like nats://host:4222 (default $HERD_QUEUE)"
	if embedded {
		what = "the queue's NATS server: `URL`[,URL...] (default $HERD_QUEUE, else the queue in --dir on this machine)"
		fs.StringVar(&c.dir, "dir", "", "with no --queue: the queue's data `folder` (default "+defaultDirText()+")")
	}
	fs.StringVar(&c.url, "queue", "", what)
	fs.StringVar(&c.user, "user", "", "log in to the queue as `NAME`")
	fs.StringVar(&c.password, "password", "", "the user's `PASSWORD` (default $HERD_QUEUE_PASSWORD)")
	fs.StringVar(&c.token, "token", "", "log in to the queue with a `TOKEN` (default $HERD_QUEUE_TOKEN)")
	fs.StringVar(&c.creds, "creds", "", "log in to the queue with a NATS credentials `FILE`")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "trust the queue's certificate if this CA `FILE` signed it")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "present this client certificate `FILE` to the queue (with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the client certificate's key `FILE`")
}

// defaultDirText names the default data folder in help, with ~ for the
// home folder.
func defaultDirText() string {
	d, err := queue.DefaultDir()
	if err != nil {
		return "~/.local/share/herd/queue"
	}
	if home, err := os.UserHomeDir(); err == nil {
		if rest, ok := strings.CutPrefix(d, home+string(filepath.Separator)); ok {
			return filepath.Join("~", rest)
		}
	}
	return d
}

// resolve fills in what the environment gives.
func (c *connFlags) resolve() {
	if c.url == "" {
		c.url = os.Getenv("HERD_QUEUE")
	}
	secretsFromEnv(&c.password, &c.token)
}

// secretsFromEnv fills a queue's password and token, where the command
// line left them empty, from $HERD_QUEUE_PASSWORD and $HERD_QUEUE_TOKEN:
// for the clients and the server alike, out of sight of ps.
func secretsFromEnv(password, token *string) {
	if *password == "" {
		*password = os.Getenv("HERD_QUEUE_PASSWORD")
	}
	if *token == "" {
		*token = os.Getenv("HERD_QUEUE_TOKEN")
	}
}

// loadCert loads the certificate of --tls-cert and its key of --tls-key,
// which go together; it returns nil when neither is given.
func loadCert(certFile, keyFile string) ([]tls.Certificate, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	return []tls.Certificate{cert}, nil
}

// config turns the flags into a queue configuration.
func (c *connFlags) config() (queue.Config, error) {
	c.resolve()
	cfg := queue.Config{URL: c.url, Dir: c.dir, User: c.user, Password: c.password, Token: c.token, CredsFile: c.creds}
	if c.password != "" && c.user == "" {
		return cfg, errors.New("--password needs --user")
	}
	if c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return cfg, fmt.Errorf("--tls-ca: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("--tls-ca %s: no PEM certificate in it", c.tlsCA)
			}
		}
		var err error
		if t.Certificates, err = loadCert(c.tlsCert, c.tlsKey); err != nil {
			return cfg, err
		}
		cfg.TLS = t
	}
	return cfg, nil
}

// open connects to the queue. If logTo is not nil, the queue's warnings
// (a lost server, a dead job) are written there.
func (c *connFlags) open(ctx context.Context, logTo io.Writer) (*queue.Client, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	if logTo != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logTo, nil))
	}
	return queue.Open(ctx, cfg)
}

// used reports whether any connection flag was given.
func (c *connFlags) used(changed func(string) bool) bool {
	return slices.ContainsFunc([]string{"user", "password", "token", "creds", "tls-ca", "tls-cert", "tls-key"}, changed)
}
