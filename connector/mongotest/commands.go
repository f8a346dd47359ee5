package mongotest

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// cmdError is a command failure, answered as {ok: 0, errmsg, code, codeName}.
type cmdError struct {
	code int32
	name string
	msg  string
}

func (e *cmdError) Error() string { return e.msg }

func fail(code int32, name, format string, a ...any) *cmdError {
	return &cmdError{code: code, name: name, msg: fmt.Sprintf(format, a...)}
}

// Codes used (reference §0).
func badValue(format string, a ...any) *cmdError { return fail(2, "BadValue", format, a...) }

// emptyRestriction answers a restriction document with neither clientSource nor serverAddress
// (address_restriction.cpp, parseAddressRestrictionSet: 162 CollectionIsEmpty).
func emptyRestriction() *cmdError {
	return fail(162, "CollectionIsEmpty", "At least one of 'clientSource' or 'serverAddress' must be set")
}
func typeMismatch(cmd, field, got, want string) *cmdError {
	return fail(14, "TypeMismatch", "BSON field '%s.%s' is the wrong type '%s', expected type '%s'", cmd, field, got, want)
}
func unauthorized(cmd, db string) *cmdError {
	return fail(13, "Unauthorized", "not authorized on %s to execute command { %s: ... }", db, cmd)
}

var errNeedsAuth = func(cmd string) *cmdError {
	return fail(13, "Unauthorized", "Command %s requires authentication", cmd)
}

// command is one request.
type command struct {
	name string
	db   string
	args bson.D
}

func (c *command) get(key string) (any, bool) {
	for _, e := range c.args {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// genericFields are accepted on every command: the driver adds them. writeConcern only on the
// commands that support it (writeConcernCommands).
var genericFields = []string{"$db", "lsid", "$clusterTime", "$readPreference", "maxTimeMS", "apiVersion",
	"apiStrict", "apiDeprecationErrors", "txnNumber", "autocommit", "startTransaction", "comment", "writeConcern", "$audit"}

// writeConcernCommands support writeConcern: the user-changing ones. The server refuses it on
// any other (usersInfo, rolesInfo, killAllSessions, connectionStatus, invalidateUserCache) with
// 72 InvalidOptions (service_entry_point_common.cpp, uassertCommandDoesNotSpecifyWriteConcern).
var writeConcernCommands = append([]string{"dropAllUsersFromDatabase"}, writes...)

// strict rejects fields outside allowed, as the IDL-defined user commands do (strict: true).
func (c *command) strict(allowed ...string) *cmdError {
	for _, e := range c.args[1:] {
		if !slices.Contains(allowed, e.Key) && !slices.Contains(genericFields, e.Key) {
			return fail(40415, "IDLUnknownField", "BSON field '%s.%s' is an unknown field.", c.name, e.Key)
		}
	}
	if wc, ok := c.get("writeConcern"); ok {
		if _, isDoc := wc.(bson.D); !isDoc {
			return typeMismatch(c.name, "writeConcern", typeName(wc), "object")
		}
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case int32:
		return "int"
	case int64:
		return "long"
	case float64:
		return "double"
	case bson.D:
		return "object"
	case bson.A:
		return "array"
	case nil:
		return "null"
	case bson.Binary:
		return "binData"
	}
	return fmt.Sprintf("%T", v)
}

// preAuth commands need no authentication.
var preAuth = []string{"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "authenticate", "ping", "buildInfo", "buildinfo", "endSessions", "connectionStatus"}

// writes are refused on a secondary.
var writes = []string{"createUser", "updateUser", "dropUser", "dropAllUsersFromDatabase", "grantRolesToUser",
	"revokeRolesFromUser", "createRole", "dropRole"}

func (s *Server) handle(c *conn, doc bson.Raw, db string) (bson.Raw, bool) {
	var args bson.D
	if err := bson.Unmarshal(doc, &args); err != nil || len(args) == 0 {
		return errorDoc(badValue("empty command")), false
	}
	cmd := &command{name: args[0].Key, db: db, args: args}
	s.mu.Lock()
	s.received[cmd.name]++
	s.maxTimes[cmd.name] = maxTime(cmd)
	s.mu.Unlock()
	f := s.fault(cmd.name)
	if f == nil {
		return s.run(c, cmd, 0), false
	}
	s.faulted.Add(1)
	defer s.faulted.Add(-1)
	if f.Delay > 0 && !s.wait(f.Delay) {
		return nil, true
	}
	if limit := maxTime(cmd); f.Slow > 0 && limit > 0 && f.Slow > limit {
		// The server kills an operation still running at its maxTimeMS: a slow command is
		// never applied after its deadline, however late the client stops waiting.
		if !s.wait(limit) {
			return nil, true
		}
		return errorDoc(fail(50, "MaxTimeMSExpired", "operation exceeded time limit")), false
	}
	if f.Slow > 0 && !s.wait(f.Slow) {
		return nil, true
	}
	if f.Drop {
		return nil, true
	}
	var reply bson.Raw
	if f.Code != 0 {
		reply = errorDoc(fail(f.Code, "", "%s", orDefault(f.Message, "injected failure")))
	} else if f.TopLevel && f.WriteConcernCode != 0 {
		reply = s.run(c, cmd, 0)
		if ok, _ := reply.Lookup("ok").AsFloat64OK(); ok == 1 {
			reply = errorDoc(fail(f.WriteConcernCode, writeConcernCodes[f.WriteConcernCode], "waiting for replication failed"))
		}
	} else if f.RolledBack && f.WriteConcernCode != 0 {
		s.mu.Lock()
		saved := map[userKey]*user{}
		for k, u := range s.users {
			saved[k] = u.clone()
		}
		s.mu.Unlock()
		reply = s.run(c, cmd, f.WriteConcernCode)
		s.mu.Lock()
		s.users = saved
		s.mu.Unlock()
	} else {
		reply = s.run(c, cmd, f.WriteConcernCode)
	}
	// The change, if any, is applied and recorded: what follows only holds back the answer.
	if f.DelayAfter > 0 && !s.wait(f.DelayAfter) {
		return nil, true
	}
	if f.DropAfter {
		return nil, true
	}
	return reply, false
}

// maxTime is the command's maxTimeMS, 0 when none.
func maxTime(cmd *command) time.Duration {
	v, _ := cmd.get("maxTimeMS")
	var ms int64
	switch n := v.(type) {
	case int32:
		ms = int64(n)
	case int64:
		ms = n
	case float64:
		ms = int64(n)
	}
	return time.Duration(ms) * time.Millisecond
}

// wait sleeps for d; false when Close interrupted it.
func (s *Server) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	}
}

// run runs a command under s.mu and returns its answer, with a writeConcernError of wcCode
// when not 0 and the command succeeded.
func (s *Server) run(c *conn, cmd *command, wcCode int32) bson.Raw {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[cmd.name]++
	c.m.count[cmd.name]++
	s.revalidate(c)
	h, known := handlers[cmd.name]
	if cmd.name == "hello" && !hasHello(s.opts.Version) {
		known = false
	}
	if !known {
		return errorDoc(fail(59, "CommandNotFound", "no such command: '%s'", cmd.name))
	}
	if _, ok := cmd.get("writeConcern"); ok && !slices.Contains(writeConcernCommands, cmd.name) {
		return errorDoc(fail(72, "InvalidOptions", "Command does not support writeConcern"))
	}
	if c.auth == nil && !slices.Contains(preAuth, cmd.name) {
		return errorDoc(errNeedsAuth(cmd.name))
	}
	if c.m.role == Secondary && slices.Contains(writes, cmd.name) {
		return errorDoc(fail(10107, "NotWritablePrimary", "not primary"))
	}
	reply, err := h(s, c, cmd)
	if err != nil {
		return errorDoc(err)
	}
	if c.m.role == Mongos && slices.Contains(writes, cmd.name) {
		// A router drops what it cached of users it changed itself; the others keep theirs
		// until their interval ends or they are told (invalidateUserCache).
		clear(c.m.cache)
	}
	reply = append(reply, bson.E{Key: "ok", Value: 1.0})
	if wcCode != 0 {
		reply = append(reply, bson.E{Key: "writeConcernError", Value: bson.D{
			{Key: "code", Value: wcCode}, {Key: "codeName", Value: writeConcernCodes[wcCode]},
			{Key: "errmsg", Value: "waiting for replication failed"}}})
	}
	raw, merr := bson.Marshal(reply)
	if merr != nil {
		return errorDoc(badValue("emulator: %v", merr))
	}
	return raw
}

// writeConcernCodes are the codes a writeConcernError carries (error_codes.yml; which ones
// replication reports is in REFERENCE.md).
var writeConcernCodes = map[int32]string{
	50: "MaxTimeMSExpired", 64: "WriteConcernTimeout", 79: "UnknownReplWriteConcern",
	91: "ShutdownInProgress", 100: "UnsatisfiableWriteConcern", 189: "PrimarySteppedDown",
	11602: "InterruptedDueToReplStateChange",
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func errorDoc(err *cmdError) bson.Raw {
	d := bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: err.msg}, {Key: "code", Value: err.code}}
	if err.name != "" {
		d = append(d, bson.E{Key: "codeName", Value: err.name})
	}
	raw, _ := bson.Marshal(d)
	return raw
}

