package mongotest

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Topologies the emulator can present.
const (
	Standalone = "standalone"
	Primary    = "primary"   // a replica set primary (set "rs0")
	Secondary  = "secondary" // a replica set secondary: user writes get NotWritablePrimary
	Mongos     = "mongos"
)

// Options configure a Server. The zero value is a MongoDB 7.0 standalone whose admin account
// has the root role.
type Options struct {
	Version  string // buildInfo's version; default "7.0.14"
	Topology string // Standalone (default), Primary, Secondary or Mongos
	// AdminRoles are the roles of the admin account the URI logs in with; default root.
	AdminRoles []Role
	// TLS, when set, makes the server accept only TLS connections with this config.
	TLS *tls.Config
	// BuildInfoAuthMode is the server parameter buildInfoAuthMode: "requiresAuth" (default),
	// "versionOnlyIfPreAuth" or "allowedPreAuth".
	BuildInfoAuthMode string
	// Members is how many servers the deployment has (default 1), each on its own port: with
	// Primary, the first is the primary and the others its secondaries (one replica set);
	// with Mongos, that many routers of one sharded cluster. They share one user store, as
	// members do once a change has replicated.
	Members int
	// UserCacheInvalidation is how long a router (Mongos) trusts a user it has cached
	// (userCacheInvalidationIntervalSecs; default 30s). A router reads a user again at once
	// after a change it made itself, and on invalidateUserCache; other routers go on with the
	// cached user (old password, old restrictions) until the interval ends.
	UserCacheInvalidation time.Duration
}

// member is one server of the deployment: a listener and what it knows.
type member struct {
	ln    net.Listener
	addr  string
	role  string                 // Standalone, Primary, Secondary or Mongos
	cache map[userKey]cachedUser // a router's user cache
	count map[string]int         // commands that reached this member's handlers
}

type cachedUser struct {
	u  *user
	at time.Time
}

// Kill is one killAllSessions (or killAllSessionsByPattern) a member received.
type Kill struct {
	Host  string
	Users []UserRef
}

// Role is a role reference.
type Role struct {
	Role string `bson:"role"`
	DB   string `bson:"db"`
}

// Fault changes how the server answers matching commands.
//
// In order: Delay is waited; then Drop closes the connection, or Code answers an error, or the
// command runs (and, when it succeeds, is applied and recorded in Applied); then DelayAfter is
// waited and DropAfter closes the connection instead of sending the answer.
type Fault struct {
	// Command is the command name to match; "" matches every command, handshakes included.
	Command string
	// Delay is waited before running the command (and before dropping), as if the command
	// were held up on its way to the server: its maxTimeMS has not started. Close interrupts it.
	Delay time.Duration
	// Slow is how long the server takes to run the command (after Delay): its maxTimeMS runs
	// meanwhile, and a command still running at that deadline is killed with 50
	// MaxTimeMSExpired and not applied, as on a real server.
	Slow time.Duration
	// Drop closes the connection instead of running the command and answering.
	Drop bool
	// Code and Message, when Code is not 0, answer with that error and run nothing.
	Code    int32
	Message string
	// WriteConcernCode, when not 0, runs the command and then reports a writeConcernError.
	WriteConcernCode int32
	// TopLevel, with WriteConcernCode, reports it as a mongos does when the config servers
	// applied the change and did not confirm it: as the command's own error, {ok: 0, code}
	// (sharding_catalog_client_impl.cpp, runUserManagementWriteCommand).
	TopLevel bool
	// RolledBack, with WriteConcernCode, undoes the change right after it is answered, as a
	// failover does to a write the new primary never received.
	RolledBack bool
	// DelayAfter is waited after the command ran, before answering: a client that times out
	// meanwhile does so after the change was applied. Close interrupts it and drops the
	// connection without answering.
	DelayAfter time.Duration
	// DropAfter runs the command, then closes the connection instead of answering: the change
	// is applied but the client never learns it.
	DropAfter bool
	// Times is how many commands the fault applies to; 0 means until cleared.
	Times int
	// Skip lets that many matching commands through untouched first.
	Skip int
}

