package connector_test

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector"
	"mongobot/connector/mongotest"
)

// loginAt logs in as u through one member only.
func loginAt(t *testing.T, emu *mongotest.Server, addr string, u connector.UserRef, pw string) error {
	t.Helper()
	c := rawClient(t, emu.UserURIAt(addr, u.User, pw, u.DB))
	_, err := run(t, c, u.DB, bson.D{{Key: "ping", Value: 1}})
	return err
}

// A sharded cluster's routers each cache users for 30 s. The emulator models it (a change made
// through one router leaves the others with the old user), and the connector refreshes every
// router after each change, so a new password, a lock and a drop hold everywhere at once.
func TestEveryRouterSeesTheChange(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{Topology: mongotest.Mongos, Members: 3})
	routers := emu.Addrs()
	admin := rawClient(t, emu.ClusterURI())
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, err := run(t, admin, "admin", bson.D{{Key: "createUser", Value: "app"}, {Key: "pwd", Value: "old-pw-1"}, {Key: "roles", Value: bson.A{}}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range routers { // every router caches app
		if err := loginAt(t, emu, r, u, "old-pw-1"); err != nil {
			t.Fatalf("login through %s: %v", r, err)
		}
	}
	// The model: a change through one router, directly, leaves the others stale.
	direct := rawClient(t, emu.UserURIAt(routers[0], "admin", emu.AdminPassword(), "admin"))
	if _, err := run(t, direct, "admin", bson.D{{Key: "updateUser", Value: "app"}, {Key: "pwd", Value: "mid-pw-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := loginAt(t, emu, routers[1], u, "old-pw-1"); err != nil {
		t.Fatalf("the emulator's routers do not cache users (the old password should still work on another router for 30 s): %v", err)
	}

	m := connect(t, server{uri: emu.ClusterURI()})
	ch, pw, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(ch.Notes, "user cache refreshed on 3 of 3 routers") || len(ch.Warnings) > 0 {
		t.Errorf("notes %q warnings %q", ch.Notes, ch.Warnings)
	}
	for _, r := range routers {
		if err := loginAt(t, emu, r, u, pw.Reveal()); err != nil {
			t.Errorf("the new password does not work through %s: %v", r, err)
		}
		if err := loginAt(t, emu, r, u, "old-pw-1"); err == nil {
			t.Errorf("the old password still works through %s", r)
		}
		if n := emu.CountAt(r, "invalidateUserCache"); n != 1 {
			t.Errorf("invalidateUserCache reached %s %d times", r, n)
		}
	}
	// A lock holds on every router, and sessions are ended through each one.
	lock, err := m.LockUser(ctx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routers {
		if err := loginAt(t, emu, r, u, pw.Reveal()); err == nil {
			t.Errorf("a locked user logs in through %s", r)
		}
	}
	hosts := map[string]bool{}
	for _, k := range emu.Kills() {
		hosts[k.Host] = true
	}
	if len(hosts) != 3 || !hasNote(lock.Notes, "on 3 of 3 routers") {
		t.Errorf("killAllSessions reached %v; notes %q", hosts, lock.Notes)
	}
}

// On a replica set killAllSessions ends sessions only where it is sent: the connector sends it
// to every data-bearing member and says so per host.
func TestSessionsEndOnEveryMember(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{Topology: mongotest.Primary, Members: 3})
	m := connect(t, server{uri: emu.ClusterURI()})
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
		t.Fatal(err)
	}
	ch, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, KillSessions: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range emu.Kills() {
		got[k.Host] = true
	}
	for _, h := range emu.Addrs() {
		if !got[h] {
			t.Errorf("no killAllSessions on member %s (got %v)", h, got)
		}
	}
	if !hasNote(ch.Notes, "on 3 of 3 members") {
		t.Errorf("notes %q do not say where sessions were ended", ch.Notes)
	}
	// One member down: the others are still reached, and the warning names it.
	emu.Inject(mongotest.Fault{Command: "killAllSessions", Code: 13, Message: "not authorized", Times: 1})
	ch, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u, KillSessions: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(ch.Notes, "on 2 of 3 members") || !strings.Contains(strings.Join(ch.Warnings, " "), "failed") {
		t.Errorf("notes %q warnings %q", ch.Notes, ch.Warnings)
	}
	noLeak(t, []string{emu.AdminPassword()}, ch)
}

// On a sharded cluster the privilege report says whether every router can be told of a change.
func TestCheckReportsRouterRefresh(t *testing.T) {
	for _, c := range []struct {
		roles []mongotest.Role
		ok    bool
	}{
		{[]mongotest.Role{{Role: "userAdminAnyDatabase", DB: "admin"}}, true},
		{[]mongotest.Role{{Role: "userAdmin", DB: "admin"}, {Role: "clusterMonitor", DB: "admin"}}, false},
	} {
		emu := startEmulator(t, mongotest.Options{Topology: mongotest.Mongos, Members: 2, AdminRoles: c.roles})
		info, err := connect(t, server{uri: emu.ClusterURI()}).Discover(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, a := range info.Privileges.Actions {
			if a.Action == "any change, on every router at once" {
				found = true
				if (a.Allowed != "") != c.ok || (!c.ok && !strings.Contains(strings.Join(a.Missing, ""), "invalidateUserCache on the cluster")) {
					t.Errorf("roles %v: %+v", c.roles, a)
				}
			}
		}
		if !found {
			t.Errorf("roles %v: no router refresh row in %+v", c.roles, info.Privileges.Actions)
		}
	}
}

// A change settled as applied after its action was interrupted gets what the action does after
// its write: every router refreshed and, for a lock, the sessions ended on each.
func TestAftercareReachesEveryRouter(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{Topology: mongotest.Mongos, Members: 2})
	m := connect(t, server{uri: emu.ClusterURI()})
	if _, err := m.Discover(ctx(t)); err != nil {
		t.Fatal(err)
	}
	notes := m.Aftercare(ctx(t), connector.UserRef{User: "app", DB: "admin"}, true)
	all := strings.Join(notes, " ")
	if !strings.Contains(all, "user cache refreshed on 2 of 2 routers") || !strings.Contains(all, "on 2 of 2 routers") || len(emu.Kills()) != 2 {
		t.Errorf("aftercare: %q, kills %v", notes, emu.Kills())
	}
}
