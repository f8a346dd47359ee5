package connector_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"mongobot/connector/mongotest"
)

// The differential suite sends the same commands to the emulator and to FerretDB (and, with
// MONGODB_URI, to a real server) and compares the replies field by field: codes, codeNames,
// the shape of usersInfo documents, what a login does afterwards. Every difference must be
// listed, with its reason, in mongotest.Differences; a listed difference that no longer shows
// fails too, so the table says exactly where each stands.

// step is one command, or one login, of a scenario.
type step struct {
	db  string
	cmd bson.D
	// login, when set, logs in as user:password (on db) instead, with mech ("" lets the driver
	// choose), and records ok or the error code.
	login, password, mech string
}

// scenario is a named list of steps. Names of users in it hold "U", replaced by a name unique
// to the run (so a real server's earlier runs do not interfere).
type scenario struct {
	name  string
	steps []step
}

func cmd(db string, d bson.D) step { return step{db: db, cmd: d} }

func login(user, pw, db, mech string) step {
	return step{login: user, password: pw, db: db, mech: mech}
}

var scenarios = []scenario{
	{"createUser an existing user", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
	}},
	{"createUser without roles", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}}),
	}},
	{"createUser with an empty or wrong password", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: ""}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: true}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "createUser", Value: ""}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
	}},
	{"createUser with a role", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "read"}, {Key: "db", Value: "shop"}}}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
	}},
	{"createUser with customData", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "customData", Value: bson.D{{Key: "team", Value: "a"}}}}),
	}},
	{"createUser with an empty restriction document", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "authenticationRestrictions", Value: bson.A{bson.D{}}}}),
	}},
	{"createUser with an unknown field", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "colour", Value: "red"}}),
	}},
	{"usersInfo document shape", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: bson.D{{Key: "user", Value: "U"}, {Key: "db", Value: "admin"}}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}, {Key: "showCredentials", Value: true}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}, {Key: "showAuthenticationRestrictions", Value: true}}),
	}},
	{"usersInfo of a missing user", []step{
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: nil}}),
	}},
	{"usersInfo of everyone with details", []step{
		cmd("admin", bson.D{{Key: "usersInfo", Value: bson.D{{Key: "forAllDBs", Value: true}}}, {Key: "showPrivileges", Value: true}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: 1}, {Key: "showAuthenticationRestrictions", Value: true}}),
	}},
	{"usersInfo with writeConcern", []step{
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}, {Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}}}}),
	}},
	{"updateUser with nothing to update", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}}),
	}},
	{"updateUser of a missing user", []step{
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "pwd", Value: "pw-2"}}),
	}},
	{"a new password rebuilds the mechanisms", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-1"}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
		login("U", "pw-1", "admin", "SCRAM-SHA-256"),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "pwd", Value: "pw-2"}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
		login("U", "pw-2", "admin", "SCRAM-SHA-256"),
	}},
	{"a new password with mechanisms keeps them", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-1"}}}),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "pwd", Value: "pw-2"}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-1"}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
		login("U", "pw-2", "admin", "SCRAM-SHA-1"),
		login("U", "pw-2", "admin", "SCRAM-SHA-256"),
		login("U", "pw-1", "admin", ""),
	}},
	{"mechanisms can only narrow without a password", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-1"}}}),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}}}),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "mechanisms", Value: bson.A{}}}),
	}},
	{"dropUser", []step{
		cmd("admin", bson.D{{Key: "dropUser", Value: "U"}}),
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
		login("U", "pw-1", "admin", ""),
		cmd("admin", bson.D{{Key: "dropUser", Value: "U"}, {Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}}}}),
		login("U", "pw-1", "admin", ""),
	}},
	{"grant to a missing user a missing role", []step{
		cmd("admin", bson.D{{Key: "grantRolesToUser", Value: "U"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "no_such_role"}, {Key: "db", Value: "shop"}}}}}),
		cmd("admin", bson.D{{Key: "revokeRolesFromUser", Value: "U"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "no_such_role"}, {Key: "db", Value: "shop"}}}}}),
	}},
	{"killAllSessions", []step{
		cmd("admin", bson.D{{Key: "killAllSessions", Value: bson.A{bson.D{{Key: "user", Value: "U"}, {Key: "db", Value: "admin"}}}}}),
		cmd("admin", bson.D{{Key: "killAllSessions", Value: bson.A{}}, {Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}}}}),
	}},
	{"connectionStatus with privileges", []step{
		cmd("admin", bson.D{{Key: "connectionStatus", Value: 1}, {Key: "showPrivileges", Value: true}}),
	}},
	{"invalidateUserCache", []step{
		cmd("admin", bson.D{{Key: "invalidateUserCache", Value: 1}}),
	}},
	{"roles are a set", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "grantRolesToUser", Value: "U"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "read"}, {Key: "db", Value: "shop"}}, bson.D{{Key: "role", Value: "read"}, {Key: "db", Value: "shop"}}}}}),
		cmd("admin", bson.D{{Key: "revokeRolesFromUser", Value: "U"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: "shop"}}}}}),
		cmd("admin", bson.D{{Key: "grantRolesToUser", Value: "U"}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "no_such_role"}, {Key: "db", Value: "shop"}}}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}}),
	}},
	{"restrictions are kept as given", []step{
		cmd("admin", bson.D{{Key: "createUser", Value: "U"}, {Key: "pwd", Value: "pw-1"}, {Key: "roles", Value: bson.A{}},
			{Key: "authenticationRestrictions", Value: bson.A{bson.D{{Key: "serverAddress", Value: bson.A{"127.0.0.1"}}, {Key: "clientSource", Value: bson.A{}}}}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}, {Key: "showAuthenticationRestrictions", Value: true}}),
		login("U", "pw-1", "admin", ""),
		cmd("admin", bson.D{{Key: "updateUser", Value: "U"}, {Key: "authenticationRestrictions", Value: bson.A{}}}),
		cmd("admin", bson.D{{Key: "usersInfo", Value: "U"}, {Key: "showAuthenticationRestrictions", Value: true}}),
		login("U", "pw-1", "admin", ""),
	}},
	{"an unknown command", []step{
		cmd("admin", bson.D{{Key: "noSuchCommand", Value: 1}}),
	}},
	{"buildInfo and hello", []step{
		cmd("admin", bson.D{{Key: "hello", Value: 1}, {Key: "saslSupportedMechs", Value: "admin.admin"}}),
		cmd("admin", bson.D{{Key: "buildInfo", Value: 1}}),
	}},
}