// revalidate re-reads the connection's user before each command, as MongoDB does after a
// user-management write: a user dropped (or re-created, new userId) or no longer meeting its
// authentication restrictions leaves the connection unauthenticated. Caller holds s.mu.
func (s *Server) revalidate(c *conn) {
	if c.auth == nil {
		return
	}
	u := s.view(c, c.auth.key)
	if u == nil || u.id != c.auth.userID {
		c.auth = nil
		return
	}
	if u.gen != c.auth.gen {
		if !s.loginAllowed(u, c.nc.RemoteAddr(), c.nc.LocalAddr()) {
			c.auth = nil
			return
		}
		c.auth.gen = u.gen
	}
}

type handler func(*Server, *conn, *command) (bson.D, *cmdError)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"hello": (*Server).hello, "isMaster": (*Server).hello, "ismaster": (*Server).hello,
		"ping":      func(*Server, *conn, *command) (bson.D, *cmdError) { return bson.D{}, nil },
		"buildInfo": (*Server).buildInfo, "buildinfo": (*Server).buildInfo,
		"saslStart": (*Server).saslStart, "saslContinue": (*Server).saslContinue,
		"authenticate":     (*Server).authenticate,
		"connectionStatus": (*Server).connectionStatus,
		"endSessions":      func(*Server, *conn, *command) (bson.D, *cmdError) { return bson.D{}, nil },
		"killSessions":     func(*Server, *conn, *command) (bson.D, *cmdError) { return bson.D{}, nil },
		"killAllSessions":  (*Server).killAllSessions, "killAllSessionsByPattern": (*Server).killAllSessionsByPattern,
		"createUser": (*Server).createUser, "updateUser": (*Server).updateUser, "dropUser": (*Server).dropUser,
		"dropAllUsersFromDatabase": (*Server).dropAllUsers,
		"grantRolesToUser":         (*Server).grantRoles, "revokeRolesFromUser": (*Server).revokeRoles,
		"usersInfo": (*Server).usersInfo, "rolesInfo": (*Server).rolesInfo,
		"createRole": (*Server).createRole, "dropRole": (*Server).dropRole,
		"invalidateUserCache": (*Server).invalidateUserCache,
	}
}

