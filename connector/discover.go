package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Topologies as discovery reports them.
const (
	TopologyStandalone = "standalone"
	TopologyPrimary    = "replica set primary"
	TopologySecondary  = "replica set secondary"
	TopologyMongos     = "mongos"
)

// ServerInfo is what discovery learns of a deployment.
type ServerInfo struct {
	Version        string `json:"version"`
	VersionArray   []int  `json:"version_array,omitempty"`
	FerretDB       string `json:"ferretdb,omitempty"` // FerretDB's own version, when it is FerretDB
	Topology       string `json:"topology"`
	SetName        string `json:"set_name,omitempty"`
	MaxWireVersion int    `json:"max_wire_version"`
	Atlas          bool   `json:"atlas,omitempty"`
	Privileges     Privileges
}

// Privileges is the self-check from connectionStatus {showPrivileges: true}.
type Privileges struct {
	// Reported is false when the server reports no privileges at all (FerretDB, which has no
	// authorization): the checks below then mean "unknown", not "no".
	Reported bool          `json:"reported"`
	User     string        `json:"user,omitempty"` // the bot's own account, user@db
	Roles    []Role        `json:"roles,omitempty"`
	Actions  []ActionCheck `json:"actions"`
}

// ActionCheck says whether the bot's account can perform one bot action, and where.
type ActionCheck struct {
	Action string `json:"action"`
	// Allowed: "all databases"; "limited: grantRole only on shop" when some database
	// privileges are held only on some databases; "privileges not reported"; "" when not.
	Allowed string `json:"allowed,omitempty"`
	// Missing lists the privileges lacking, as "action on resource".
	Missing []string `json:"missing,omitempty"`
}

// need is one privilege a bot action requires.
type need struct {
	action  string
	cluster bool // on the cluster resource; otherwise on the target database
}

// Requirements per bot action (reference §3–5). Database privileges are checked for the
// database the action targets: the user's, and for roles the role's.
var requirements = []struct {
	action string
	needs  []need
}{
	// Listing every database's users (usersInfo {forAllDBs: true}) needs viewUser on the
	// cluster resource, which userAdminAnyDatabase and root have and userAdmin on admin has not
	// (user_management_commands.cpp, usersInfo's checkAuthForOperation).
	{"users", []need{{"viewUser", true}}},
	{"users <db>", []need{{"viewUser", false}}},
	{"rotate-password", []need{{"changePassword", false}}},
	{"rotate-password --kill-sessions", []need{{"changePassword", false}, {"killAnySession", true}}},
	// Re-creating needs what createUser needs: createUser on the user's database, grantRole on
	// each role's database, setAuthenticationRestriction when it has restrictions
	// (authorization_checks.cpp, checkAuthForCreateUserCommand); the bot checks those for the
	// user itself before dropping it (CanRecreate). customData needs nothing more.
	{"rotate-password --logout-all", []need{{"viewUser", false}, {"dropUser", false}, {"createUser", false}, {"grantRole", false}, {"setAuthenticationRestriction", false}}},
	{"grant-role", []need{{"viewUser", false}, {"grantRole", false}}},
	{"revoke-role", []need{{"viewUser", false}, {"revokeRole", false}}},
	{"create-readonly-user", []need{{"viewUser", false}, {"createUser", false}, {"grantRole", false}}},
	{"drop-user", []need{{"viewUser", false}, {"dropUser", false}}},
	{"lock-user", []need{{"viewUser", false}, {"setAuthenticationRestriction", false}, {"killAnySession", true}}},
	{"unlock-user", []need{{"viewUser", false}, {"setAuthenticationRestriction", false}}},
}

// ActionNames are the bot actions discovery checks, in its order: another connector kind
// reports on the same list.
func ActionNames() []string {
	out := make([]string, len(requirements))
	for i, r := range requirements {
		out[i] = r.action
	}
	return out
}