// target is one deployment the suite runs on.
type target struct {
	kind string // "emulator", "ferretdb", "mongodb"
	uri  string
	// userURI makes a connection string for another user.
	userURI func(user, pw, db string) string
}

// outcome flattens every reply of a scenario into path → value.
type outcome map[string]string

func runScenario(t *testing.T, tg target, sc scenario, unique string) outcome {
	t.Helper()
	c := rawClient(t, tg.uri)
	out := outcome{}
	name := func(s string) string { return strings.ReplaceAll(s, "U", unique) }
	defer func() { // a real server keeps what the scenario made
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Database("admin").RunCommand(ctx, bson.D{{Key: "dropUser", Value: unique}})
	}()
	for i, st := range sc.steps {
		prefix := fmt.Sprintf("%d.", i)
		if st.login != "" {
			out[prefix+"login"] = loginResult(t, tg, name(st.login), st.password, st.db, st.mech)
			continue
		}
		d := make(bson.D, len(st.cmd))
		copy(d, st.cmd)
		if s, ok := d[0].Value.(string); ok {
			d[0].Value = name(s)
		}
		raw, err := c.Database(st.db).RunCommand(ctx(t), d).Raw()
		if err != nil {
			var ce mongo.CommandError
			if !errors.As(err, &ce) {
				out[prefix+"error"] = "not a command error"
				continue
			}
			out[prefix+"ok"] = "0"
			out[prefix+"code"] = fmt.Sprint(ce.Code)
			out[prefix+"codeName"] = ce.Name
			continue
		}
		flatten(out, strings.TrimSuffix(prefix, "."), raw, unique)
	}
	return out
}