func (s *Server) hello(c *conn, cmd *command) (bson.D, *cmdError) {
	d := bson.D{
		{Key: "helloOk", Value: true},
		{Key: "maxBsonObjectSize", Value: int32(16 << 20)},
		{Key: "maxMessageSizeBytes", Value: int32(48000000)},
		{Key: "maxWriteBatchSize", Value: int32(100000)},
		{Key: "localTime", Value: bson.NewDateTimeFromTime(time.Now())},
		{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		{Key: "connectionId", Value: c.id},
		{Key: "minWireVersion", Value: int32(0)},
		{Key: "maxWireVersion", Value: WireVersion(s.opts.Version)},
		{Key: "readOnly", Value: false},
	}
	// helloOk answers a client that asked with helloOk: true, on a release that knows hello
	// (replication_info.cpp).
	if asked, _ := cmd.get("helloOk"); asked != true || !hasHello(s.opts.Version) {
		d = d[1:]
	}
	primary := c.m.role != Secondary
	if cmd.name == "hello" {
		d = append(d, bson.E{Key: "isWritablePrimary", Value: primary})
	} else {
		d = append(d, bson.E{Key: "ismaster", Value: primary})
	}
	switch s.opts.Topology {
	case Primary, Secondary:
		hosts := bson.A{}
		for _, a := range s.Addrs() {
			hosts = append(hosts, a)
		}
		d = append(d, bson.E{Key: "setName", Value: "rs0"}, bson.E{Key: "setVersion", Value: int32(1)},
			bson.E{Key: "hosts", Value: hosts}, bson.E{Key: "me", Value: c.m.addr},
			bson.E{Key: "secondary", Value: !primary})
		if s.members[0].role == Primary {
			d = append(d, bson.E{Key: "primary", Value: s.addr})
		}
	case Mongos:
		d = append(d, bson.E{Key: "msg", Value: "isdbgrid"})
	}
	if v, ok := cmd.get("saslSupportedMechs"); ok {
		if name, ok := v.(string); ok {
			db, user, _ := strings.Cut(name, ".")
			if u := s.view(c, userKey{db, user}); u != nil {
				d = append(d, bson.E{Key: "saslSupportedMechs", Value: u.mechanisms})
			}
		}
	}
	return d, nil
}

// WireVersion is the maxWireVersion a MongoDB release advertises (src/mongo/db/wire_version.h:
// one per release since 3.0, one per rapid release from 5.1 on).
func WireVersion(version string) int32 {
	v := parseVersion(version)
	major, minor := v[0], v[1]
	switch {
	case major >= 5:
		// 5.0 is 13, 5.1 is 14, 6.0 is 17, 7.0 is 21, 8.0 is 25: four per major (each had
		// three rapid releases before the next), plus the minor.
		return int32(13 + (major-5)*4 + minor)
	case major == 4 && minor >= 4:
		return 9
	case major == 4 && minor == 2:
		return 8
	case major == 4:
		return 7
	case major == 3 && minor >= 6:
		return 6
	case major == 3 && minor >= 4:
		return 5
	case major == 3 && minor >= 2:
		return 4
	case major == 3:
		return 3
	}
	return 2
}

// hasHello reports whether the release knows the hello command: 5.0, and backported to 4.4.2,
// 4.2.10, 4.0.21 and 3.6.21 (docs db.hello(); SERVER-49985); older ones answer only isMaster.
func hasHello(version string) bool {
	v := parseVersion(version)
	patch := map[[2]int]int{{4, 4}: 2, {4, 2}: 10, {4, 0}: 21, {3, 6}: 21}
	if v[0] >= 5 || (v[0] == 4 && v[1] > 4) {
		return true
	}
	min, ok := patch[[2]int{v[0], v[1]}]
	return ok && v[2] >= min
}

func (s *Server) buildInfo(c *conn, cmd *command) (bson.D, *cmdError) {
	va := bson.A{}
	for _, n := range parseVersion(s.opts.Version) {
		va = append(va, int32(n))
	}
	if c.auth == nil {
		switch s.opts.BuildInfoAuthMode {
		case "versionOnlyIfPreAuth":
			return bson.D{{Key: "version", Value: s.opts.Version}, {Key: "versionArray", Value: va}}, nil
		case "allowedPreAuth":
		default:
			return nil, errNeedsAuth(cmd.name)
		}
	}
	return bson.D{
		{Key: "version", Value: s.opts.Version}, {Key: "gitVersion", Value: "mongotest"},
		{Key: "versionArray", Value: va}, {Key: "bits", Value: int32(64)},
		{Key: "maxBsonObjectSize", Value: int32(16 << 20)}, {Key: "modules", Value: bson.A{}},
	}, nil
}

func parseVersion(v string) []int {
	out := []int{0, 0, 0, 0}
	for i, p := range strings.SplitN(v, ".", 4) {
		fmt.Sscanf(p, "%d", &out[i])
	}
	return out
}

func (s *Server) saslStart(c *conn, cmd *command) (bson.D, *cmdError) {
	mech, _ := func() (string, bool) { v, ok := cmd.get("mechanism"); s, _ := v.(string); return s, ok }()
	payload := binaryArg(cmd, "payload")
	var hg scram.HashGeneratorFcn
	switch mech {
	case mechSHA1:
		hg = scram.SHA1
	case mechSHA256:
		hg = scram.SHA256
	default:
		return nil, fail(2, "BadValue", "Received authentication for mechanism %s which is unknown or not enabled", mech)
	}
	name := clientFirstUser(string(payload))
	u := s.view(c, userKey{cmd.db, name})
	if u != nil && !slices.Contains(u.mechanisms, mech) {
		return nil, fail(334, "MechanismUnavailable", "Unable to use %s based authentication for user without any %s credentials registered", mech, mech)
	}
	srv, err := hg.NewServer(func(string) (scram.StoredCredentials, error) {
		if u == nil {
			return scram.StoredCredentials{}, fmt.Errorf("no such user")
		}
		return u.creds[mech], nil
	})
	if err != nil {
		return nil, badValue("%v", err)
	}
	st := &saslState{conv: srv.NewConversation(), db: cmd.db, mechanism: mech}
	if opts, ok := cmd.get("options"); ok {
		if d, ok := opts.(bson.D); ok {
			for _, e := range d {
				if e.Key == "skipEmptyExchange" && e.Value == true {
					st.skipEmpty = true
				}
			}
		}
	}
	out, err := st.conv.Step(string(payload))
	if err != nil {
		return nil, authFailed()
	}
	c.sasl = st
	return bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: false},
		{Key: "payload", Value: bson.Binary{Data: []byte(out)}}}, nil
}

func authFailed() *cmdError { return fail(18, "AuthenticationFailed", "Authentication failed.") }

func binaryArg(cmd *command, key string) []byte {
	v, _ := cmd.get(key)
	switch b := v.(type) {
	case bson.Binary:
		return b.Data
	case string:
		return []byte(b)
	}
	return nil
}