type privilegeDoc struct {
	Resource struct {
		DB          *string `bson:"db"`
		Collection  *string `bson:"collection"`
		Cluster     bool    `bson:"cluster"`
		AnyResource bool    `bson:"anyResource"`
	} `bson:"resource"`
	Actions []string `bson:"actions"`
}

// privSet is what an account may do: for each privilege action, the databases it covers (""
// is every normal database), and whether it is held on the cluster.
type privSet struct {
	dbs     map[string]map[string]bool
	cluster map[string]bool
	any     map[string]bool // held on anyResource: every database, local and config too
}

// on reports whether action is held on database db.
func (p privSet) on(action, db string) bool {
	held := p.dbs[action]
	return p.any[action] || held[db] || (held[""] && db != "local" && db != "config")
}

func newPrivSet(privs []privilegeDoc) privSet {
	dbs := map[string]map[string]bool{}
	cluster, anyRes := map[string]bool{}, map[string]bool{}
	for _, p := range privs {
		for _, a := range p.Actions {
			r := p.Resource
			switch {
			case r.AnyResource:
				cluster[a], anyRes[a] = true, true
				addDB(dbs, a, "")
			case r.Cluster:
				cluster[a] = true
			case r.DB != nil && (r.Collection == nil || *r.Collection == ""):
				addDB(dbs, a, *r.DB)
			}
		}
	}
	return privSet{dbs: dbs, cluster: cluster, any: anyRes}
}

// checkPrivileges evaluates the requirements against the account's privileges.
func checkPrivileges(privs []privilegeDoc) []ActionCheck {
	set := newPrivSet(privs)
	dbs, cluster := set.dbs, set.cluster
	var out []ActionCheck
	for _, req := range requirements {
		chk := ActionCheck{Action: req.action}
		var limited []string // database privileges held only on some databases
		var lists []string   // their database lists, to say it once when they all agree
		for _, n := range req.needs {
			if n.cluster {
				if !cluster[n.action] {
					chk.Missing = append(chk.Missing, n.action+" on the cluster")
				}
				continue
			}
			held := dbs[n.action]
			switch {
			case held[""]:
			case len(held) == 0:
				chk.Missing = append(chk.Missing, n.action+" on any database")
			default:
				var list []string
				for db := range held {
					list = append(list, db)
				}
				sort.Strings(list)
				limited = append(limited, n.action+" only on "+strings.Join(list, ", "))
				lists = append(lists, strings.Join(list, ", "))
			}
		}
		switch {
		case len(chk.Missing) > 0:
		case len(limited) == 0:
			chk.Allowed = "all databases"
		case len(slices.Compact(slices.Clone(lists))) == 1 && len(limited) == countDBNeeds(req.needs):
			chk.Allowed = "only on " + lists[0]
		default:
			chk.Allowed = "limited: " + strings.Join(limited, "; ")
		}
		out = append(out, chk)
	}
	return out
}

func countDBNeeds(needs []need) int {
	n := 0
	for _, x := range needs {
		if !x.cluster {
			n++
		}
	}
	return n
}

func addDB(m map[string]map[string]bool, action, db string) {
	if m[action] == nil {
		m[action] = map[string]bool{}
	}
	m[action][db] = true
}

