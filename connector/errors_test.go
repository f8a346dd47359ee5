package connector_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

func codeOf(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// Every mapped server error reaches the caller as its kind, with a sentence and no secret.
func TestErrorsSpeak(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	m := connect(t, server{uri: emu.URI()})
	u := connector.UserRef{User: "app", DB: "admin"}
	_, pw, err := m.CreateUser(ctx(t), "create-user", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{emu.AdminPassword(), pw.Reveal()}
	cases := []struct {
		code int32
		kind error
		cmd  string
	}{
		{11, connector.ErrUserNotFound, "updateUser"},
		{31, connector.ErrRoleNotFound, "grantRolesToUser"},
		{13, connector.ErrUnauthorized, "updateUser"},
		{59, connector.ErrUnsupported, "updateUser"},
		{238, connector.ErrUnsupported, "updateUser"},
		{51003, connector.ErrUserExists, "createUser"},
		{10107, connector.ErrNotPrimary, "updateUser"},
		{8000, connector.ErrAtlas, "updateUser"},
		{50, connector.ErrTimeout, "updateUser"},
		{12345, connector.ErrServer, "updateUser"},
	}
	for _, c := range cases {
		emu.Inject(mongotest.Fault{Command: c.cmd, Code: c.code, Message: "injected", Times: 1})
		switch c.cmd {
		case "createUser":
			_, _, err = m.CreateUser(ctx(t), "create-user", connector.UserRef{User: "other", DB: "admin"}, nil)
		case "grantRolesToUser":
			_, err = m.GrantRole(ctx(t), u, connector.Role{Name: "read", DB: "shop"})
		default:
			_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
		}
		mustKind(t, err, c.kind)
		var e *connector.Error
		errors.As(err, &e)
		if e.Code != c.code {
			t.Errorf("code %d: error carries code %d", c.code, e.Code)
		}
		noLeak(t, secrets, err)
		t.Logf("%d -> %v", c.code, err)
	}
	emu.ClearFaults()

	// The bot's own login fails: AuthenticationFailed, with no password in the text.
	bad := connect(t, server{uri: emu.UserURI("admin", "wrong-password-xyz", "admin")})
	_, err = bad.Discover(ctx(t))
	mustKind(t, err, connector.ErrAuthFailed)
	noLeak(t, []string{"wrong-password-xyz", emu.AdminPassword()}, err)
}

// An account without the privilege gets 13 from the server, mapped; the self-check says which
// actions it lacks before anyone tries.
func TestUnauthorizedAndPrivilegeReport(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{
		{Role: "userAdmin", DB: "shop"}, {Role: "clusterMonitor", DB: "admin"}}})
	m := connect(t, server{uri: emu.URI()})
	info, err := m.Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]connector.ActionCheck{}
	for _, a := range info.Privileges.Actions {
		checks[a.Action] = a
		t.Logf("%-32s allowed=%q missing=%q", a.Action, a.Allowed, a.Missing)
	}
	if c := checks["rotate-password"]; c.Allowed != "only on shop" {
		t.Errorf("rotate-password: %+v", c)
	}
	if c := checks["lock-user"]; c.Allowed != "" || !strings.Contains(strings.Join(c.Missing, ","), "killAnySession on the cluster") {
		t.Errorf("lock-user: %+v", c)
	}
	_, err = m.DropUser(ctx(t), connector.UserRef{User: "admin", DB: "admin"}, nil)
	mustKind(t, err, connector.ErrUnauthorized)
	// Partly limited: createUser everywhere would not make create-readonly-user "only on".
	emu3 := startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{
		{Role: "userAdmin", DB: "shop"}, {Role: "userAdmin", DB: "app"}, {Role: "read", DB: "admin"}}})
	info3, err := connect(t, server{uri: emu3.URI()}).Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := info3.Privileges.Actions[1]; c.Allowed != "only on app, shop" {
		t.Errorf("two databases: %+v", c)
	}

	// The account TESTING.md recommends: all user admin, but no killAnySession.
	emu2 := startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{
		{Role: "userAdminAnyDatabase", DB: "admin"}, {Role: "clusterMonitor", DB: "admin"}}})
	info, err = connect(t, server{uri: emu2.URI()}).Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range info.Privileges.Actions {
		needsKill := a.Action == "lock-user" || a.Action == "rotate-password --kill-sessions"
		if needsKill != (a.Allowed == "") {
			t.Errorf("userAdminAnyDatabase+clusterMonitor, %s: %+v", a.Action, a)
		}
	}
}

