// Package queuetest runs a real queue for tests, as net/http/httptest runs
// a real server: an embedded NATS server with its data in the test's
// temporary folder, closed when the test ends.
package queuetest

import (
	"testing"

	"github.com/goherd/herd/queue"
)

// New opens a queue on a fresh embedded server for the test t. cfg, if
// given, sets anything but the URL and the data folder.
func New(t testing.TB, cfg ...queue.Config) *queue.Client {
	t.Helper()
	var c queue.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.URL = ""
	c.Dir = t.TempDir()
	client, err := queue.Open(t.Context(), c)
	if err != nil {
		t.Fatalf("queuetest: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