// Server is a running emulator.
type Server struct {
	opts     Options
	members  []*member
	addr     string // the first member's
	adminPwd string
	closed   chan struct{}
	wg       sync.WaitGroup

	faulted atomic.Int64 // commands a fault is holding now (see Faulted)

	mu       sync.Mutex
	users    map[userKey]*user
	roles    map[userKey]*customRole
	faults   []*Fault
	conns    map[net.Conn]struct{}
	killed   []Kill
	commands map[string]int
	received map[string]int
	maxTimes map[string]time.Duration // the maxTimeMS of the last command of each name
	nextConn int32
	applied  []Applied
	seq      uint64
}

// UserRef names a user.
type UserRef struct {
	User string `bson:"user"`
	DB   string `bson:"db"`
}

type userKey struct{ db, name string }

// NewServer starts an emulator on 127.0.0.1 with an admin account (admin@admin, a random
// password, roles from Options), made as CreateUser makes it: it is the first entry of Applied.
// Close it when done.
func NewServer(opts Options) (*Server, error) {
	if opts.Version == "" {
		opts.Version = "7.0.14"
	}
	if opts.Topology == "" {
		opts.Topology = Standalone
	}
	if opts.AdminRoles == nil {
		opts.AdminRoles = []Role{{Role: "root", DB: "admin"}}
	}
	if opts.BuildInfoAuthMode == "" {
		opts.BuildInfoAuthMode = "requiresAuth"
	}
	if opts.Members <= 0 {
		opts.Members = 1
	}
	if opts.UserCacheInvalidation <= 0 {
		opts.UserCacheInvalidation = 30 * time.Second
	}
	s := &Server{
		opts: opts, adminPwd: randomString(12),
		closed: make(chan struct{}), users: map[userKey]*user{}, roles: map[userKey]*customRole{},
		conns: map[net.Conn]struct{}{}, commands: map[string]int{}, received: map[string]int{}, maxTimes: map[string]time.Duration{},
	}
	for i := 0; i < opts.Members; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		if opts.TLS != nil {
			ln = tls.NewListener(ln, opts.TLS)
		}
		role := opts.Topology
		if role == Primary && i > 0 {
			role = Secondary
		}
		s.members = append(s.members, &member{ln: ln, addr: ln.Addr().String(), role: role,
			cache: map[userKey]cachedUser{}, count: map[string]int{}})
	}
	s.addr = s.members[0].addr
	if err := s.CreateUser("admin", s.adminPwd, "admin", opts.AdminRoles); err != nil {
		s.closeListeners()
		return nil, err
	}
	for _, m := range s.members {
		s.wg.Add(1)
		go s.accept(m)
	}
	return s, nil
}

func (s *Server) closeListeners() {
	for _, m := range s.members {
		m.ln.Close()
	}
}

// Addrs are every member's host:port, the first member's first.
func (s *Server) Addrs() []string {
	var out []string
	for _, m := range s.members {
		out = append(out, m.addr)
	}
	return out
}

// ClusterURI logs in as the admin account through every member, as an application would:
// the replica set by name (the driver finds the primary), or every router of a cluster.
func (s *Server) ClusterURI() string {
	u := fmt.Sprintf("mongodb://admin:%s@%s/?authSource=admin", s.adminPwd, strings.Join(s.Addrs(), ","))
	switch s.opts.Topology {
	case Primary:
		u += "&replicaSet=rs0"
	case Standalone, Secondary:
		u += "&directConnection=true"
	}
	if s.opts.TLS != nil {
		u += "&tls=true"
	}
	return u
}

