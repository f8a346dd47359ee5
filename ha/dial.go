package ha

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"mongobot/secret"
)

// ClientConfig says how to reach the etcd cluster.
type ClientConfig struct {
	Endpoints []string
	// Username and Password, when etcd has auth enabled.
	Username string
	Password secret.String
	// CAFile verifies the members' certificates (the system's roots when empty, with
	// https endpoints); CertFile and KeyFile are the client's, when the cluster asks.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds each connection attempt (default 5s).
	DialTimeout time.Duration
}

// Dial makes a client of the cluster; one member down does not stop it.
func Dial(cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("ha: no etcd endpoints")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	// The client's own log (zap) is silenced: what fails reaches the bot as an error, which
	// it logs in its own format; the client would log every retry it makes by itself.
	// RejectOldCluster stays off: it asks every endpoint, and fails when one member is down,
	// which is when a replica most needs to start.
	cc := clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout, Username: cfg.Username,
		Password: cfg.Password.Reveal(), Logger: zap.NewNop()}
	tlsNeeded := cfg.CAFile != "" || cfg.CertFile != ""
	for _, e := range cfg.Endpoints {
		tlsNeeded = tlsNeeded || len(e) > 8 && e[:8] == "https://"
	}
	if tlsNeeded {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ha: etcd CA: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ha: etcd CA %s holds no PEM certificate", cfg.CAFile)
			}
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("ha: etcd client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = t
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("ha: etcd client: %w", err)
	}
	return c, nil
}

// Member is one member of the cluster as the client sees it.
type Member struct {
	Name, Endpoint string
	Leader         bool
	Err            error // when its status could not be read
}

// Members reports the cluster's members and which leads its Raft group, for bot check.
func Members(c *clientv3.Client, timeout time.Duration) ([]Member, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	list, err := c.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("ha: list etcd members: %w", err)
	}
	var out []Member
	for _, m := range list.Members {
		mb := Member{Name: m.Name}
		if len(m.ClientURLs) > 0 {
			mb.Endpoint = m.ClientURLs[0]
			st, err := c.Status(ctx, mb.Endpoint)
			if err != nil {
				mb.Err = err
			} else {
				mb.Leader = st.Leader == m.ID
			}
		}
		out = append(out, mb)
	}
	return out, nil
}

// AuthEnabled asks etcd whether it has authentication on. With it off, whoever reaches the
// cluster can read and rewrite every key: bot check says so.
func AuthEnabled(c *clientv3.Client, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.AuthStatus(ctx)
	if err != nil {
		return false, fmt.Errorf("ha: ask whether etcd has auth on: %w", err)
	}
	return resp.Enabled, nil
}

// LeaderOf names the replica leading the group under prefix (as Config.Prefix), "" when none
// does: for bot check, which joins no group.
func LeaderOf(c *clientv3.Client, prefix string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.Get(ctx, prefix+"leader/", append(clientv3.WithFirstCreate(), clientv3.WithPrefix())...)
	if err != nil {
		return "", fmt.Errorf("ha: read the leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