func (s *Server) saslContinue(c *conn, cmd *command) (bson.D, *cmdError) {
	st := c.sasl
	if st == nil {
		return nil, fail(17, "ProtocolError", "No SASL session state found")
	}
	if st.finished { // the empty exchange of clients that do not skip it
		c.sasl = nil
		return bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: true}, {Key: "payload", Value: bson.Binary{}}}, nil
	}
	out, err := st.conv.Step(string(binaryArg(cmd, "payload")))
	if err != nil || !st.conv.Done() || !st.conv.Valid() {
		c.sasl = nil
		return nil, authFailed()
	}
	key := userKey{st.db, st.conv.Username()}
	u := s.view(c, key)
	if u == nil || !s.loginAllowed(u, c.nc.RemoteAddr(), c.nc.LocalAddr()) {
		// Unmet restrictions are answered as a plain authentication failure (reference §0).
		c.sasl = nil
		return nil, authFailed()
	}
	c.auth = &session{key: key, userID: u.id, gen: u.gen}
	st.finished = true
	done := st.skipEmpty
	if done {
		c.sasl = nil
	}
	return bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: done},
		{Key: "payload", Value: bson.Binary{Data: []byte(out)}}}, nil
}

func (s *Server) connectionStatus(c *conn, cmd *command) (bson.D, *cmdError) {
	users, roles := bson.A{}, bson.A{}
	var privs []privilege
	if c.auth != nil {
		u := s.view(c, c.auth.key)
		users = append(users, bson.D{{Key: "user", Value: u.name}, {Key: "db", Value: u.db}})
		for _, r := range u.roles {
			roles = append(roles, bson.D{{Key: "role", Value: r.Role}, {Key: "db", Value: r.DB}})
		}
		privs = mergePrivileges(s.privilegesOf(u.roles))
	}
	info := bson.D{{Key: "authenticatedUsers", Value: users}, {Key: "authenticatedUserRoles", Value: roles}}
	if v, _ := cmd.get("showPrivileges"); v == true {
		pa := bson.A{}
		for _, p := range privs {
			pa = append(pa, p.doc())
		}
		info = append(info, bson.E{Key: "authenticatedUserPrivileges", Value: pa})
	}
	return bson.D{{Key: "authInfo", Value: info}}, nil
}

// can checks the connection's privileges. Caller holds s.mu.
func (s *Server) can(c *conn, action, db string, onCluster bool) bool {
	if c.auth == nil {
		return false
	}
	return allowed(s.privilegesOf(s.view(c, c.auth.key).roles), action, db, onCluster)
}

func (s *Server) killAllSessions(c *conn, cmd *command) (bson.D, *cmdError) {
	if !s.can(c, "killAnySession", "", true) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	list, ok := cmd.args[0].Value.(bson.A)
	if !ok {
		return nil, typeMismatch(cmd.name, cmd.name, typeName(cmd.args[0].Value), "array")
	}
	var who []UserRef
	for _, v := range list {
		d, ok := v.(bson.D)
		if !ok {
			return nil, typeMismatch(cmd.name, cmd.name+".0", typeName(v), "object")
		}
		var ref UserRef
		raw, _ := bson.Marshal(d)
		if err := bson.Unmarshal(raw, &ref); err != nil {
			return nil, badValue("%v", err)
		}
		who = append(who, ref)
	}
	s.killed = append(s.killed, Kill{Host: c.m.addr, Users: who})
	return bson.D{}, nil
}

func (s *Server) killAllSessionsByPattern(c *conn, cmd *command) (bson.D, *cmdError) {
	if !s.can(c, "killAnySession", "", true) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	list, _ := cmd.args[0].Value.(bson.A)
	var who []UserRef
	for _, v := range list {
		d, _ := v.(bson.D)
		for _, e := range d {
			if e.Key == "users" || e.Key == "roles" {
				// Patterns naming users or roles need impersonate, which no built-in role grants.
				if !s.can(c, "impersonate", "", true) {
					return nil, unauthorized(cmd.name, cmd.db)
				}
				if e.Key == "users" {
					for _, uv := range e.Value.(bson.A) {
						raw, _ := bson.Marshal(uv)
						var ref UserRef
						bson.Unmarshal(raw, &ref)
						who = append(who, ref)
					}
				}
			}
		}
	}
	s.killed = append(s.killed, Kill{Host: c.m.addr, Users: who})
	return bson.D{}, nil
}