// UserURIAt logs in as a user through one member only.
func (s *Server) UserURIAt(addr, user, password, authDB string) string {
	u := fmt.Sprintf("mongodb://%s:%s@%s/?authSource=%s&directConnection=true", user, password, addr, authDB)
	if s.opts.TLS != nil {
		u += "&tls=true"
	}
	return u
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// URI is a connection string that logs in as the admin account.
func (s *Server) URI() string { return s.UserURI("admin", s.adminPwd, "admin") }

// AdminPassword is the admin account's password (tests use it to check it never leaks).
func (s *Server) AdminPassword() string { return s.adminPwd }

// UserURI is a connection string for any user.
func (s *Server) UserURI(user, password, authDB string) string {
	u := fmt.Sprintf("mongodb://%s:%s@%s/?authSource=%s&directConnection=true", user, password, s.addr, authDB)
	if s.opts.TLS != nil {
		u += "&tls=true"
	}
	return u
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Faulted is how many commands a fault is holding now (delayed before or after applying): a
// test that moves a fake clock on waits for 0 first, since on a real server those commands
// would have landed in the time the clock says has passed.
func (s *Server) Faulted() int { return int(s.faulted.Load()) }

// Inject adds a fault; ClearFaults removes them all.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// DropConnections closes every open connection, as a network failure would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// Killed returns the user lists of every killAllSessions received, in order.
func (s *Server) Killed() [][]UserRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]UserRef
	for _, k := range s.killed {
		out = append(out, k.Users)
	}
	return out
}

// Kills returns every killAllSessions received, with the member that received it, in order.
func (s *Server) Kills() []Kill {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Kill(nil), s.killed...)
}

// CountAt is how many times command reached its handler on the member at addr.
func (s *Server) CountAt(addr, command string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m.addr == addr {
			return m.count[command]
		}
	}
	return 0
}

// Count is how many times command reached its handler, after any fault let it through.
func (s *Server) Count(command string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands[command]
}

// MaxTime is the maxTimeMS the last command named command carried (0: none).
func (s *Server) MaxTime(command string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxTimes[command]
}

// Received is how many times command arrived, counted before any fault delays or drops it:
// with a delaying fault it tells a test that a command is in flight but not yet applied.
func (s *Server) Received(command string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received[command]
}

func (s *Server) fault(cmd string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Command == "" || f.Command == cmd {
			if f.Skip > 0 {
				f.Skip--
				return nil
			}
			out := *f
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					s.faults = append(s.faults[:i], s.faults[i+1:]...)
				}
			}
			return &out
		}
	}
	return nil
}

func (s *Server) accept(m *member) {
	defer s.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.nextConn++
		id := s.nextConn
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serve(&conn{srv: s, nc: c, id: id, m: m})
		}()
	}
}

// conn is one client connection and its authentication state.
type conn struct {
	srv  *Server
	m    *member // the member it connected to
	nc   net.Conn
	id   int32
	auth *session // nil when not authenticated
	sasl *saslState
}

// session is who a connection is logged in as. userID detects a user dropped and re-created
// under the same name (reference case 24).
type session struct {
	key    userKey
	userID [16]byte
	gen    uint64 // the user's generation when last validated
}

const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013
)

func (s *Server) serve(c *conn) {
	r := bufio.NewReader(c.nc)
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		length := int32(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := int32(binary.LittleEndian.Uint32(hdr[4:]))
		opcode := int32(binary.LittleEndian.Uint32(hdr[12:]))
		if length < 16 || length > 48<<20 {
			return
		}
		body := make([]byte, length-16)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var (
			doc        bson.Raw
			db         string
			moreToCome bool
			err        error
		)
		switch opcode {
		case opQuery:
			doc, db, err = parseQuery(body)
		case opMsg:
			doc, moreToCome, err = parseMsg(body)
			if err == nil {
				db, _ = doc.Lookup("$db").StringValueOK()
			}
		default:
			return // the driver sends nothing else
		}
		if err != nil {
			return
		}
		reply, drop := s.handle(c, doc, db)
		if drop {
			return
		}
		if moreToCome {
			continue
		}
		var out []byte
		if opcode == opQuery {
			out = replyMessage(reqID, reply)
		} else {
			out = msgMessage(reqID, reply)
		}
		if _, err := c.nc.Write(out); err != nil {
			return
		}
	}
}

