package mongotest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const (
	mechSHA1   = "SCRAM-SHA-1"
	mechSHA256 = "SCRAM-SHA-256"
)

// user is a stored user. Only SCRAM keys are kept, as MongoDB does: no password.
type user struct {
	name, db     string
	id           [16]byte
	roles        []Role
	customData   bson.Raw // nil when absent
	restrictions []Restriction
	mechanisms   []string
	creds        map[string]scram.StoredCredentials
	gen          uint64 // bumped on every change, so sessions re-validate
	pwdVersion   int    // how many passwords the user has had: 1 at creation
}

// Restriction is one authenticationRestrictions document: the user may log in when, for at
// least one document, each list it has contains the address (client's or server's), given as
// an IP address or a CIDR range. A nil list is absent; a present empty list ([]) matches no
// address (address_restriction.h: a CIDR set that contains nothing).
type Restriction struct {
	ClientSource  []string
	ServerAddress []string
	given         bson.D // the document as the command gave it, which the server stores as is
}

// doc is the document as stored and reported: as given, or the lists it has, empty ones too.
func (r Restriction) doc() bson.D {
	if r.given != nil {
		return r.given
	}
	d := bson.D{}
	if r.ClientSource != nil {
		d = append(d, bson.E{Key: "clientSource", Value: r.ClientSource})
	}
	if r.ServerAddress != nil {
		d = append(d, bson.E{Key: "serverAddress", Value: r.ServerAddress})
	}
	return d
}

// clone is a deep copy: what a router caches.
func (u *user) clone() *user {
	cp := *u
	cp.roles = slices.Clone(u.roles)
	cp.restrictions = slices.Clone(u.restrictions)
	cp.mechanisms = slices.Clone(u.mechanisms)
	cp.creds = maps.Clone(u.creds)
	return &cp
}

func newUser(name, db, pwd string, roles []Role, mechs []string) (*user, error) {
	u := &user{name: name, db: db, roles: roles}
	rand.Read(u.id[:])
	if err := u.setPassword(pwd, mechs); err != nil {
		return nil, err
	}
	return u, nil
}

// setPassword derives fresh SCRAM credentials for mechs (default both), with new salts.
func (u *user) setPassword(pwd string, mechs []string) error {
	if len(mechs) == 0 {
		mechs = []string{mechSHA1, mechSHA256}
	}
	creds := map[string]scram.StoredCredentials{}
	for _, m := range mechs {
		salt := make([]byte, 16)
		rand.Read(salt)
		kf := scram.KeyFactors{Salt: string(salt), Iters: 15000}
		if m == mechSHA1 {
			kf.Iters = 10000
		}
		c, err := deriveCredentials(u.name, pwd, m, kf)
		if err != nil {
			return err
		}
		creds[m] = c
	}
	u.mechanisms = slices.Clone(mechs)
	u.creds = creds
	u.pwdVersion++
	return nil
}

// deriveCredentials computes the stored SCRAM credentials of a password for one mechanism.
func deriveCredentials(name, pwd, mech string, kf scram.KeyFactors) (scram.StoredCredentials, error) {
	var (
		client *scram.Client
		err    error
	)
	switch mech {
	case mechSHA1:
		// MongoDB's SCRAM-SHA-1 uses hex(md5("user:mongo:pwd")) as the password, unprepped.
		sum := md5.Sum([]byte(name + ":mongo:" + pwd))
		client, err = scram.SHA1.NewClientUnprepped(name, hex.EncodeToString(sum[:]), "")
	case mechSHA256:
		client, err = scram.SHA256.NewClient(name, pwd, "")
	default:
		return scram.StoredCredentials{}, fmt.Errorf("unknown mechanism %q", mech)
	}
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	return client.GetStoredCredentialsWithError(kf)
}

// saslState is a SCRAM conversation in progress on a connection.
type saslState struct {
	conv      *scram.ServerConversation
	db        string
	mechanism string
	skipEmpty bool
	finished  bool
}

// clientFirstUser extracts the user name of a SCRAM client-first message ("n,,n=user,r=...").
func clientFirstUser(msg string) string {
	for _, f := range strings.Split(msg, ",") {
		if v, ok := strings.CutPrefix(f, "n="); ok {
			return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(v)
		}
	}
	return ""
}