func loginResult(t *testing.T, tg target, user, pw, db, mech string) string {
	cred := options.Credential{Username: user, Password: pw, AuthSource: db, AuthMechanism: mech}
	o := options.Client().ApplyURI(tg.uri).SetAuth(cred).SetServerSelectionTimeout(2 * time.Second).SetTimeout(5 * time.Second)
	c, err := mongo.Connect(o)
	if err != nil {
		return "client: " + err.Error()
	}
	defer c.Disconnect(context.Background())
	err = c.Database(db).RunCommand(ctx(t), bson.D{{Key: "ping", Value: 1}}).Err()
	if err == nil {
		return "ok"
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return fmt.Sprintf("code %d", ce.Code)
	}
	return "failed" // the driver reports authentication failures without the server's code
}

// volatile fields change on every run or every server and are compared by type only, or not
// at all: what they hold is not behaviour.
var volatile = map[string]string{
	"userId": "type", "localTime": "skip", "connectionId": "skip", "$clusterTime": "skip", "operationTime": "skip",
	"credentials": "keys", "gitVersion": "skip", "version": "skip", "versionArray": "skip", "ferretdbVersion": "skip",
	"hosts": "skip", "me": "skip", "primary": "skip", "setName": "skip", "setVersion": "skip", "topologyVersion": "skip",
	"electionId": "skip", "lastWrite": "skip", "maxWireVersion": "skip", "allocator": "skip", "javascriptEngine": "skip",
	"sysInfo": "skip", "openssl": "skip", "buildEnvironment": "skip", "storageEngines": "skip", "debug": "skip",
	"maxBsonObjectSize": "skip", "bits": "skip", "modules": "skip", "errmsg": "skip", "isImplicitDefaultMajorityWC": "skip",
	"authenticatedUserPrivileges": "skip", "authenticatedUserRoles": "skip", "ferretdbFeatures": "skip",
}

func flatten(out outcome, path string, raw bson.Raw, unique string) {
	elems, _ := raw.Elements()
	for _, e := range elems {
		key := e.Key()
		p := path + "." + key
		switch volatile[key] {
		case "skip":
			continue
		case "type":
			out[p] = "<" + e.Value().Type.String() + ">"
			continue
		case "keys":
			if doc, ok := e.Value().DocumentOK(); ok {
				ks, _ := doc.Elements()
				var names []string
				for _, k := range ks {
					names = append(names, k.Key())
				}
				out[p] = "{" + strings.Join(names, ",") + "}"
			}
			continue
		}
		flattenValue(out, p, e.Value(), unique)
	}
}

func flattenValue(out outcome, p string, v bson.RawValue, unique string) {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		doc := v.Document()
		// The order of fields is part of the answer: a restriction document comes back as it
		// was given, and the connector restores it byte for byte.
		elems, _ := doc.Elements()
		var keys []string
		for _, e := range elems {
			keys = append(keys, e.Key())
		}
		out[p+".$keys"] = strings.Join(keys, ",")
		flatten(out, p, doc, unique)
	case bson.TypeArray:
		vals, _ := v.Array().Values()
		out[p+".#"] = fmt.Sprint(len(vals))
		for i, x := range vals {
			flattenValue(out, fmt.Sprintf("%s.%d", p, i), x, unique)
		}
	case bson.TypeDouble, bson.TypeInt32, bson.TypeInt64:
		// ok is 1.0 on MongoDB and 1 on some servers; a number is a number.
		out[p] = fmt.Sprintf("%v", numberOf(v))
	default:
		out[p] = strings.ReplaceAll(v.String(), unique, "U")
	}
}

func numberOf(v bson.RawValue) float64 {
	switch v.Type {
	case bson.TypeDouble:
		return v.Double()
	case bson.TypeInt32:
		return float64(v.Int32())
	}
	return float64(v.Int64())
}