// Discover asks the deployment for its version, topology and the bot account's privileges.
// It caches the version and topology for the checks actions make (FerretDB, server age).
func (m *Mongo) Discover(ctx context.Context) (ServerInfo, error) {
	info := ServerInfo{Atlas: m.atlas}
	var hello struct {
		IsWritablePrimary *bool  `bson:"isWritablePrimary"`
		IsMaster          *bool  `bson:"ismaster"`
		Secondary         bool   `bson:"secondary"`
		SetName           string `bson:"setName"`
		Msg               string `bson:"msg"`
		MaxWireVersion    int    `bson:"maxWireVersion"`
	}
	// hello exists from 4.4.2 (and 5.0); 4.4.0 and 4.4.1 know only isMaster, whose answer
	// has the same fields but ismaster for isWritablePrimary.
	err := m.run(ctx, "admin", bson.D{{Key: "hello", Value: 1}}, &hello, m.name)
	if errors.Is(err, ErrUnsupported) {
		err = m.run(ctx, "admin", bson.D{{Key: "isMaster", Value: 1}}, &hello, m.name)
	}
	if err != nil {
		return info, err
	}
	info.MaxWireVersion, info.SetName = hello.MaxWireVersion, hello.SetName
	primary := (hello.IsWritablePrimary != nil && *hello.IsWritablePrimary) || (hello.IsMaster != nil && *hello.IsMaster)
	switch {
	case hello.Msg == "isdbgrid":
		info.Topology = TopologyMongos
	case hello.SetName != "" && primary:
		info.Topology = TopologyPrimary
	case hello.SetName != "":
		info.Topology = TopologySecondary
	default:
		info.Topology = TopologyStandalone
	}
	// buildInfo after authentication: by default servers refuse it before (reference §1).
	var build struct {
		Version         string  `bson:"version"`
		VersionArray    []int32 `bson:"versionArray"`
		FerretDBVersion string  `bson:"ferretdbVersion"`
	}
	if err := m.run(ctx, "admin", bson.D{{Key: "buildInfo", Value: 1}}, &build, m.name); err != nil {
		return info, err
	}
	info.Version, info.FerretDB = build.Version, build.FerretDBVersion
	for _, v := range build.VersionArray {
		info.VersionArray = append(info.VersionArray, int(v))
	}
	if len(info.VersionArray) == 0 {
		info.VersionArray = parseVersion(build.Version)
	}
	var status struct {
		AuthInfo struct {
			Users []UserRef      `bson:"authenticatedUsers"`
			Roles []Role         `bson:"authenticatedUserRoles"`
			Privs []privilegeDoc `bson:"authenticatedUserPrivileges"`
		} `bson:"authInfo"`
	}
	cmd := bson.D{{Key: "connectionStatus", Value: 1}, {Key: "showPrivileges", Value: true}}
	if err := m.run(ctx, "admin", cmd, &status, m.name); err != nil {
		return info, err
	}
	if len(status.AuthInfo.Users) > 0 {
		info.Privileges.User = status.AuthInfo.Users[0].String()
		if m.x509 {
			// The server's own spelling of the certificate's subject names the account.
			m.mu.Lock()
			m.account = status.AuthInfo.Users[0]
			m.mu.Unlock()
		}
	}
	info.Privileges.Roles = status.AuthInfo.Roles
	// A server that reports no privileges at all for an authenticated account does not do
	// authorization (FerretDB); "none" would be a false alarm.
	info.Privileges.Reported = info.FerretDB == "" && len(status.AuthInfo.Privs) > 0
	if info.Privileges.Reported {
		info.Privileges.Actions = checkPrivileges(status.AuthInfo.Privs)
		if info.Topology == TopologyMongos {
			// Every change is followed by invalidateUserCache on each router (members.go).
			chk := ActionCheck{Action: "any change, on every router at once", Allowed: "all routers"}
			if !newPrivSet(status.AuthInfo.Privs).cluster["invalidateUserCache"] {
				chk.Allowed, chk.Missing = "", []string{"invalidateUserCache on the cluster (without it other routers see a change up to 30 s late)"}
			}
			info.Privileges.Actions = append(info.Privileges.Actions, chk)
		}
	} else {
		for _, r := range requirements {
			info.Privileges.Actions = append(info.Privileges.Actions, ActionCheck{Action: r.action, Allowed: "privileges not reported"})
		}
	}
	m.mu.Lock()
	m.info, m.infoAt = &info, time.Now()
	m.mu.Unlock()
	return info, nil
}

// serverLineTTL is how long a discovery describes the deployment for the journal: a rolling
// upgrade shows in the entries written after it.
const serverLineTTL = 10 * time.Minute