func TestTopologies(t *testing.T) {
	for _, c := range []struct {
		topo, want string
	}{
		{mongotest.Primary, connector.TopologyPrimary},
		{mongotest.Secondary, connector.TopologySecondary},
		{mongotest.Mongos, connector.TopologyMongos},
	} {
		emu := startEmulator(t, mongotest.Options{Topology: c.topo})
		m := connect(t, server{uri: emu.URI()})
		info, err := m.Discover(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if info.Topology != c.want {
			t.Errorf("%s: topology %q", c.topo, info.Topology)
		}
		_, _, err = m.CreateUser(ctx(t), "create-user", connector.UserRef{User: "app", DB: "admin"}, nil)
		if c.topo == mongotest.Secondary {
			mustKind(t, err, connector.ErrNotPrimary)
		} else if err != nil {
			t.Errorf("%s: %v", c.topo, err)
		}
	}
}

// A server that stops answering gives an error in seconds, never a hang; so does one that
// drops the connection or is gone.
func TestDeadServersFailFast(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	fast := func(c *connector.Config) {
		c.ServerSelectionTimeout, c.CommandTimeout = 500*time.Millisecond, time.Second
	}
	m := connect(t, server{uri: emu.URI()}, fast)
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
		t.Fatal(err)
	}
	bound := func(name string, start time.Time) {
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%s took %v: the bound is the configured timeouts, not forever", name, d)
		}
	}
	emu.Inject(mongotest.Fault{Command: "updateUser", Delay: time.Hour})
	start := time.Now()
	_, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
	mustKind(t, err, connector.ErrTimeout)
	bound("a command that never answers", start)
	emu.ClearFaults()

	emu.Inject(mongotest.Fault{Command: "updateUser", Drop: true, Times: 1})
	_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
	mustKind(t, err, connector.ErrUnavailable)

	// Nothing answers at all, handshakes included.
	m2 := connect(t, server{uri: emu.URI()}, fast)
	emu.Inject(mongotest.Fault{Delay: time.Hour})
	emu.DropConnections()
	start = time.Now()
	_, err = m2.Discover(ctx(t))
	if err == nil {
		t.Fatal("discovery succeeded against a server that answers nothing")
	}
	var e *connector.Error
	if !errors.As(err, &e) || (e.Kind != connector.ErrTimeout && e.Kind != connector.ErrUnavailable) {
		t.Fatalf("silent server: %v", err)
	}
	bound("a silent server", start)
	emu.Close()
	start = time.Now()
	_, err = connect(t, server{uri: emu.URI()}, fast).Users(ctx(t), "")
	mustKind(t, err, connector.ErrUnavailable)
	bound("a closed port", start)
	noLeak(t, []string{emu.AdminPassword()}, err)
}

func TestTLSWithCAGivenAsPEM(t *testing.T) {
	srvTLS, caPEM, err := mongotest.TestCA()
	if err != nil {
		t.Fatal(err)
	}
	emu := startEmulator(t, mongotest.Options{TLS: srvTLS})
	m := connect(t, server{uri: emu.URI()}, func(c *connector.Config) { c.TLSCAPEM = string(caPEM) })
	if _, err := m.Discover(ctx(t)); err != nil {
		t.Fatalf("TLS with the test CA: %v", err)
	}
	u := connector.UserRef{User: "app", DB: "admin"}
	_, pw, err := m.CreateUser(ctx(t), "create-user", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Login(ctx(t), u, pw); err != nil {
		t.Fatalf("verifying login over TLS: %v", err)
	}
	// Without the CA the certificate is not trusted: a clear failure, not a silent downgrade.
	untrusting := connect(t, server{uri: emu.URI()}, func(c *connector.Config) { c.ServerSelectionTimeout = time.Second })
	_, err = untrusting.Discover(ctx(t))
	mustKind(t, err, connector.ErrUnavailable)
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("TLS failure does not mention the certificate: %v", err)
	}
	// The CA from a file, as tls_ca_file gives it.
	file := t.TempDir() + "/ca.pem"
	writeFile(t, file, caPEM)
	if _, err := connect(t, server{uri: emu.URI()}, func(c *connector.Config) { c.TLSCAFile = file }).Discover(ctx(t)); err != nil {
		t.Fatalf("tls_ca_file: %v", err)
	}
}