func TestDifferential(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	f, err := mongotest.StartFerretDB(t.TempDir())
	if err != nil {
		t.Fatalf("FerretDB: %v", err)
	}
	t.Cleanup(f.Close)
	targets := []target{{kind: "emulator", uri: emu.URI(), userURI: emu.UserURI}, {kind: "ferretdb", uri: f.URI(), userURI: f.UserURI}}
	real := os.Getenv("MONGODB_URI")
	if real != "" {
		targets = append(targets, target{kind: "mongodb", uri: real})
	} else {
		t.Log("MONGODB_URI is not set: the emulator and FerretDB are compared with each other and the table says which one departs from MongoDB; with a real server each is compared with it")
	}
	results := map[string]map[string]outcome{} // scenario → kind → outcome
	for _, sc := range scenarios {
		results[sc.name] = map[string]outcome{}
		for _, tg := range targets {
			b := make([]byte, 4)
			rand.Read(b)
			results[sc.name][tg.kind] = runScenario(t, tg, sc, "d"+hex.EncodeToString(b))
		}
	}
	pairs := [][2]string{{"emulator", "ferretdb"}}
	if real != "" {
		pairs = [][2]string{{"emulator", "mongodb"}, {"ferretdb", "mongodb"}}
	}
	used := map[int]bool{}
	for _, sc := range scenarios {
		for _, pair := range pairs {
			a, b := results[sc.name][pair[0]], results[sc.name][pair[1]]
			var unlisted []string
			for _, p := range unionKeys(a, b) {
				if a[p] == b[p] {
					continue
				}
				i := explained(sc.name, p, pair)
				if i < 0 {
					unlisted = append(unlisted, fmt.Sprintf("%s: %s %s, %s %s", p, pair[0], orNone(a[p]), pair[1], orNone(b[p])))
					continue
				}
				used[i] = true
			}
			if len(unlisted) > 0 {
				t.Errorf("%q: %s and %s differ where mongotest.Differences lists nothing:\n\t%s", sc.name, pair[0], pair[1], strings.Join(unlisted, "\n\t"))
			}
		}
	}
	for i, d := range mongotest.Differences {
		if !used[i] && applies(d, pairs) {
			t.Errorf("mongotest.Differences lists %q, %s (%s) but it no longer shows: remove it", d.Scenario, d.Field, d.Server)
		}
	}
	printTable(t, results, pairs)
}

// explained returns the index of the table entry that explains a difference at path p, or -1.
func explained(scenario, p string, pair [2]string) int {
	// "0.users.0.roles.#" is covered by a Field "0.users.0.roles".
	for i, d := range mongotest.Differences {
		path, field := p, d.Field
		if rest, ok := strings.CutPrefix(field, "*."); ok { // any step
			_, path, _ = strings.Cut(p, ".")
			field = rest
		}
		if d.Scenario != "*" && d.Scenario != scenario || !(path == field || strings.HasPrefix(path, field+".")) {
			continue
		}
		if strings.Contains(d.Server, pair[0]) || strings.Contains(d.Server, pair[1]) {
			return i
		}
	}
	return -1
}

// applies reports whether entry d should show in the pairs compared: an entry naming both
// servers shows no difference between them.
func applies(d mongotest.Difference, pairs [][2]string) bool {
	for _, p := range pairs {
		if strings.Contains(d.Server, p[0]) != strings.Contains(d.Server, p[1]) {
			return true
		}
	}
	return false
}

func orNone(v string) string {
	if v == "" {
		return "(absent)"
	}
	return v
}

func unionKeys(a, b outcome) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []outcome{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// printTable logs the differences as they stand, for the test output and the report.
func printTable(t *testing.T, results map[string]map[string]outcome, pairs [][2]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "differences (%s):\n", pairsString(pairs))
	for _, d := range mongotest.Differences {
		fmt.Fprintf(&b, "  %-48s %-28s %-9s %s\n", d.Scenario, d.Field, d.Server, d.Reason)
	}
	t.Log(b.String())
}

func pairsString(pairs [][2]string) string {
	var s []string
	for _, p := range pairs {
		s = append(s, p[0]+" vs "+p[1])
	}
	return strings.Join(s, ", ")
}