// ServerLine is the one-line description of the deployment ("7.0.14, replica set primary
// (rs0)") from a discovery of the last ten minutes, or "" when there is none: for the journal,
// with no round trip (the caller discovers again when it is "").
func (m *Mongo) ServerLine() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.info == nil || time.Since(m.infoAt) > serverLineTTL {
		return ""
	}
	return m.info.String()
}

// serverInfo returns the cached discovery, discovering once if needed.
func (m *Mongo) serverInfo(ctx context.Context) (ServerInfo, error) {
	m.mu.Lock()
	info := m.info
	m.mu.Unlock()
	if info != nil {
		return *info, nil
	}
	return m.Discover(ctx)
}

func parseVersion(v string) []int {
	var out []int
	for _, p := range strings.SplitN(v, ".", 3) {
		n, err := strconv.Atoi(strings.TrimFunc(p, func(r rune) bool { return r < '0' || r > '9' }))
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// String is one line for people: "7.0.14, replica set primary (rs0)".
func (i ServerInfo) String() string {
	s := i.Version
	if i.FerretDB != "" {
		s = fmt.Sprintf("FerretDB %s (reports MongoDB %s)", i.FerretDB, i.Version)
	}
	s += ", " + i.Topology
	if i.SetName != "" {
		s += " (" + i.SetName + ")"
	}
	if i.Atlas {
		s += ", MongoDB Atlas"
	}
	return s
}

// ownPrivileges asks the server, now, what the bot's account may do; reported is false when
// the server reports no privileges at all (FerretDB, which has no authorization).
func (m *Mongo) ownPrivileges(ctx context.Context) (set privSet, reported bool, err error) {
	var status struct {
		AuthInfo struct {
			Privs []privilegeDoc `bson:"authenticatedUserPrivileges"`
		} `bson:"authInfo"`
	}
	cmd := bson.D{{Key: "connectionStatus", Value: 1}, {Key: "showPrivileges", Value: true}}
	if err := m.run(ctx, "admin", cmd, &status, m.name); err != nil {
		return set, false, err
	}
	return newPrivSet(status.AuthInfo.Privs), len(status.AuthInfo.Privs) > 0, nil
}

// CanRecreate says, before anything is sent and before anyone is asked to approve, whether
// the bot's account can create u again exactly as st describes it after dropping it (a
// --logout-all rotation): createUser on u's database, grantRole on the database of each of
// its roles, and setAuthenticationRestriction when it has restrictions, as the server checks
// for createUser (authorization_checks.cpp, checkAuthForCreateUserCommand). dropUser and
// viewUser are checked too. Without this, an account with userAdmin on admin alone would
// drop a user holding read@shop and then fail to create it.
func (m *Mongo) CanRecreate(ctx context.Context, u UserRef, st UserState) error {
	set, reported, err := m.ownPrivileges(ctx)
	if err != nil || !reported {
		return err // no authorization reported (FerretDB): nothing to check
	}
	var missing []string
	for _, a := range []string{"viewUser", "dropUser", "createUser"} {
		if !set.on(a, u.DB) {
			missing = append(missing, a+" on "+u.DB)
		}
	}
	for _, r := range st.Roles {
		if !set.on("grantRole", r.DB) {
			missing = append(missing, fmt.Sprintf("grantRole on %s (for %s)", r.DB, r))
		}
	}
	if len(st.Restrictions) > 0 && !set.on("setAuthenticationRestriction", u.DB) {
		missing = append(missing, "setAuthenticationRestriction on "+u.DB+" (for its authentication restrictions)")
	}
	if len(missing) == 0 {
		return nil
	}
	missing = slices.Compact(missing)
	return newErr(ErrUnauthorized, "", "--logout-all drops %s and creates it again, and the bot's account on %s could not create it again: it lacks %s. Nothing was changed; rotate without --logout-all, or give the account those privileges",
		u, m.name, strings.Join(missing, ", "))
}
