// Package etcdtest starts real etcd members in-process (go.etcd.io/etcd/server/v3/embed) on
// loopback ports, for tests: a cluster of any size, whose members can be stopped and started
// again with their data.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB // nil when Launched
	dir     string
	names   []string
	peer    []url.URL
	client  []url.URL
	initial string
	pki     *pki // nil: clients speak plain http

	mu      sync.Mutex
	members []*embed.Etcd // nil: stopped
}

// Start starts an n-member cluster that stops with the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := Launch(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// Launch starts an n-member cluster with its data in dir, for a TestMain that shares one
// cluster across a package's tests; the caller closes it.
//
// Ports are picked by listening and closing, so another process (go test runs packages in
// parallel, several of them starting etcd) can take one before the member binds it. That
// attempt is then abandoned and the cluster started again on fresh ports, in a fresh
// directory: a race lost, not a failure.
func Launch(dir string, n int) (*Cluster, error) { return LaunchWith(dir, n, Options{}) }

// Options change how a cluster is started.
type Options struct {
	// TLS has the members serve clients over https only, with certificates from a CA made
	// for the cluster, and ask every client for a certificate that CA signed (etcd's
	// --client-cert-auth): mutual TLS, the transport a production cluster is given.
	// ClientCert issues one; the peers still speak plain http among themselves.
	TLS bool
}

// StartWith is Start with options.
func StartWith(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	c, err := LaunchWith(t.TempDir(), n, o)
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// LaunchWith is Launch with options.
func LaunchWith(dir string, n int, o Options) (*Cluster, error) {
	for attempt := 0; ; attempt++ {
		d := dir
		if attempt > 0 {
			d = filepath.Join(dir, fmt.Sprintf("again%d", attempt))
		}
		c, err := launch(d, n, o)
		if err == nil || attempt == 4 || !portTaken(err) {
			return c, err
		}
	}
}

// portTaken says whether err is a listener's port taken meanwhile by someone else.
func portTaken(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func launch(dir string, n int, o Options) (*Cluster, error) {
	c := &Cluster{dir: dir, members: make([]*embed.Etcd, n)}
	if o.TLS {
		var err error
		if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
			return nil, err
		}
	}
	var initial []string
	for i := range n {
		c.names = append(c.names, fmt.Sprintf("m%d", i))
		peer, err := freeURL()
		if err != nil {
			return nil, err
		}
		client, err := freeURL()
		if err != nil {
			return nil, err
		}
		if c.pki != nil {
			client.Scheme = "https"
		}
		c.peer, c.client = append(c.peer, peer), append(c.client, client)
		initial = append(initial, c.names[i]+"="+c.peer[i].String())
	}
	c.initial = strings.Join(initial, ",")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(i, "new") }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("etcdtest: member %d: %w", i, err)
		}
	}
	return c, nil
}

// freeURL is a loopback address no one listens on now.
func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

func (c *Cluster) start(i int, state string) error {
	cfg := embed.NewConfig()
	cfg.Name = c.names[i]
	cfg.Dir = filepath.Join(c.dir, c.names[i])
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{c.peer[i]}, []url.URL{c.peer[i]}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c.client[i]}, []url.URL{c.client[i]}
	cfg.InitialCluster, cfg.ClusterState, cfg.InitialClusterToken = c.initial, state, "mongobot-test"
	if c.pki != nil {
		cfg.ClientTLSInfo = c.pki.serverTLS()
	}
	cfg.LogLevel = "panic" // its shutdown logs errors that are expected here; failures still surface as errors
	// bcrypt's lowest cost for the users' passwords: every authentication hashes one, and at
	// the default cost (10) under the race detector on a busy 2-core machine one took more
	// than etcdctl's 5 s command timeout, failing deploy/etcd's set-up test in CI. The cost
	// protects a stolen etcd data folder, which a test's is not.
	cfg.BcryptCost = 4
	// Short heartbeats so elections take a fraction of a second, as on a LAN.
	cfg.TickMs, cfg.ElectionMs = 50, 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("not ready after 30s")
	}
	c.mu.Lock()
	c.members[i] = e
	c.mu.Unlock()
	return nil
}

// Endpoints are the client addresses of every member, running or not.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, u := range c.client {
		out = append(out, u.String())
	}
	return out
}

// Endpoint is member i's client address.
func (c *Cluster) Endpoint(i int) string { return c.client[i].String() }

// Stop stops member i, as a crash of its process would (its data stays).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	e := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped member i again, from its data.
func (c *Cluster) Restart(i int) {
	if err := c.StartAgain(i); err != nil {
		if c.t == nil {
			panic(err)
		}
		c.t.Helper()
		c.t.Fatal(err)
	}
}

// StartAgain starts a stopped member i again, from its data, and says why when it cannot:
// for callers that must not fail the test from another goroutine.
func (c *Cluster) StartAgain(i int) error {
	if err := c.start(i, "existing"); err != nil {
		return fmt.Errorf("etcdtest: restart member %d: %w", i, err)
	}
	return nil
}

// Dir is the folder of the members' data (each member's WAL and database under its name).
func (c *Cluster) Dir() string { return c.dir }

// Leader is the index of the member that leads the Raft group now, -1 when none is known.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.members {
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}