func TestAtlasIsRecognised(t *testing.T) {
	for _, uri := range []string{
		"mongodb+srv://bot:s3cr3t-pw@cluster0.abcde.mongodb.net/?retryWrites=true",
		"mongodb://bot:s3cr3t-pw@ac-1-shard-00-00.abcde.mongodb.net:27017,ac-1-shard-00-01.abcde.mongodb.net:27017/?tls=true",
		"mongodb://bot:s3cr3t-pw@cluster0.abcde.mongodbgov.net:27017/?tls=true",
	} {
		m, err := connector.New(connector.Config{Name: "atlas", URI: secret.New(uri), ServerSelectionTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if !m.Atlas() {
			t.Errorf("%s not recognised as Atlas", strings.ReplaceAll(uri, "s3cr3t-pw", "…"))
		}
		start := time.Now()
		_, err = m.LockUser(ctx(t), connector.UserRef{User: "app", DB: "admin"})
		mustKind(t, err, connector.ErrAtlas)
		_, _, err2 := m.RotatePassword(ctx(t), connector.RotateOptions{User: connector.UserRef{User: "app", DB: "admin"}})
		mustKind(t, err2, connector.ErrAtlas)
		if !strings.Contains(err2.Error(), "Atlas Administration API") {
			t.Errorf("Atlas sentence: %v", err2)
		}
		if time.Since(start) > time.Second {
			t.Error("Atlas refusals must not touch the network")
		}
		noLeak(t, []string{"s3cr3t-pw"}, err, err2)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []connector.Config{
		{Name: "", URI: secret.New("mongodb://h")},
		{Name: "x"},
		{Name: "x", URI: secret.New("postgres://u:hunter2pw@h")},
		{Name: "x", URI: secret.New("mongodb://u:hunter2pw@h/?tls=maybe")},
		{Name: "x", URI: secret.New("mongodb://u:hunter2pw@h"), TLSCAPEM: "not a pem"},
		{Name: "x", URI: secret.New("mongodb://u:hunter2pw@h"), TLSCAFile: "/nonexistent/ca.pem"},
		{Name: "x", URI: secret.New("mongodb://u:hunter2pw@h"), TLSCAFile: "a", TLSCAPEM: "b"},
	} {
		_, err := connector.New(c)
		if err == nil {
			t.Errorf("config %q accepted", c.Name)
			continue
		}
		noLeak(t, []string{"hunter2pw"}, err)
		t.Log(err)
	}
}

// --logout-all drops and re-creates: with an account that could drop the user but not create
// it again (userAdmin on admin, the user holding read@shop), it is refused before anything is
// sent, and the privilege report and CanRecreate say which privilege is missing.
func TestLogoutAllChecksTheRecreateFirst(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{{Role: "userAdmin", DB: "admin"}}})
	if err := emu.CreateUser("app", "app-pw-1", "admin", []mongotest.Role{{Role: "read", DB: "shop"}}); err != nil {
		t.Fatal(err)
	}
	m := connect(t, server{uri: emu.URI()})
	u := connector.UserRef{User: "app", DB: "admin"}
	st, err := m.State(ctx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	err = m.CanRecreate(ctx(t), u, st)
	mustKind(t, err, connector.ErrUnauthorized)
	if !strings.Contains(err.Error(), "grantRole on shop (for read@shop)") {
		t.Errorf("the sentence does not name the missing privilege: %v", err)
	}
	_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true,
		BeforeApply: func(secret.String) error { t.Error("a password was made for a rotation that cannot work"); return nil }})
	mustKind(t, err, connector.ErrUnauthorized)
	if n := emu.Count("dropUser"); n != 0 {
		t.Fatalf("dropUser sent %d times", n)
	}
	if st2, _ := m.State(ctx(t), u); !st2.Exists {
		t.Fatal("the user was dropped")
	}
	// A user with only admin roles can be re-created by the same account.
	if err := emu.CreateUser("local_app", "app-pw-2", "admin", []mongotest.Role{{Role: "read", DB: "admin"}}); err != nil {
		t.Fatal(err)
	}
	lu := connector.UserRef{User: "local_app", DB: "admin"}
	if _, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: lu, LogoutAll: true}); err != nil {
		t.Fatalf("a rotation the account can do: %v", err)
	}
}

// Listing every database's users needs viewUser on the cluster: userAdmin on admin is not
// enough, and the server (and so the emulator) refuses it with 13; the check says so.
func TestListingAllUsersNeedsClusterViewUser(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{{Role: "userAdmin", DB: "admin"}}})
	m := connect(t, server{uri: emu.URI()})
	_, err := m.Users(ctx(t), "")
	mustKind(t, err, connector.ErrUnauthorized)
	if _, err := m.Users(ctx(t), "admin"); err != nil {
		t.Fatalf("listing admin's users with userAdmin on admin: %v", err)
	}
	info, err := m.Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range info.Privileges.Actions {
		switch a.Action {
		case "users":
			if a.Allowed != "" || !slices.Contains(a.Missing, "viewUser on the cluster") {
				t.Errorf("users: %+v; want viewUser on the cluster missing", a)
			}
		case "users <db>":
			if a.Allowed != "only on admin" {
				t.Errorf("users <db>: %+v", a)
			}
		}
	}
	root := connect(t, server{uri: startEmulator(t, mongotest.Options{AdminRoles: []mongotest.Role{{Role: "userAdminAnyDatabase", DB: "admin"}}}).URI()})
	if _, err := root.Users(ctx(t), ""); err != nil {
		t.Fatalf("userAdminAnyDatabase lists every user: %v", err)
	}
}
