package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"mongobot/secret"
)

// Config is a connector's credential fields and tuning. Only Name and URI are required.
type Config struct {
	Name string
	// URI is the connection string, credentials included (mongodb:// or mongodb+srv://).
	URI secret.String
	// TLSCAFile or TLSCAPEM (not both) is the PEM CA used as the trust root; either turns TLS on.
	TLSCAFile string
	TLSCAPEM  string
	// TLSCertificateKeyFile or TLSCertificateKeyPEM (not both) is the bot's client certificate
	// and private key, PEM. It is presented on every TLS connection; when the connection
	// string names no user and no mechanism, the bot logs in with it (MONGODB-X509, as the
	// user its subject names in $external), as Vault's MongoDB plugin does.
	TLSCertificateKeyFile string
	TLSCertificateKeyPEM  secret.String
	// Passwords is the policy for generated passwords.
	Passwords PasswordPolicy
	// SkipVerifyLogin turns off the login with a new password after a rotation or creation.
	SkipVerifyLogin bool
	// ServerSelectionTimeout bounds finding a usable server; default 5s.
	ServerSelectionTimeout time.Duration
	// CommandTimeout bounds each command, and each verifying login; default 15s.
	CommandTimeout time.Duration
	// IdleTimeout is how long the driver client stays open after the last operation ended;
	// then it is closed (its pool, its monitoring connections and goroutines go) and made
	// again at the next use. Default DefaultIdleTimeout; a bot with many connectors pays
	// only for the ones in use.
	IdleTimeout time.Duration
	// ProbeInterval is how often a connector marked down (health.go) is tried again;
	// default DefaultProbeInterval.
	ProbeInterval time.Duration
}

// DefaultIdleTimeout is Config.IdleTimeout when it is not set.
const DefaultIdleTimeout = 10 * time.Minute

// Mongo is one configured MongoDB deployment. Its client is created on first use and shared;
// it is safe for concurrent use.
type Mongo struct {
	cfg      Config
	name     string
	roots    *x509.CertPool   // the configured CA (tls_ca_file or tls_ca_pem), if any
	cert     *tls.Certificate // the bot's client certificate, if any
	atlas    bool
	password secret.String // the connection string's own password, for scrubbing
	account  UserRef       // the user the connection string logs in as (empty: none)
	x509     bool          // log in with the client certificate

	mu     sync.Mutex
	closed bool // after Close, no new client: a closed connector sends nothing more
	client *mongo.Client
	// inflight counts the operations using client: it is never closed while one runs.
	inflight int
	// idle closes client once no operation has run for cfg.IdleTimeout; idleGen tells a
	// stale firing (one overtaken by a later use) from the current one.
	idle    *time.Timer
	idleGen uint64
	info    *ServerInfo // cached after the first successful discovery
	infoAt  time.Time   // when info was discovered
	// tooOldWire is the lowest maxWireVersion below 9 in the driver's latest description of
	// the deployment while it refuses it as too old (0: it does not): the driver's refusal
	// does not say which release it met.
	tooOldWire atomic.Int32
	// topo is the deployment as the driver last described it (routers, members).
	topo   atomic.Pointer[deployment]
	health breaker
}

// New checks cfg and returns a connector. It does not touch the network.
func New(cfg Config) (*Mongo, error) {
	if strings.TrimSpace(cfg.Name) == "" {
		return nil, errors.New("connector: name is empty")
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("connector %q: %s", cfg.Name, fmt.Sprintf(format, a...))
	}
	if cfg.URI.Empty() {
		return nil, bad("connection_string is empty")
	}
	hosts, password, err := splitURI(cfg.URI.Reveal())
	if err != nil {
		return nil, bad("connection_string is invalid: %s", err)
	}
	if !strings.HasPrefix(cfg.URI.Reveal(), "mongodb+srv://") {
		// mongodb+srv strings are checked by the driver at first use: parsing them here
		// would look up DNS, and New must not touch the network.
		if _, err := connstring.ParseAndValidate(cfg.URI.Reveal()); err != nil {
			return nil, bad("connection_string is invalid: %s", scrub(err, cfg.URI, secret.New(password)))
		}
	}
	if err := cfg.Passwords.Validate(); err != nil {
		return nil, bad("%s", err)
	}
	if cfg.ServerSelectionTimeout <= 0 {
		cfg.ServerSelectionTimeout = 5 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	m := &Mongo{cfg: cfg, name: cfg.Name, password: secret.New(password), account: accountOf(cfg.URI.Reveal())}
	m.health.stop = make(chan struct{})
	for _, h := range hosts {
		if isAtlasHost(h) {
			m.atlas = true
		}
	}
	if cfg.TLSCAFile != "" && cfg.TLSCAPEM != "" {
		return nil, bad("give tls_ca_file or tls_ca_pem, not both")
	}
	pem := []byte(cfg.TLSCAPEM)
	if cfg.TLSCAFile != "" {
		if pem, err = os.ReadFile(cfg.TLSCAFile); err != nil {
			return nil, bad("tls_ca_file: %v", err)
		}
	}
	if len(pem) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("the TLS CA holds no PEM certificate")
		}
		m.roots = pool
	}
	if err := m.clientCertificate(cfg); err != nil {
		return nil, bad("%s", err)
	}
	return m, nil
}