// parseRoles reads a roles array: strings name roles in the command's database, documents
// name {role, db}. Whether they exist is checked apart (rolesExist), where the server does.
func (s *Server) parseRoles(cmd *command, field string, v any) ([]Role, *cmdError) {
	arr, ok := v.(bson.A)
	if !ok {
		return nil, typeMismatch(cmd.name, field, typeName(v), "array")
	}
	var out []Role
	for _, e := range arr {
		var r Role
		switch x := e.(type) {
		case string:
			r = Role{Role: x, DB: cmd.db}
		case bson.D:
			for _, f := range x {
				sv, isStr := f.Value.(string)
				switch {
				case f.Key == "role" && isStr:
					r.Role = sv
				case f.Key == "db" && isStr:
					r.DB = sv
				default:
					return nil, badValue("Invalid role document: field %q", f.Key)
				}
			}
		default:
			return nil, badValue("Role names must be either strings or objects")
		}
		if r.Role == "" || r.DB == "" {
			return nil, badValue("Role names and databases must be non-empty strings")
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// rolesExist answers 31 for the first role that does not exist. Caller holds s.mu.
func (s *Server) rolesExist(roles []Role) *cmdError {
	for _, r := range roles {
		if !builtin(r) && s.roles[userKey{r.DB, r.Role}] == nil {
			return fail(31, "RoleNotFound", "Could not find role: %s@%s", r.Role, r.DB)
		}
	}
	return nil
}

func parseRestrictions(cmd *command, v any) ([]Restriction, *cmdError) {
	arr, ok := v.(bson.A)
	if !ok {
		return nil, typeMismatch(cmd.name, "authenticationRestrictions", typeName(v), "array")
	}
	var out []Restriction
	for _, e := range arr {
		d, ok := e.(bson.D)
		if !ok {
			return nil, badValue("authenticationRestrictions must hold documents")
		}
		r := Restriction{given: d}
		for _, f := range d {
			list, ok := f.Value.(bson.A)
			if !ok {
				return nil, badValue("%s must be an array of addresses", f.Key)
			}
			addrs := []string{} // present, even when empty
			for _, a := range list {
				as, ok := a.(string)
				if !ok || !validAddress(as) {
					return nil, badValue("%v is not a valid IP address or CIDR range", a)
				}
				addrs = append(addrs, as)
			}
			switch f.Key {
			case "clientSource":
				r.ClientSource = addrs
			case "serverAddress":
				r.ServerAddress = addrs
			default:
				return nil, badValue("Unknown restriction type %q", f.Key)
			}
		}
		if r.ClientSource == nil && r.ServerAddress == nil {
			return nil, emptyRestriction()
		}
		out = append(out, r)
	}
	return out, nil
}

func parseMechanisms(cmd *command, v any) ([]string, *cmdError) {
	arr, ok := v.(bson.A)
	if !ok {
		return nil, typeMismatch(cmd.name, "mechanisms", typeName(v), "array")
	}
	if len(arr) == 0 {
		return nil, badValue("mechanisms field must not be empty")
	}
	var out []string
	for _, m := range arr {
		ms, _ := m.(string)
		if ms != mechSHA1 && ms != mechSHA256 {
			return nil, badValue("Unknown auth mechanism '%v'", m)
		}
		out = append(out, ms)
	}
	return out, nil
}

func checkUserName(cmd *command, v any) (string, *cmdError) {
	name, ok := v.(string)
	if !ok {
		return "", typeMismatch(cmd.name, cmd.name, typeName(v), "string")
	}
	if name == "" {
		return "", badValue("User document needs 'user' field to be non-empty")
	}
	if strings.ContainsRune(name, 0) {
		return "", badValue("Username cannot contain NULL characters")
	}
	return name, nil
}

// userFields are the fields createUser and updateUser share, parsed and checked.
type userFields struct {
	pwd          *string
	roles        []Role
	hasRoles     bool
	customData   bson.Raw
	hasCustom    bool
	restrictions []Restriction
	hasRestrict  bool
	mechanisms   []string
	digest       bool
	fields       []string // the user fields given, in order, for Applied
}

func (s *Server) parseUserFields(cmd *command) (userFields, *cmdError) {
	f := userFields{digest: true}
	for _, e := range cmd.args[1:] {
		switch e.Key {
		case "pwd", "roles", "customData", "authenticationRestrictions", "mechanisms":
			f.fields = append(f.fields, e.Key)
		}
		switch e.Key {
		case "pwd":
			p, ok := e.Value.(string)
			if !ok {
				return f, typeMismatch(cmd.name, "pwd", typeName(e.Value), "string")
			}
			if p == "" {
				return f, fail(50687, "Location50687", "Error preflighting UTF-8 conversion: Empty string")
			}
			f.pwd = &p
		case "roles":
			rs, err := s.parseRoles(cmd, "roles", e.Value)
			if err != nil {
				return f, err
			}
			f.roles, f.hasRoles = rs, true
		case "customData":
			d, ok := e.Value.(bson.D)
			if !ok {
				return f, typeMismatch(cmd.name, "customData", typeName(e.Value), "object")
			}
			f.customData, _ = bson.Marshal(d)
			f.hasCustom = true
		case "authenticationRestrictions":
			rs, err := parseRestrictions(cmd, e.Value)
			if err != nil {
				return f, err
			}
			f.restrictions, f.hasRestrict = rs, true
		case "mechanisms":
			ms, err := parseMechanisms(cmd, e.Value)
			if err != nil {
				return f, err
			}
			f.mechanisms = ms
		case "digestPassword":
			b, ok := e.Value.(bool)
			if !ok {
				return f, typeMismatch(cmd.name, "digestPassword", typeName(e.Value), "bool")
			}
			f.digest = b
		}
	}
	if !f.digest && (len(f.mechanisms) == 0 || slices.Contains(f.mechanisms, mechSHA256)) && f.pwd != nil {
		return f, badValue("Use of SCRAM-SHA-256 requires undigested passwords")
	}
	return f, nil
}

// canGrant checks grantRole on every role's database.
func (s *Server) canGrant(c *conn, roles []Role, action string) bool {
	for _, r := range roles {
		if !s.can(c, action, r.DB, false) {
			return false
		}
	}
	return true
}

func (s *Server) createUser(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict("pwd", "roles", "customData", "authenticationRestrictions", "mechanisms", "digestPassword"); err != nil {
		return nil, err
	}
	name, err := checkUserName(cmd, cmd.args[0].Value)
	if err != nil {
		return nil, err
	}
	if _, ok := cmd.get("roles"); !ok {
		return nil, fail(40414, "Location40414", "BSON field 'createUser.roles' is missing but a required field")
	}
	f, err := s.parseUserFields(cmd)
	if err != nil {
		return nil, err
	}
	if f.pwd == nil && cmd.db != "$external" {
		return nil, badValue("Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db")
	}
	if !s.can(c, "createUser", cmd.db, false) || !s.canGrant(c, f.roles, "grantRole") ||
		(f.hasRestrict && !s.can(c, "setAuthenticationRestriction", cmd.db, false)) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	if err := s.rolesExist(f.roles); err != nil {
		return nil, err
	}
	key := userKey{cmd.db, name}
	if s.users[key] != nil {
		return nil, fail(51003, "Location51003", "User \"%s@%s\" already exists", name, cmd.db)
	}
	pwd := ""
	if f.pwd != nil {
		pwd = *f.pwd
	}
	u, e := newUser(name, cmd.db, pwd, f.roles, f.mechanisms)
	if e != nil {
		return nil, badValue("%v", e)
	}
	u.customData = f.customData
	u.restrictions = f.restrictions
	if len(u.restrictions) == 0 {
		u.restrictions = nil // [] creates no field (case 25)
	}
	if f.pwd == nil {
		u.pwdVersion = 0 // an $external user has no password
	}
	s.users[key] = u
	s.record(c, cmd.name, nil, u, f.fields, f.pwd != nil)
	return bson.D{}, nil
}

func (s *Server) updateUser(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict("pwd", "roles", "customData", "authenticationRestrictions", "mechanisms", "digestPassword"); err != nil {
		return nil, err
	}
	name, err := checkUserName(cmd, cmd.args[0].Value)
	if err != nil {
		return nil, err
	}
	f, err := s.parseUserFields(cmd)
	if err != nil {
		return nil, err
	}
	if f.pwd == nil && !f.hasRoles && !f.hasCustom && !f.hasRestrict && f.mechanisms == nil {
		return nil, badValue("Must specify at least one field to update in updateUser")
	}
	self := c.auth != nil && c.auth.key == userKey{cmd.db, name}
	if (f.pwd != nil && !self && !s.can(c, "changePassword", cmd.db, false)) ||
		(f.hasCustom && !self && !s.can(c, "changeCustomData", cmd.db, false)) ||
		(f.hasRestrict && !s.can(c, "setAuthenticationRestriction", cmd.db, false)) ||
		(f.hasRoles && (!s.can(c, "grantRole", "", false) || !s.can(c, "revokeRole", "", false))) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	u := s.users[userKey{cmd.db, name}]
	if u == nil {
		return nil, fail(11, "UserNotFound", "User %s@%s not found", name, cmd.db)
	}
	if err := s.rolesExist(f.roles); err != nil {
		return nil, err
	}
	before := u.snapshot()
	if f.pwd != nil {
		// A new password without mechanisms gets credentials for every mechanism the
		// server allows, whatever the user had (the server's updateUser builds them from
		// authenticationMechanisms, like createUser).
		if e := u.setPassword(*f.pwd, f.mechanisms); e != nil {
			return nil, badValue("%v", e)
		}
	} else if f.mechanisms != nil {
		for _, m := range f.mechanisms {
			if !slices.Contains(u.mechanisms, m) {
				return nil, badValue("mechanisms field must be a subset of previously set mechanisms")
			}
		}
		for m := range u.creds {
			if !slices.Contains(f.mechanisms, m) {
				delete(u.creds, m)
			}
		}
		u.mechanisms = f.mechanisms
	}
	if f.hasRoles {
		u.roles = f.roles
	}
	if f.hasCustom {
		u.customData = f.customData
	}
	if f.hasRestrict {
		u.restrictions = f.restrictions
		if len(u.restrictions) == 0 {
			u.restrictions = nil
		}
	}
	u.gen++
	s.record(c, cmd.name, &before, u, f.fields, f.pwd != nil)
	return bson.D{}, nil
}

func (s *Server) dropUser(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict(); err != nil {
		return nil, err
	}
	name, err := checkUserName(cmd, cmd.args[0].Value)
	if err != nil {
		return nil, err
	}
	if !s.can(c, "dropUser", cmd.db, false) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	key := userKey{cmd.db, name}
	before := s.snapshotOf(key)
	if before == nil {
		return nil, fail(11, "UserNotFound", "User '%s@%s' not found", name, cmd.db)
	}
	delete(s.users, key)
	s.record(c, cmd.name, before, nil, nil, false)
	return bson.D{}, nil
}

func (s *Server) dropAllUsers(c *conn, cmd *command) (bson.D, *cmdError) {
	if !s.can(c, "dropUser", cmd.db, false) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	var keys []userKey
	for k := range s.users {
		if k.db == cmd.db {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b userKey) int { return strings.Compare(a.name, b.name) })
	for _, k := range keys {
		before := s.snapshotOf(k)
		delete(s.users, k)
		s.record(c, cmd.name, before, nil, nil, false)
	}
	return bson.D{{Key: "n", Value: int32(len(keys))}}, nil
}

func (s *Server) grantRoles(c *conn, cmd *command) (bson.D, *cmdError) {
	return s.changeRoles(c, cmd, true)
}

func (s *Server) revokeRoles(c *conn, cmd *command) (bson.D, *cmdError) {
	return s.changeRoles(c, cmd, false)
}

func (s *Server) changeRoles(c *conn, cmd *command, grant bool) (bson.D, *cmdError) {
	if err := cmd.strict("roles"); err != nil {
		return nil, err
	}
	name, err := checkUserName(cmd, cmd.args[0].Value)
	if err != nil {
		return nil, err
	}
	v, _ := cmd.get("roles")
	if arr, ok := v.(bson.A); !ok || len(arr) == 0 {
		return nil, badValue("%s command requires a non-empty \"roles\" array", cmd.name)
	}
	roles, err := s.parseRoles(cmd, "roles", v)
	if err != nil {
		return nil, err
	}
	action := "grantRole"
	if !grant {
		action = "revokeRole"
	}
	if !s.canGrant(c, roles, action) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	// The user is looked up before the roles: a missing user with a missing role is 11
	// (user_management_commands.cpp reads the user's roles, then each role's description).
	u := s.users[userKey{cmd.db, name}]
	if u == nil {
		return nil, fail(11, "UserNotFound", "Could not find user \"%s\" for db \"%s\"", name, cmd.db)
	}
	if err := s.rolesExist(roles); err != nil {
		return nil, err
	}
	before := u.snapshot()
	for _, r := range roles {
		has := slices.Contains(u.roles, r)
		switch {
		case grant && !has:
			u.roles = append(u.roles, r)
		case !grant && has:
			u.roles = slices.DeleteFunc(u.roles, func(x Role) bool { return x == r })
		}
	}
	u.gen++
	s.record(c, cmd.name, &before, u, []string{"roles"}, false)
	return bson.D{}, nil
}

func (s *Server) usersInfo(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict("showCredentials", "showCustomData", "showPrivileges", "showAuthenticationRestrictions", "filter"); err != nil {
		return nil, err
	}
	if _, ok := cmd.get("showCustomData"); ok && parseVersion(s.opts.Version)[0] < 5 {
		// showCustomData is new in 5.0; the 4.4 parser refuses any field it does not know.
		return nil, badValue("\"showCustomData\" is not a valid argument to usersInfo")
	}
	flag := func(k string, def bool) bool {
		v, ok := cmd.get(k)
		if !ok {
			return def
		}
		b, _ := v.(bool)
		return b
	}
	showCreds, showCustom := flag("showCredentials", false), flag("showCustomData", true)
	showPrivs, showRestr := flag("showPrivileges", false), flag("showAuthenticationRestrictions", false)
	var keys []userKey
	all := false
	var want func(userKey) bool
	switch v := cmd.args[0].Value.(type) {
	case int32, int64, float64:
		all = true
		want = func(k userKey) bool { return k.db == cmd.db }
	case bson.D:
		if len(v) == 1 && v[0].Key == "forAllDBs" && v[0].Value == true {
			all = true
			want = func(userKey) bool { return true }
			break
		}
		k, err := userNameDoc(v)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	case string:
		keys = append(keys, userKey{cmd.db, v})
	case bson.A:
		for _, e := range v {
			switch x := e.(type) {
			case string:
				keys = append(keys, userKey{cmd.db, x})
			case bson.D:
				k, err := userNameDoc(x)
				if err != nil {
					return nil, err
				}
				keys = append(keys, k)
			default:
				return nil, badValue("UserName must be either a string or an object")
			}
		}
	default:
		return nil, badValue("UserName must be either a string or an object")
	}
	if all && (showPrivs || showRestr) {
		return nil, fail(20, "IllegalOperation", "Privilege or restriction details require exact-match usersInfo queries")
	}
	if fv, ok := cmd.get("filter"); ok {
		fd, isDoc := fv.(bson.D)
		if !isDoc {
			return nil, typeMismatch(cmd.name, "filter", typeName(fv), "object")
		}
		if len(fd) > 0 {
			return nil, badValue("the emulator does not implement usersInfo filters")
		}
	}
	if all {
		for k := range s.users {
			if want(k) {
				keys = append(keys, k)
			}
		}
	}
	// Every user of every database needs viewUser on the cluster; all users of one database,
	// viewUser on it, whether or not it has any; named users, viewUser on each one's database
	// unless it is the caller (user_management_commands.cpp, usersInfo's auth check).
	switch {
	case isForAllDBs(cmd.args[0].Value):
		if !s.can(c, "viewUser", "", true) {
			return nil, unauthorized(cmd.name, cmd.db)
		}
	case all:
		if !s.can(c, "viewUser", cmd.db, false) {
			return nil, unauthorized(cmd.name, cmd.db)
		}
	default:
		for _, k := range keys {
			self := c.auth != nil && c.auth.key == k
			if !self && !s.can(c, "viewUser", k.db, false) {
				return nil, unauthorized(cmd.name, cmd.db)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].db < keys[j].db
	})
	out := bson.A{}
	for _, k := range keys {
		u := s.users[k]
		if u == nil {
			continue // a missing user is not an error (case 16)
		}
		roles := bson.A{}
		for _, r := range u.roles {
			roles = append(roles, bson.D{{Key: "role", Value: r.Role}, {Key: "db", Value: r.DB}})
		}
		d := bson.D{{Key: "_id", Value: u.db + "." + u.name}, {Key: "userId", Value: bson.Binary{Subtype: 4, Data: u.id[:]}},
			{Key: "user", Value: u.name}, {Key: "db", Value: u.db}}
		if showCustom && u.customData != nil {
			d = append(d, bson.E{Key: "customData", Value: u.customData})
		}
		d = append(d, bson.E{Key: "roles", Value: roles})
		if showCreds {
			cd := bson.D{}
			for _, m := range u.mechanisms {
				sc := u.creds[m]
				cd = append(cd, bson.E{Key: m, Value: bson.D{{Key: "iterationCount", Value: int32(sc.Iters)},
					{Key: "salt", Value: b64([]byte(sc.Salt))}, {Key: "storedKey", Value: b64(sc.StoredKey)},
					{Key: "serverKey", Value: b64(sc.ServerKey)}}})
			}
			d = append(d, bson.E{Key: "credentials", Value: cd})
		}
		if showPrivs {
			pa := bson.A{}
			for _, p := range mergePrivileges(s.privilegesOf(u.roles)) {
				pa = append(pa, p.doc())
			}
			d = append(d, bson.E{Key: "inheritedRoles", Value: roles}, bson.E{Key: "inheritedPrivileges", Value: pa})
		}
		if showPrivs || showRestr {
			// One array per restricted role, direct or inherited (authorization_backend_local.cpp,
			// resolveRoles).
			inh := bson.A{}
			for _, cr := range s.restrictedRoles(u.roles) {
				set := bson.A{}
				for _, r := range cr.restrictions {
					set = append(set, r.doc())
				}
				inh = append(inh, set)
			}
			d = append(d, bson.E{Key: "inheritedAuthenticationRestrictions", Value: inh})
		}
		if showRestr {
			ra := bson.A{}
			for _, r := range u.restrictions {
				ra = append(ra, r.doc())
			}
			d = append(d, bson.E{Key: "authenticationRestrictions", Value: ra})
		}
		d = append(d, bson.E{Key: "mechanisms", Value: u.mechanisms})
		out = append(out, d)
	}
	return bson.D{{Key: "users", Value: out}}, nil
}

func isForAllDBs(v any) bool {
	d, ok := v.(bson.D)
	return ok && len(d) == 1 && d[0].Key == "forAllDBs" && d[0].Value == true
}

func userNameDoc(d bson.D) (userKey, *cmdError) {
	var k userKey
	for _, e := range d {
		s, ok := e.Value.(string)
		if !ok {
			return k, badValue("UserName must contain a string field named: user and db")
		}
		switch e.Key {
		case "user":
			k.name = s
		case "db":
			k.db = s
		}
	}
	if k.name == "" || k.db == "" {
		return k, badValue("UserName must contain a string field named: user and db")
	}
	return k, nil
}

func (s *Server) rolesInfo(c *conn, cmd *command) (bson.D, *cmdError) {
	if !s.can(c, "viewRole", cmd.db, false) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	var want []Role
	switch v := cmd.args[0].Value.(type) {
	case string:
		want = append(want, Role{v, cmd.db})
	case bson.D:
		raw, _ := bson.Marshal(v)
		var r Role
		bson.Unmarshal(raw, &r)
		want = append(want, r)
	case int32, int64, float64:
		for k := range s.roles {
			if k.db == cmd.db {
				want = append(want, Role{k.name, k.db})
			}
		}
		if b, _ := cmd.get("showBuiltinRoles"); b == true {
			for _, n := range dbRoles {
				want = append(want, Role{n, cmd.db})
			}
			if cmd.db == "admin" {
				for _, n := range adminRoles {
					want = append(want, Role{n, cmd.db})
				}
			}
		}
	default:
		return nil, badValue("rolesInfo argument must be a string, an object, or 1")
	}
	out := bson.A{}
	for _, r := range want {
		isBuiltin := builtin(r)
		cr := s.roles[userKey{r.DB, r.Role}]
		if !isBuiltin && cr == nil {
			continue // a missing role gives an empty list
		}
		sub := bson.A{}
		if cr != nil {
			for _, x := range cr.roles {
				sub = append(sub, bson.D{{Key: "role", Value: x.Role}, {Key: "db", Value: x.DB}})
			}
		}
		out = append(out, bson.D{{Key: "role", Value: r.Role}, {Key: "db", Value: r.DB},
			{Key: "isBuiltin", Value: isBuiltin}, {Key: "roles", Value: sub}, {Key: "inheritedRoles", Value: sub}})
	}
	return bson.D{{Key: "roles", Value: out}}, nil
}

func (s *Server) createRole(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict("privileges", "roles", "authenticationRestrictions"); err != nil {
		return nil, err
	}
	name, ok := cmd.args[0].Value.(string)
	if !ok || name == "" {
		return nil, badValue("Role name must be a non-empty string")
	}
	if !s.can(c, "createRole", cmd.db, false) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	key := userKey{cmd.db, name}
	if s.roles[key] != nil || builtin(Role{name, cmd.db}) {
		return nil, fail(51002, "Location51002", "Role \"%s@%s\" already exists", name, cmd.db)
	}
	cr := &customRole{name: name, db: cmd.db}
	pv, _ := cmd.get("privileges")
	parr, ok := pv.(bson.A)
	if !ok {
		return nil, badValue("createRole requires a privileges array")
	}
	for _, p := range parr {
		raw, _ := bson.Marshal(p)
		var doc struct {
			Resource struct {
				DB          *string `bson:"db"`
				Collection  *string `bson:"collection"`
				Cluster     bool    `bson:"cluster"`
				AnyResource bool    `bson:"anyResource"`
			} `bson:"resource"`
			Actions []string `bson:"actions"`
		}
		if err := bson.Unmarshal(raw, &doc); err != nil {
			return nil, badValue("invalid privilege: %v", err)
		}
		pr := privilege{Cluster: doc.Resource.Cluster, AnyResource: doc.Resource.AnyResource, Actions: doc.Actions}
		if doc.Resource.DB != nil {
			pr.DB = *doc.Resource.DB
		}
		cr.privileges = append(cr.privileges, pr)
	}
	if rv, ok := cmd.get("roles"); ok {
		rs, err := s.parseRoles(cmd, "roles", rv)
		if err != nil {
			return nil, err
		}
		if err := s.rolesExist(rs); err != nil {
			return nil, err
		}
		cr.roles = rs
	}
	if rv, ok := cmd.get("authenticationRestrictions"); ok {
		if !s.can(c, "setAuthenticationRestriction", cmd.db, false) {
			return nil, unauthorized(cmd.name, cmd.db)
		}
		rs, err := parseRestrictions(cmd, rv)
		if err != nil {
			return nil, err
		}
		cr.restrictions = rs
	}
	s.roles[key] = cr
	return bson.D{}, nil
}

func (s *Server) dropRole(c *conn, cmd *command) (bson.D, *cmdError) {
	name, _ := cmd.args[0].Value.(string)
	if !s.can(c, "dropRole", cmd.db, false) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	key := userKey{cmd.db, name}
	if s.roles[key] == nil {
		return nil, fail(31, "RoleNotFound", "Could not find role: %s@%s", name, cmd.db)
	}
	delete(s.roles, key)
	dropped := Role{name, cmd.db}
	var holders []userKey
	for k, u := range s.users {
		if slices.Contains(u.roles, dropped) {
			holders = append(holders, k)
		}
	}
	slices.SortFunc(holders, func(a, b userKey) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.db, b.db)
	})
	for _, k := range holders {
		u := s.users[k]
		before := u.snapshot()
		u.roles = slices.DeleteFunc(u.roles, func(r Role) bool { return r == dropped })
		s.record(c, cmd.name, &before, u, []string{"roles"}, false)
	}
	return bson.D{}, nil
}

// view is the user as the member c is connected to sees it: the stored user, or on a router
// its cached copy while the cache interval lasts. Caller holds s.mu.
func (s *Server) view(c *conn, key userKey) *user {
	u := s.users[key]
	if c.m.role != Mongos {
		return u
	}
	if cu, ok := c.m.cache[key]; ok && time.Since(cu.at) < s.opts.UserCacheInvalidation {
		return cu.u
	}
	if u == nil {
		return nil // a missing user is looked up again next time
	}
	cp := u.clone()
	c.m.cache[key] = cachedUser{u: cp, at: time.Now()}
	return cp
}

// invalidateUserCache empties the member's user cache; it needs invalidateUserCache on the
// cluster (userAdminAnyDatabase, hostManager, root).
func (s *Server) invalidateUserCache(c *conn, cmd *command) (bson.D, *cmdError) {
	if err := cmd.strict(); err != nil {
		return nil, err
	}
	if !s.can(c, "invalidateUserCache", "", true) {
		return nil, unauthorized(cmd.name, cmd.db)
	}
	clear(c.m.cache)
	return bson.D{}, nil
}

// authenticate is the MONGODB-X509 login (authentication_commands.cpp, _authenticateX509): on
// $external, as the user the client certificate's subject names (RFC 2253), which must exist
// there; a user field, when given, must be that subject.
func (s *Server) authenticate(c *conn, cmd *command) (bson.D, *cmdError) {
	mech, _ := cmd.get("mechanism")
	if mech != "MONGODB-X509" {
		return nil, fail(2, "BadValue", "Unsupported mechanism for authenticate: %v", mech)
	}
	if cmd.db != "$external" {
		return nil, fail(17, "ProtocolError", "X.509 authentication must always use the $external database.")
	}
	tc, ok := c.nc.(*tls.Conn)
	if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
		return nil, authFailed()
	}
	subject := distinguishedName(tc.ConnectionState().PeerCertificates[0].RawSubject)
	if u, ok := cmd.get("user"); ok && u != subject {
		return nil, fail(18, "AuthenticationFailed", "There is no x.509 client certificate matching the user.")
	}
	key := userKey{"$external", subject}
	u := s.view(c, key)
	if u == nil {
		return nil, fail(11, "UserNotFound", "Could not find user \"%s\" for db \"$external\"", subject)
	}
	if !s.loginAllowed(u, c.nc.RemoteAddr(), c.nc.LocalAddr()) {
		return nil, authFailed()
	}
	c.auth = &session{key: key, userID: u.id, gen: u.gen}
	return bson.D{{Key: "dbname", Value: "$external"}, {Key: "user", Value: subject}}, nil
}