// restrictionsMet applies MongoDB's rule: the user may log in when at least one document is
// met, and a document is met when each of its lists contains the address.
func restrictionsMet(rs []Restriction, client, server net.Addr) bool {
	if len(rs) == 0 {
		return true
	}
	for _, r := range rs {
		if (r.ClientSource == nil || addrIn(client, r.ClientSource)) &&
			(r.ServerAddress == nil || addrIn(server, r.ServerAddress)) {
			return true
		}
	}
	return false
}

func addrIn(a net.Addr, list []string) bool {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, s := range list {
		if _, n, err := net.ParseCIDR(s); err == nil && n.Contains(ip) {
			return true
		}
		if other := net.ParseIP(s); other != nil && other.Equal(ip) {
			return true
		}
	}
	return false
}

func validAddress(s string) bool {
	if _, _, err := net.ParseCIDR(s); err == nil {
		return true
	}
	return net.ParseIP(s) != nil
}

// privilege is one resource and the actions allowed on it.
type privilege struct {
	DB          string // with Collection "", any collection of DB; DB "" means every database
	Cluster     bool
	AnyResource bool
	Actions     []string
}

func (p privilege) doc() bson.D {
	var res bson.D
	switch {
	case p.AnyResource:
		res = bson.D{{Key: "anyResource", Value: true}}
	case p.Cluster:
		res = bson.D{{Key: "cluster", Value: true}}
	default:
		res = bson.D{{Key: "db", Value: p.DB}, {Key: "collection", Value: ""}}
	}
	return bson.D{{Key: "resource", Value: res}, {Key: "actions", Value: p.Actions}}
}

var (
	readActions      = []string{"find", "listCollections", "listIndexes", "collStats", "dbStats"}
	writeActions     = []string{"insert", "update", "remove", "createCollection", "dropCollection", "createIndex"}
	dbAdminActions   = []string{"collMod", "compact", "dbStats", "dropDatabase", "enableProfiler", "listCollections", "reIndex"}
	userAdminActions = []string{"changeCustomData", "changePassword", "createRole", "createUser", "dropRole",
		"dropUser", "grantRole", "revokeRole", "setAuthenticationRestriction", "viewRole", "viewUser"}
	clusterMonitorActions = []string{"connPoolStats", "getCmdLineOpts", "hostInfo", "inprog", "listDatabases",
		"listSessions", "replSetGetStatus", "serverStatus", "top"}
	hostManagerActions    = []string{"applicationMessage", "flushRouterConfig", "fsync", "invalidateUserCache", "killAnySession", "killop", "logRotate", "setParameter", "shutdown"}
	clusterManagerActions = []string{"addShard", "enableSharding", "listShards", "removeShard", "replSetConfigure", "replSetStateChange"}
)

// dbRoles exist in every database; adminRoles only in admin (reference §2).
var (
	dbRoles    = []string{"read", "readWrite", "dbAdmin", "userAdmin", "dbOwner", "enableSharding"}
	adminRoles = []string{"readAnyDatabase", "readWriteAnyDatabase", "userAdminAnyDatabase", "dbAdminAnyDatabase",
		"clusterMonitor", "hostManager", "clusterManager", "clusterAdmin", "backup", "restore", "root"}
)

func builtin(r Role) bool {
	return slices.Contains(dbRoles, r.Role) || (r.DB == "admin" && slices.Contains(adminRoles, r.Role))
}

