package atlas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/connector/atlas/atlastest"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// project is an Atlas project as the tests see it: the API stand-in, its cluster (the
// emulator, which Atlas changes reach after delay) and a connector on both.
func project(t *testing.T, delay, within time.Duration) (*atlas.Connector, *atlastest.Server, *mongotest.Server) {
	t.Helper()
	cluster, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	s := atlastest.New(t, atlastest.Options{ClientID: clientID, ClientSecret: clientSecret, Cluster: cluster, ApplyDelay: delay})
	wire, err := connector.New(connector.Config{Name: "cluster0", URI: secret.New(cluster.URI())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wire.Close(context.Background()) })
	c := atlas.NewConnector(atlas.ConnectorConfig{Name: "prod-atlas", Client: clients(t, s)["service account"], Clusters: []string{"cluster0"},
		Verify: wire, VerifyWithin: within, VerifyEvery: 20 * time.Millisecond})
	return c, s, cluster
}

// Every action the bot has, on Atlas: each change is accepted by the API (validated against
// its spec), reaches the cluster after a delay, and is verified there over the wire before
// it is reported; what Atlas cannot do is refused with its reason.
func TestConnectorActions(t *testing.T) {
	c, s, cluster := project(t, 150*time.Millisecond, 10*time.Second)
	ctx := t.Context()
	u := connector.UserRef{User: "reports", DB: "admin"}
	var sealed secret.String
	ch, pw, err := c.CreateReadOnlyUser(ctx, u, "shop", func(p secret.String) error { sealed = p; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Reveal() != pw.Reveal() || ch.Undo == nil || ch.Undo.Action != connector.UndoDropUser {
		t.Fatalf("create: sealed first %v, undo %+v", sealed.Reveal() == pw.Reveal(), ch.Undo)
	}
	if !strings.Contains(strings.Join(ch.Notes, " "), "accepted by Atlas; live on the cluster after") {
		t.Fatalf("create notes: %v", ch.Notes)
	}
	if !cluster.CheckPassword(mongotest.UserRef{User: "reports", DB: "admin"}, pw.Reveal()) {
		t.Fatal("reported live, but the cluster does not have it")
	}

	if us, err := c.Users(ctx, "admin"); err != nil || len(us) != 1 || us[0].UserRef != u {
		t.Fatalf("users of admin: %+v, %v", us, err)
	}
	if us, err := c.Users(ctx, "$external"); err != nil || len(us) != 0 {
		t.Fatalf("users of $external: %+v, %v", us, err)
	}
	rot, pw2, err := c.RotatePassword(ctx, connector.RotateOptions{User: u})
	if err != nil || pw2.Reveal() == pw.Reveal() {
		t.Fatalf("rotate: %v", err)
	}
	if err := c.Login(ctx, u, pw2); err != nil || !strings.Contains(strings.Join(rot.Notes, " "), "live on the cluster") {
		t.Fatalf("rotate: login %v, notes %v", err, rot.Notes)
	}

	rw := connector.Role{Name: "readWrite", DB: "shop"}
	g, err := c.GrantRole(ctx, u, rw)
	if err != nil || !g.After.HasRole(rw) || !strings.Contains(strings.Join(g.Notes, " "), "live on the cluster after") {
		t.Fatalf("grant: %+v, %v", g.After, err)
	}
	calls := len(s.Calls())
	if again, err := c.GrantRole(ctx, u, rw); err != nil || again.Undo != nil || !strings.Contains(again.NoUndo, "already had") {
		t.Fatalf("a second grant: %+v, %v", again, err)
	}
	if sent := s.Calls()[calls:]; slices.ContainsFunc(sent, func(c string) bool { return strings.HasPrefix(c, "PATCH") }) {
		t.Fatalf("a grant of a held role was written: %v", sent)
	}
	back, err := c.Undo(ctx, g)
	if err != nil || back.After.HasRole(rw) {
		t.Fatalf("undo of the grant: %+v, %v", back.After, err)
	}
	s.WaitApplied()
	if snap := cluster.Snapshot()[mongotest.UserRef{User: "reports", DB: "admin"}]; len(snap.Roles) != 1 {
		t.Fatalf("the cluster's roles after grant and undo: %v", snap.Roles)
	}

	for _, err := range []error{
		func() error { _, err := c.LockUser(ctx, u); return err }(),
		c.Supports(ctx, "unlock-user", false),
		c.Supports(ctx, "rotate-password", true),
		func() error {
			_, _, err := c.RotatePassword(ctx, connector.RotateOptions{User: u, LogoutAll: true})
			return err
		}(),
	} {
		if !errors.Is(err, connector.ErrUnsupported) || !strings.Contains(err.Error(), "Atlas") {
			t.Errorf("refused as %v", err)
		}
	}

	until := time.Now().Add(2 * time.Hour)
	a := connector.UserRef{User: "jit-dev-abc123", DB: "admin"}
	ach, _, err := c.CreateAccessUser(ctx, a, []connector.Role{{Name: "read", DB: "shop"}}, connector.AccessOwner{ChatUser: "U0DEV", Request: 7, Until: until}, nil)
	if err != nil || !strings.Contains(strings.Join(ach.Notes, " "), "Atlas deletes it by itself at") {
		t.Fatalf("access: %v, %v", ach.Notes, err)
	}
	if gone := s.Expire(until.Add(time.Second)); len(gone) != 1 {
		t.Fatalf("Atlas's own expiry removed %v", gone)
	}

	d, err := c.DropUser(ctx, u, func(pre connector.UserState) error {
		if !pre.Exists {
			t.Error("the pre-image of a drop says it does not exist")
		}
		return nil
	})
	if err != nil || d.NoUndo == "" {
		t.Fatalf("drop: %v", err)
	}
	if st, err := c.State(ctx, u); err != nil || st.Exists {
		t.Fatalf("after the drop: %+v, %v", st, err)
	}
}

// A change Atlas accepts but its cluster does not apply in time is reported as such: never
// as live.
func TestConnectorSaysWhenNotLive(t *testing.T) {
	c, _, _ := project(t, 2*time.Second, 300*time.Millisecond)
	ch, _, err := c.CreateReadOnlyUser(t.Context(), connector.UserRef{User: "slow", DB: "admin"}, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Warnings) == 0 || !strings.Contains(ch.Warnings[0], "not live on the cluster after 300ms") {
		t.Fatalf("warnings %v, notes %v", ch.Warnings, ch.Notes)
	}
}

// Roll back refuses when the user changed in Atlas since the action (someone edited its roles
// in the UI): the whole role list would otherwise be written over their edit.
func TestConnectorUndoRefusesDrift(t *testing.T) {
	c, s, _ := project(t, 10*time.Millisecond, 5*time.Second)
	ctx := t.Context()
	u := connector.UserRef{User: "svc", DB: "admin"}
	if _, _, err := c.CreateReadOnlyUser(ctx, u, "shop", nil); err != nil {
		t.Fatal(err)
	}
	g, err := c.GrantRole(ctx, u, connector.Role{Name: "readWrite", DB: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	client := clients(t, s)["service account"]
	if _, err := client.UpdateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: "svc",
		Roles: []atlas.Role{{DatabaseName: "shop", RoleName: "read"}, {DatabaseName: "shop", RoleName: "readWrite"}, {DatabaseName: "orders", RoleName: "read"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Undo(ctx, g); !errors.Is(err, connector.ErrDrift) || !strings.Contains(err.Error(), "changed in Atlas since the action") {
		t.Fatalf("undo after someone else's edit: %v", err)
	}
	if st, _ := c.State(ctx, u); len(st.Roles) != 3 {
		t.Fatalf("the other edit was overwritten: %v", st.Roles)
	}
}

// A write Atlas fails on (a 5xx) is not sent again and is reported as perhaps applied, so the
// bot checks its outcome instead of calling it failed; roles the bot cannot write faithfully
// are refused before anything is sent.
func TestConnectorWritesThatMayHaveApplied(t *testing.T) {
	c, s, _ := project(t, 10*time.Millisecond, 5*time.Second)
	ctx := t.Context()
	u := connector.UserRef{User: "svc", DB: "admin"}
	s.FailNext("POST", 500, true)
	_, _, err := c.CreateReadOnlyUser(ctx, u, "shop", nil)
	if !errors.Is(err, connector.ErrTimeout) || !strings.Contains(err.Error(), "whether the change took effect is checked") {
		t.Fatalf("a create answered 500 after it applied: %v", err)
	}
	posts := 0
	for _, call := range s.Calls() {
		if strings.HasPrefix(call, "POST ") {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("the failed create was sent %d times", posts)
	}
	if st, err := c.State(ctx, u); err != nil || !st.Exists {
		t.Fatalf("the state after it: %+v, %v", st, err)
	}
	if _, err := c.RevokeRole(ctx, u, connector.Role{Name: "read", DB: "shop"}); !errors.Is(err, connector.ErrUnsupported) || !strings.Contains(err.Error(), "at least one role") {
		t.Fatalf("revoking the last role: %v", err)
	}
	client := clients(t, s)["service account"]
	if _, err := client.UpdateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: "svc",
		Roles: []atlas.Role{{DatabaseName: "shop", RoleName: "read", CollectionName: "orders"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GrantRole(ctx, u, connector.Role{Name: "readWrite", DB: "shop"}); !errors.Is(err, connector.ErrUnsupported) || !strings.Contains(err.Error(), "on one collection") {
		t.Fatalf("a grant to a user with a collection role: %v", err)
	}
	// A rotation sends the user back whole: its collection role survives.
	if _, _, err := c.RotatePassword(ctx, connector.RotateOptions{User: u}); err != nil {
		t.Fatal(err)
	}
	if du, err := client.User(ctx, "admin", "svc"); err != nil || len(du.Roles) != 1 || du.Roles[0].CollectionName != "orders" || len(du.Scopes) != 1 {
		t.Fatalf("after a rotation: %+v, %v", du, err)
	}
}

// Roles: Atlas's built-in ones where they can be granted, and the project's custom roles on
// admin; anything else is refused before anyone approves, saying what exists. Bad names send
// nothing.
func TestConnectorRoles(t *testing.T) {
	c, s, _ := project(t, 10*time.Millisecond, time.Second)
	ctx := t.Context()
	s.AddCustomRole("reportsReader")
	for _, r := range []connector.Role{{Name: "read", DB: "shop"}, {Name: "readWriteAnyDatabase", DB: "admin"}, {Name: "reportsReader", DB: "admin"}} {
		if err := c.CheckRole(ctx, r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	for r, want := range map[connector.Role]string{
		{Name: "atlasAdmin", DB: "shop"}:    "granted on admin only",
		{Name: "root", DB: "admin"}:         "atlasAdmin@admin",
		{Name: "reportsReader", DB: "shop"}: "reportsReader@admin",
	} {
		if err := c.CheckRole(ctx, r); !errors.Is(err, connector.ErrRoleNotFound) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", r, err, want)
		}
	}
	roles, err := c.Roles(ctx, "admin")
	if err != nil || !slices.Contains(roles, connector.Role{Name: "reportsReader", DB: "admin"}) {
		t.Fatalf("roles on admin: %v, %v", roles, err)
	}
	if roles, _ := c.Roles(ctx, "shop"); slices.Contains(roles, connector.Role{Name: "atlasAdmin", DB: "shop"}) {
		t.Fatalf("roles on shop offer atlasAdmin: %v", roles)
	}
	before := len(s.Calls())
	if err := c.CheckRole(ctx, connector.Role{Name: "", DB: "shop"}); err == nil {
		t.Fatal("an empty role name accepted")
	}
	if n := len(s.Calls()); n != before {
		t.Fatalf("a bad role name sent %d calls", n-before)
	}
}