// Name is the connector's display name.
func (m *Mongo) Name() string { return m.name }

// Account is the user the connection string logs in as: the bot's own login, which no action
// may touch (locking, dropping, rotating or revoking it would cut the connector off, with no
// way back through the bot). Its User is empty when the string carries no user name.
func (m *Mongo) Account() UserRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.account
}

// accountOf reads the user name and its authentication database from a connection string:
// authSource, else the database in the path, else admin (the driver's rule for SCRAM).
func accountOf(uri string) UserRef {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		rest, _ = strings.CutPrefix(uri, "mongodb+srv://")
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	path := ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest, path = rest[:i], rest[i+1:]
	}
	i := strings.LastIndexByte(rest, '@')
	if i < 0 {
		return UserRef{}
	}
	name, _, _ := strings.Cut(rest[:i], ":")
	user, err := url.PathUnescape(name)
	if err != nil || user == "" {
		return UserRef{}
	}
	db := "admin"
	if p, err := url.PathUnescape(path); err == nil && p != "" {
		db = p
	}
	if q, err := url.ParseQuery(query); err == nil {
		for k, v := range q {
			if strings.EqualFold(k, "authSource") && len(v) > 0 && v[0] != "" {
				db = v[0]
			}
		}
	}
	return UserRef{User: user, DB: db}
}

// Atlas reports whether the connection string points at MongoDB Atlas.
func (m *Mongo) Atlas() bool { return m.atlas }

func (m *Mongo) isAtlas() bool { return m != nil && m.atlas }

// isAtlasHost recognises Atlas (and Atlas for Government) host names.
func isAtlasHost(h string) bool {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.HasSuffix(h, ".mongodb.net") || strings.HasSuffix(h, ".mongodbgov.net")
}

// splitURI returns the hosts and the password of a MongoDB connection string without any
// lookup. Its errors never quote the string.
func splitURI(uri string) (hosts []string, password string, err error) {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		if rest, ok = strings.CutPrefix(uri, "mongodb+srv://"); !ok {
			return nil, "", errors.New(`it must start with "mongodb://" or "mongodb+srv://"`)
		}
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userinfo := rest[:i]
		rest = rest[i+1:]
		if _, pw, ok := strings.Cut(userinfo, ":"); ok {
			if password, err = url.PathUnescape(pw); err != nil {
				return nil, "", errors.New("the password in it is not correctly percent-encoded")
			}
		}
	}
	for _, h := range strings.Split(rest, ",") {
		if h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, "", errors.New("it names no host")
	}
	return hosts, password, nil
}

func (m *Mongo) secrets() []secret.String { return []secret.String{m.cfg.URI, m.password} }

// clientOptions are the options every client of this connector uses; cred replaces the
// connection string's credentials when not nil (the verifying login).
func (m *Mongo) clientOptions(cred *options.Credential) *options.ClientOptions {
	o := options.Client().ApplyURI(m.cfg.URI.Reveal()).
		SetAppName("mongobot").
		SetServerSelectionTimeout(m.cfg.ServerSelectionTimeout).
		SetConnectTimeout(m.cfg.ServerSelectionTimeout).
		SetTimeout(m.cfg.CommandTimeout)
	// The configured CA and client certificate join what the connection string set up
	// (tls=true, tlsCAFile, tlsCertificateKeyFile ...), replacing only those two parts.
	if m.roots != nil || m.cert != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLSConfig != nil {
			tc = o.TLSConfig.Clone()
		}
		if m.roots != nil {
			tc.RootCAs = m.roots
		}
		if m.cert != nil {
			tc.Certificates = []tls.Certificate{*m.cert}
		}
		o.SetTLSConfig(tc)
	}
	// The driver's default heartbeat (10s, unless the connection string sets
	// heartbeatFrequencyMS) is kept: it is what notices a new primary between operations,
	// and its cost is bounded by the connectors in use, since an idle connector's client is
	// closed (IdleTimeout) and monitors nothing. It is set explicitly so that a driver
	// upgrade cannot change it behind our back.
	if o.HeartbeatInterval == nil {
		o.SetHeartbeatInterval(10 * time.Second)
	}
	o.SetServerMonitor(&event.ServerMonitor{TopologyDescriptionChanged: func(e *event.TopologyDescriptionChangedEvent) {
		if len(e.NewDescription.Servers) == 0 {
			// A client being closed (idle, or at shutdown) says last that it knows no
			// server; what it knew still holds for the next client's first operation.
			return
		}
		m.sawTopology(e.NewDescription)
		if cred == nil {
			m.watchTopology(e)
		}
	}})
	switch {
	case cred != nil:
		o.SetAuth(*cred)
	case m.x509:
		o.SetAuth(options.Credential{AuthMechanism: "MONGODB-X509", AuthSource: ExternalDB})
	}
	return o
}