// builtinPrivileges follows builtin_roles.yml closely enough for the actions the bot needs.
func builtinPrivileges(r Role) []privilege {
	on := func(db string, a ...[]string) privilege { return privilege{DB: db, Actions: concat(a...)} }
	cluster := func(a ...[]string) privilege { return privilege{Cluster: true, Actions: concat(a...)} }
	switch r.Role {
	case "read":
		return []privilege{on(r.DB, readActions)}
	case "readWrite":
		return []privilege{on(r.DB, readActions, writeActions)}
	case "dbAdmin":
		return []privilege{on(r.DB, dbAdminActions)}
	case "userAdmin":
		return []privilege{on(r.DB, userAdminActions)}
	case "dbOwner":
		return []privilege{on(r.DB, readActions, writeActions, dbAdminActions, userAdminActions)}
	case "enableSharding":
		return []privilege{on(r.DB, []string{"enableSharding"})}
	case "readAnyDatabase":
		return []privilege{on("", readActions), cluster([]string{"listDatabases"})}
	case "readWriteAnyDatabase":
		return []privilege{on("", readActions, writeActions), cluster([]string{"listDatabases"})}
	case "userAdminAnyDatabase":
		return []privilege{on("", userAdminActions), cluster([]string{"authSchemaUpgrade", "invalidateUserCache", "listDatabases", "viewUser"})}
	case "dbAdminAnyDatabase":
		return []privilege{on("", dbAdminActions), cluster([]string{"listDatabases"})}
	case "clusterMonitor":
		return []privilege{cluster(clusterMonitorActions)}
	case "hostManager":
		return []privilege{cluster(hostManagerActions)}
	case "clusterManager":
		return []privilege{cluster(clusterManagerActions)}
	case "clusterAdmin":
		return []privilege{cluster(clusterMonitorActions, hostManagerActions, clusterManagerActions), on("", []string{"dropDatabase"})}
	case "backup", "restore":
		return []privilege{on("", []string{"find"}), cluster([]string{"listDatabases"})}
	case "root":
		// root does not include impersonate (reference §2).
		return []privilege{
			cluster(clusterMonitorActions, hostManagerActions, clusterManagerActions, []string{"authSchemaUpgrade", "viewUser"}),
			on("", readActions, writeActions, dbAdminActions, userAdminActions),
		}
	}
	return nil
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, a := range l {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// customRole is a role made with createRole.
type customRole struct {
	name, db     string
	privileges   []privilege
	roles        []Role
	restrictions []Restriction // must be met too by every user holding the role
}

// restrictedRoles are the custom roles, direct or inherited, that carry restrictions, in a
// stable order. Caller holds s.mu.
func (s *Server) restrictedRoles(roles []Role) []*customRole {
	var out []*customRole
	seen := map[Role]bool{}
	var walk func(Role)
	walk = func(r Role) {
		if seen[r] {
			return
		}
		seen[r] = true
		cr := s.roles[userKey{r.DB, r.Role}]
		if cr == nil {
			return
		}
		if len(cr.restrictions) > 0 {
			out = append(out, cr)
		}
		for _, sub := range cr.roles {
			walk(sub)
		}
	}
	for _, r := range roles {
		walk(r)
	}
	return out
}

// loginAllowed applies the user's restrictions and, as well, those of each of its roles: every
// set must be met (restriction_set.h, RestrictionDocuments is "all of"; User::validateRestrictions
// checks the direct then the inherited ones). Caller holds s.mu.
func (s *Server) loginAllowed(u *user, client, server net.Addr) bool {
	if !restrictionsMet(u.restrictions, client, server) {
		return false
	}
	for _, cr := range s.restrictedRoles(u.roles) {
		if !restrictionsMet(cr.restrictions, client, server) {
			return false
		}
	}
	return true
}

// privilegesOf expands roles, custom ones through their inherited roles. Caller holds s.mu.
func (s *Server) privilegesOf(roles []Role) []privilege {
	var out []privilege
	seen := map[Role]bool{}
	var walk func(Role)
	walk = func(r Role) {
		if seen[r] {
			return
		}
		seen[r] = true
		if builtin(r) {
			out = append(out, builtinPrivileges(r)...)
			return
		}
		if cr := s.roles[userKey{r.DB, r.Role}]; cr != nil {
			out = append(out, cr.privileges...)
			for _, sub := range cr.roles {
				walk(sub)
			}
		}
	}
	for _, r := range roles {
		walk(r)
	}
	return out
}

// allowed reports whether privs allow action on database db (cluster when db is "").
func allowed(privs []privilege, action, db string, onCluster bool) bool {
	for _, p := range privs {
		if !slices.Contains(p.Actions, action) {
			continue
		}
		switch {
		case p.AnyResource:
			return true
		case onCluster:
			if p.Cluster {
				return true
			}
		case !p.Cluster && (p.DB == db || (p.DB == "" && db != "local" && db != "config")):
			return true
		}
	}
	return false
}

// mergePrivileges folds privileges on the same resource together, as connectionStatus shows.
func mergePrivileges(privs []privilege) []privilege {
	var out []privilege
	for _, p := range privs {
		found := false
		for i := range out {
			if out[i].DB == p.DB && out[i].Cluster == p.Cluster && out[i].AnyResource == p.AnyResource {
				out[i].Actions = concat(out[i].Actions, p.Actions)
				found = true
				break
			}
		}
		if !found {
			out = append(out, privilege{DB: p.DB, Cluster: p.Cluster, AnyResource: p.AnyResource, Actions: slices.Clone(p.Actions)})
		}
	}
	for i := range out {
		slices.Sort(out[i].Actions)
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
