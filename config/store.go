package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"mongobot/secret"
)

// Store says where the journal lives: a bbolt file in the data folder when absent (one
// process), or etcd, which several replicas share (high availability).
type Store struct {
	Etcd *Etcd `yaml:"-"` // decoded through storeYAML, which keeps the password as text only briefly
}

// Etcd is the etcd v3 cluster the replicas share, for the journal and for electing the
// one replica that runs the timers.
type Etcd struct {
	// Endpoints are the members' client URLs (https:// with TLS).
	Endpoints []string `yaml:"endpoints"`
	// Prefix is where the bot's keys live (default /mongobot/); every replica of one bot
	// uses the same, and two bots never share one.
	Prefix string `yaml:"prefix"`
	// Username and Password authenticate to etcd when it has auth enabled.
	Username string        `yaml:"username"`
	Password secret.String `yaml:"-"`
	TLS      EtcdTLS       `yaml:"tls"`
	// Replica names this replica, as the others, bot check and the metrics see it (default
	// the host name, which a StatefulSet makes stable).
	Replica string `yaml:"replica"`
	// SessionTTL bounds how long a dead replica holds the lead and its claims (default 10s).
	SessionTTL Duration `yaml:"session_ttl"`
	// MaxTxnOps must not exceed the cluster's --max-txn-ops (default 128, etcd's default).
	MaxTxnOps int `yaml:"max_txn_ops"`
}

// EtcdTLS are the files for TLS to etcd: the CA that signed the members' certificates, and
// the client certificate and key when the cluster asks for one.
type EtcdTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultEtcdPrefix is Etcd.Prefix when the config does not set it.
const DefaultEtcdPrefix = "/mongobot/"

// storeYAML carries the etcd password as text for decoding only.
type storeYAML struct {
	Etcd *etcdYAML `yaml:"etcd"`
}

type etcdYAML struct {
	Etcd     `yaml:",inline"`
	Password string `yaml:"password"`
}

// decode turns the file's store section into the config's, with the defaults.
func (s storeYAML) decode() Store {
	if s.Etcd == nil {
		return Store{}
	}
	e := s.Etcd.Etcd
	e.Password = secret.New(s.Etcd.Password)
	if e.Prefix == "" {
		e.Prefix = DefaultEtcdPrefix
	}
	if e.SessionTTL == 0 {
		e.SessionTTL = Duration(10 * time.Second)
	}
	if e.MaxTxnOps == 0 {
		e.MaxTxnOps = 128
	}
	return Store{Etcd: &e}
}

// check says what is wrong with the store section.
func (s Store) check(add func(format string, a ...any)) {
	e := s.Etcd
	if e == nil {
		return
	}
	if len(e.Endpoints) == 0 {
		add("store.etcd.endpoints: at least one member's client URL is needed")
	}
	tls := e.TLS.CAFile != "" || e.TLS.CertFile != ""
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			// Not quoted: a malformed URL may hold a credential.
			add("store.etcd.endpoints[%d] is not a URL like https://etcd-0:2379", i)
		case u.User != nil:
			add("store.etcd.endpoints[%d]: put the credentials in store.etcd.username and password, not in the URL", i)
		case u.Scheme == "http" && tls:
			add("store.etcd.endpoints[%d]: %s is http:// but tls is set: use https://", i, u.Host)
		case u.Scheme == "http" && e.Username != "":
			add("store.etcd.endpoints[%d]: %s is http://: the password would cross the network in clear; use https://", i, u.Host)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
		add("store.etcd.prefix: %q must begin and end with /", e.Prefix)
	}
	if (e.Username == "") != e.Password.Empty() {
		add("store.etcd: username and password go together")
	}
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		add("store.etcd.tls: cert_file and key_file go together")
	}
	if ttl := time.Duration(e.SessionTTL); ttl%time.Second != 0 {
		add("store.etcd.session_ttl: %s must be whole seconds: etcd's leases have no fractions", ttl)
	}
	if e.MaxTxnOps < 32 {
		add("store.etcd.max_txn_ops: %d is too few for the journal's transactions (at least 32; etcd's default is 128)", e.MaxTxnOps)
	}
}

// String describes where the journal is, without credentials.
func (e *Etcd) String() string {
	return fmt.Sprintf("etcd %s%s", strings.Join(e.Endpoints, ","), e.Prefix)
}