// acquire returns the client, making it if needed, and counts an operation in flight until
// release is called: the client is not closed for idleness while one runs.
func (m *Mongo) acquire() (c *mongo.Client, release func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, &Error{Kind: ErrUnavailable, Op: "connect", Msg: fmt.Sprintf("the connector %s is closed (the bot is stopping)", m.name), err: ErrNotSent}
	}
	if m.client == nil {
		c, err := mongo.Connect(m.clientOptions(nil))
		if err != nil {
			return nil, nil, &Error{Kind: ErrInvalid, Op: "connect", Msg: fmt.Sprintf("cannot set up a client for %s: %s", m.name, scrub(err, m.secrets()...)), err: scrub(err, m.secrets()...)}
		}
		m.client = c
	}
	m.inflight++
	m.idleGen++
	if m.idle != nil {
		m.idle.Stop()
		m.idle = nil
	}
	var once sync.Once
	return m.client, func() { once.Do(m.release) }, nil
}

// release ends an operation; the last one out starts the idle countdown.
func (m *Mongo) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inflight--
	if m.inflight > 0 || m.client == nil || m.closed {
		return
	}
	m.idleGen++
	gen := m.idleGen
	m.idle = time.AfterFunc(m.cfg.IdleTimeout, func() { m.closeIdle(gen) })
}

// closeIdle closes the client if nothing used it since the countdown gen started.
func (m *Mongo) closeIdle(gen uint64) {
	m.mu.Lock()
	c := m.client
	if gen != m.idleGen || m.inflight > 0 || c == nil {
		m.mu.Unlock()
		return
	}
	m.client, m.idle = nil, nil
	m.mu.Unlock()
	// No operation uses c, so this only closes idle connections and stops the monitors.
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.CommandTimeout)
	defer cancel()
	_ = c.Disconnect(ctx)
}

// clientOpen reports whether the connector holds a driver client now (for tests).
func (m *Mongo) clientOpen() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client != nil
}

// Close disconnects the client, if one was made, for good: a closed connector makes no new
// client, so nothing that outlives a shutdown reaches the server again. It waits at most the
// command timeout, whatever ctx allows.
func (m *Mongo) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		close(m.health.stop)
	}
	c := m.client
	m.client, m.closed = nil, true
	if m.idle != nil {
		m.idle.Stop()
		m.idle = nil
	}
	m.idleGen++
	m.mu.Unlock()
	if c == nil {
		return nil
	}
	// Disconnect tells the server to end the client's sessions: a server that does not
	// answer must not hold the caller past the command timeout.
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	return scrub(c.Disconnect(ctx), m.secrets()...)
}

// writeConcern goes inside every user-changing command: the change must reach a majority
// before the bot reports it (reference §6).
var writeConcern = bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: 10000}}

// run sends cmd to db, bounded by the command timeout, and decodes the reply into out (when
// not nil). Errors come back mapped; what names the target for the sentence.
// While the connector is down (health.go) nothing is sent, and the error says so.
func (m *Mongo) run(ctx context.Context, db string, cmd bson.D, out any, what string) error {
	op := fmt.Sprintf("%s on %s", cmd[0].Key, db)
	if s, ok := cmd[0].Value.(string); ok {
		op = fmt.Sprintf("%s %q on %s", cmd[0].Key, s, db)
	}
	if err := m.refuseIfDown(op); err != nil {
		return err
	}
	err := m.send(ctx, db, cmd, out, op, what)
	m.observe(ctx, err)
	return err
}

// send is run without the circuit breaker (the probe's way to the server).
func (m *Mongo) send(ctx context.Context, db string, cmd bson.D, out any, op, what string) error {
	c, release, err := m.acquire()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	res := c.Database(db).RunCommand(ctx, cmd)
	if out == nil {
		err = res.Err()
	} else {
		err = res.Decode(out)
	}
	return m.mapErr(err, op, what)
}