func parseQuery(b []byte) (bson.Raw, string, error) {
	if len(b) < 4 {
		return nil, "", errors.New("short OP_QUERY")
	}
	b = b[4:] // flags
	i := strings.IndexByte(string(b), 0)
	if i < 0 {
		return nil, "", errors.New("bad collection name")
	}
	ns := string(b[:i])
	b = b[i+1+8:] // numberToSkip, numberToReturn
	doc, err := readDoc(b)
	db, _, _ := strings.Cut(ns, ".")
	return doc, db, err
}

func readDoc(b []byte) (bson.Raw, error) {
	if len(b) < 5 {
		return nil, errors.New("short document")
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 5 || n > len(b) {
		return nil, errors.New("bad document length")
	}
	doc := bson.Raw(b[:n])
	return doc, doc.Validate()
}

// parseMsg returns the body with any document sequences folded in as arrays.
func parseMsg(b []byte) (bson.Raw, bool, error) {
	if len(b) < 5 {
		return nil, false, errors.New("short OP_MSG")
	}
	flags := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if flags&1 != 0 { // checksumPresent
		b = b[:len(b)-4]
	}
	var body bson.Raw
	var seqs []bson.E
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0:
			d, err := readDoc(b)
			if err != nil {
				return nil, false, err
			}
			body, b = d, b[len(d):]
		case 1:
			size := int(binary.LittleEndian.Uint32(b))
			sec := b[4:size]
			i := strings.IndexByte(string(sec), 0)
			name := string(sec[:i])
			sec = sec[i+1:]
			var arr bson.A
			for len(sec) > 0 {
				d, err := readDoc(sec)
				if err != nil {
					return nil, false, err
				}
				arr = append(arr, d)
				sec = sec[len(d):]
			}
			seqs = append(seqs, bson.E{Key: name, Value: arr})
			b = b[size:]
		default:
			return nil, false, fmt.Errorf("unknown section kind %d", kind)
		}
	}
	if body == nil {
		return nil, false, errors.New("OP_MSG without body")
	}
	if len(seqs) > 0 {
		var d bson.D
		if err := bson.Unmarshal(body, &d); err != nil {
			return nil, false, err
		}
		d = append(d, seqs...)
		raw, err := bson.Marshal(d)
		if err != nil {
			return nil, false, err
		}
		body = raw
	}
	return body, flags&2 != 0, nil
}

func header(length, reqID, respTo, opcode int32) []byte {
	h := make([]byte, 16, length)
	binary.LittleEndian.PutUint32(h[0:], uint32(length))
	binary.LittleEndian.PutUint32(h[4:], uint32(reqID))
	binary.LittleEndian.PutUint32(h[8:], uint32(respTo))
	binary.LittleEndian.PutUint32(h[12:], uint32(opcode))
	return h
}

var lastReplyID atomic.Int32

func replyMessage(respTo int32, doc bson.Raw) []byte {
	out := header(int32(16+20+len(doc)), lastReplyID.Add(1), respTo, opReply)
	out = binary.LittleEndian.AppendUint32(out, 0) // responseFlags
	out = binary.LittleEndian.AppendUint64(out, 0) // cursorID
	out = binary.LittleEndian.AppendUint32(out, 0) // startingFrom
	out = binary.LittleEndian.AppendUint32(out, 1) // numberReturned
	return append(out, doc...)
}

func msgMessage(respTo int32, doc bson.Raw) []byte {
	out := header(int32(16+4+1+len(doc)), lastReplyID.Add(1), respTo, opMsg)
	out = binary.LittleEndian.AppendUint32(out, 0) // flags
	out = append(out, 0)                           // section kind 0
	return append(out, doc...)
}
