package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FreePorts returns n ports free on loopback now.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// SelfSigned returns a TLS certificate for 127.0.0.1 and a pool that
// trusts it.
func SelfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM := Cert(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return cert, pool
}

// Leaked returns the stacks of the goroutines running code whose stack
// mentions one of marks, or "" if there are none. Goroutines take a
// moment to unwind once what owns them has returned, so it looks for up
// to five seconds before it reports them.
func Leaked(marks ...string) string {
	var leaked []string
	for range 100 {
		buf := make([]byte, 4<<20)
		leaked = leaked[:0]
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "testutil.Leaked") {
				continue
			}
			for _, m := range marks {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
	return strings.Join(leaked, "\n\n")
}

// Need stops a test that cannot have what it needs (a tool, a mount, a
// server), saying why in msg: it fails where the environment variable env
// is "required", as CI sets it, and is skipped elsewhere.
func Need(t testing.TB, env, msg string) {
	t.Helper()
	if os.Getenv(env) == "required" {
		t.Fatal(msg)
	}
	t.Skipf("%s; CI requires it (%s=required)", msg, env)
}
