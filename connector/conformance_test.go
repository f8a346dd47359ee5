package connector_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector"
	"mongobot/connector/atlas/atlastest"
	"mongobot/secret"
)

// The conformance suite: every test runs on the emulator, on FerretDB, on an Atlas project
// (the Administration API stand-in and its cluster) and, when MONGODB_URI is set, on a real
// MongoDB server. Where FerretDB or Atlas lacks a feature the test asserts the typed "not
// supported" answer, with its reason, instead of skipping.

func TestDiscover(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		info, err := m.Discover(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", s.kind, info)
		if info.Version == "" || info.Topology == "" || (info.MaxWireVersion == 0) != s.atlas() {
			t.Errorf("discovery incomplete: %+v", info)
		}
		if len(info.Privileges.Actions) != 11 {
			t.Errorf("%d action checks, want one per bot action (11)", len(info.Privileges.Actions))
		}
		switch s.kind {
		case "ferretdb":
			if info.FerretDB != "v1.24.2" || info.Privileges.Reported {
				t.Errorf("FerretDB must be detected and its privileges reported as not reported: %+v", info)
			}
			for _, a := range info.Privileges.Actions {
				if a.Allowed != "privileges not reported" || len(a.Missing) > 0 {
					t.Errorf("FerretDB action %s: %+v; want 'privileges not reported', not 'no'", a.Action, a)
				}
			}
		case "atlas":
			// Nothing is asked of Atlas that could write; what it cannot do is said.
			if !info.Atlas || !strings.Contains(info.Topology, atlastest.ProjectID) || info.Privileges.User != "service account "+atlasClientID {
				t.Errorf("Atlas discovery %+v", info)
			}
			for _, a := range info.Privileges.Actions {
				never := a.Action == "lock-user" || a.Action == "unlock-user" || strings.Contains(a.Action, "--")
				if never != (a.Allowed == "") || never && !strings.HasPrefix(strings.Join(a.Missing, ""), "not on Atlas: ") {
					t.Errorf("Atlas action %s: %+v", a.Action, a)
				}
			}
		case "emulator":
			if info.Topology != connector.TopologyStandalone || info.Privileges.User != "admin@admin" {
				t.Errorf("emulator discovery %+v", info)
			}
			for _, a := range info.Privileges.Actions {
				if a.Allowed != "all databases" {
					t.Errorf("root account, action %s: %+v; want all databases", a.Action, a)
				}
			}
		}
	})
}

func TestRotatePassword(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		_, first, err := m.CreateUser(ctx(t), "create-user", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch, pw, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatalf("the new password does not log in: %v", err)
		}
		err = m.Login(ctx(t), u, first)
		mustKind(t, err, connector.ErrAuthFailed)
		p := pw.Reveal()
		if len(p) != connector.DefaultPasswordLength || strings.Trim(p, connector.DefaultAlphabet) != "" || p == first.Reveal() {
			t.Errorf("generated password has length %d or characters outside the URI-safe alphabet", len(p))
		}
		if ch.Undo != nil || ch.NoUndo == "" || !ch.Before.Exists || !ch.After.Exists {
			t.Errorf("rotation change %+v", ch)
		}
		if !hasNote(ch.Notes, "verified: logged in") || !hasNote(ch.Notes, "stay authenticated") || len(ch.Warnings) > 0 {
			t.Errorf("notes %q warnings %q", ch.Notes, ch.Warnings)
		}
		noLeak(t, []string{p, first.Reveal(), s.adminPwd}, ch, err)
		// The emulator and FerretDB agree with MongoDB: rotating a user that is not there.
		_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: connector.UserRef{User: "nobody_here", DB: "admin"}})
		mustKind(t, err, connector.ErrUserNotFound)
	})
}

func hasNote(notes []string, part string) bool {
	return slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, part) })
}

func TestRotateKillSessions(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		_, old, err := m.CreateUser(ctx(t), "create-user", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, KillSessions: true})
		if s.ferret() || s.atlas() {
			// Refused before anything is sent: the old password still works.
			mustKind(t, err, connector.ErrUnsupported)
			if s.atlas() && !strings.Contains(err.Error(), "no way to end a user's sessions") {
				t.Errorf("the refusal gives no reason: %v", err)
			}
			if err := m.Login(ctx(t), u, old); err != nil {
				t.Fatalf("a refused rotation changed the password: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hasNote(ch.Notes, "killAllSessions") {
			t.Errorf("notes %q do not say sessions were killed", ch.Notes)
		}
		if s.emu != nil {
			k := s.emu.Killed()
			if len(k) != 1 || len(k[0]) != 1 || k[0][0].User != u.User || k[0][0].DB != u.DB {
				t.Errorf("killAllSessions received %+v, want exactly [%v]", k, u)
			}
		}
	})
}

// --logout-all on a user with roles, custom data and restrictions: it comes back with exactly
// those, its existing connections lose their authentication, and the pre-image reaches the
// caller while the user still exists.
func TestRotateLogoutAll(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		if s.atlas() {
			_, first, err := m.CreateUser(ctx(t), "create-user", u, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true,
				BeforeDrop: func(connector.UserState) error { t.Error("BeforeDrop called on Atlas"); return nil }})
			mustKind(t, err, connector.ErrUnsupported)
			if !strings.Contains(err.Error(), "no way to end a user's sessions") {
				t.Errorf("the refusal gives no reason: %v", err)
			}
			if err := m.Login(ctx(t), u, first); err != nil {
				t.Fatalf("a refused rotation changed the password: %v", err)
			}
			return
		}
		raw := rawClient(t, s.uri)
		if s.ferret() {
			// FerretDB stores neither roles nor customData: the user is created bare.
			if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			_, err := run(t, raw, "admin", bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: "first-password-1"},
				{Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "read"}, {Key: "db", Value: "shop"}}}},
				{Key: "customData", Value: bson.D{{Key: "team", Value: "payments"}, {Key: "n", Value: int64(3)}}},
				{Key: "authenticationRestrictions", Value: bson.A{bson.D{{Key: "clientSource", Value: bson.A{"0.0.0.0/0"}}}}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		before, _ := m.State(ctx(t), u)
		var preimage connector.UserState
		ch, pw, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true,
			BeforeDrop: func(pre connector.UserState) error {
				now, err := m.State(ctx(t), u)
				if err != nil || !now.Exists {
					t.Errorf("BeforeDrop called after the user was dropped (%v)", err)
				}
				preimage = pre
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := m.State(ctx(t), u)
		// The re-created user is a new incarnation (a new userId) with everything else kept.
		if before.UserID != "" && (after.UserID == before.UserID || after.UserID == "") {
			t.Errorf("re-created user keeps userId %q", after.UserID)
		}
		sameBut := func(x connector.UserState) connector.UserState { x.UserID = ""; return x }
		if !equalJSON(preimage, before) || !equalJSON(sameBut(after), sameBut(before)) || !equalJSON(sameBut(ch.After), sameBut(before)) {
			t.Errorf("re-created user differs:\nbefore %+v\npre    %+v\nafter  %+v", before, preimage, after)
		}
		if !s.ferret() && (after.CustomData == "" || len(after.Roles) != 1 || len(after.Restrictions) != 1) {
			t.Errorf("roles, custom data or restrictions lost: %+v", after)
		}
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatalf("new password: %v", err)
		}
		// A BeforeDrop that fails (the journal could not be written) stops everything.
		stop := errors.New("journal unavailable")
		_, _, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true,
			BeforeDrop: func(connector.UserState) error { return stop }})
		if !errors.Is(err, stop) {
			t.Fatalf("BeforeDrop error: %v", err)
		}
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatalf("a rotation stopped before the drop changed the user: %v", err)
		}
	})
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestGrantRevokeAndUndo(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
			t.Fatal(err)
		}
		read := connector.Role{Name: "read", DB: "shop"}
		ch, err := m.GrantRole(ctx(t), u, read)
		if s.ferret() {
			mustKind(t, err, connector.ErrUnsupported)
			if !strings.Contains(err.Error(), "grantRolesToUser") {
				t.Errorf("the sentence does not name the command: %v", err)
			}
			_, err = m.RevokeRole(ctx(t), u, read)
			mustKind(t, err, connector.ErrUnsupported)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Before.HasRole(read) || !ch.After.HasRole(read) || ch.Undo == nil || ch.Undo.Action != connector.UndoRevokeRole {
			t.Fatalf("grant change %+v", ch)
		}
		// Granting again: MongoDB treats roles as a set; rolling that back changes nothing.
		again, err := m.GrantRole(ctx(t), u, read)
		if err != nil || again.Undo != nil || !strings.Contains(again.NoUndo, "already had") || !slices.Equal(again.After.Roles, ch.After.Roles) {
			t.Fatalf("grant of a held role: %+v %v", again, err)
		}
		back, err := m.Undo(ctx(t), ch)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := m.State(ctx(t), u); st.HasRole(read) || back.Undo == nil || back.Undo.Action != connector.UndoGrantRole {
			t.Fatalf("undo of grant: state %+v change %+v", st, back)
		}
		// The undo is itself undoable.
		if _, err := m.Undo(ctx(t), back); err != nil {
			t.Fatal(err)
		}
		if st, _ := m.State(ctx(t), u); !st.HasRole(read) {
			t.Fatal("undo of the undo did not grant the role again")
		}
		rev, err := m.RevokeRole(ctx(t), u, read)
		if err != nil || rev.Undo == nil || rev.After.HasRole(read) {
			t.Fatalf("revoke %+v %v", rev, err)
		}
		none, err := m.RevokeRole(ctx(t), u, read)
		if err != nil || none.Undo != nil || !strings.Contains(none.NoUndo, "did not have") {
			t.Fatalf("revoke of a role not held: %+v %v", none, err)
		}
		if _, err := m.Undo(ctx(t), rev); err != nil {
			t.Fatal(err)
		}
		if st, _ := m.State(ctx(t), u); !st.HasRole(read) {
			t.Fatal("undo of revoke did not grant the role back")
		}
		// Unknown role and role in the wrong database: 31 from the server.
		_, err = m.GrantRole(ctx(t), u, connector.Role{Name: "noSuchRole", DB: "shop"})
		mustKind(t, err, connector.ErrRoleNotFound)
		_, err = m.GrantRole(ctx(t), u, connector.Role{Name: "readAnyDatabase", DB: "shop"})
		mustKind(t, err, connector.ErrRoleNotFound)
		_, err = m.GrantRole(ctx(t), connector.UserRef{User: "nobody_here", DB: "admin"}, read)
		mustKind(t, err, connector.ErrUserNotFound)
	})
}

// Rollback refuses when the user changed since the action, and says what changed.
func TestUndoRefusesDrift(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		if s.ferret() {
			t.Log("FerretDB has no roles; drift on existence is checked below instead")
		}
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		created, _, err := m.CreateUser(ctx(t), "create-user", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !s.ferret() {
			ch, err := m.GrantRole(ctx(t), u, connector.Role{Name: "read", DB: "shop"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.GrantRole(ctx(t), u, connector.Role{Name: "readWrite", DB: "app"}); err != nil {
				t.Fatal(err)
			}
			_, err = m.Undo(ctx(t), ch)
			mustKind(t, err, connector.ErrDrift)
			if !strings.Contains(err.Error(), "readWrite@app was added") {
				t.Errorf("the refusal does not say what differs: %v", err)
			}
			if st, _ := m.State(ctx(t), u); !st.HasRole(connector.Role{Name: "read", DB: "shop"}) {
				t.Error("a refused rollback changed the user")
			}
		}
		// The created user was dropped by someone else: undoing the creation is refused.
		if _, err := m.DropUser(ctx(t), u, nil); err != nil {
			t.Fatal(err)
		}
		_, err = m.Undo(ctx(t), created)
		mustKind(t, err, connector.ErrDrift)
		if !strings.Contains(err.Error(), "no longer exists") {
			t.Errorf("drift sentence: %v", err)
		}
	})
}

// A user dropped and created again under the same name is a stranger: undoing the creation
// of the first must not drop the second, whatever its roles.
func TestUndoRefusesAStranger(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		created, _, err := m.CreateUser(ctx(t), "create-user", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if created.After.UserID == "" {
			t.Logf("%s reports no userId in usersInfo: the stranger cannot be told apart there", s.kind)
			return
		}
		if _, err := m.DropUser(ctx(t), u, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
			t.Fatal(err)
		}
		_, err = m.Undo(ctx(t), created)
		mustKind(t, err, connector.ErrDrift)
		if !strings.Contains(err.Error(), "new userId") {
			t.Errorf("drift sentence: %v", err)
		}
		if st, _ := m.State(ctx(t), u); !st.Exists {
			t.Fatal("the stranger was dropped")
		}
	})
}

func TestCreateUsers(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		ch, pw, err := m.CreateReadOnlyUser(ctx(t), u, "shop", nil)
		if s.ferret() {
			mustKind(t, err, connector.ErrUnsupported)
			if st, _ := m.State(ctx(t), u); st.Exists {
				t.Fatal("a refused creation created the user")
			}
			// What FerretDB can do: a user with roles: [], and its undo.
			ch, pw, err = m.CreateUser(ctx(t), "create-user", u, []connector.Role{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Before.Exists || !ch.After.Exists || ch.Undo == nil || ch.Undo.Action != connector.UndoDropUser {
			t.Fatalf("create change %+v", ch)
		}
		if !s.ferret() && !slices.Equal(ch.After.Roles, []connector.Role{{Name: "read", DB: "shop"}}) {
			t.Errorf("read-only user roles %v", ch.After.Roles)
		}
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatal(err)
		}
		if !hasNote(ch.Notes, "verified") {
			t.Errorf("creation not verified: %q", ch.Notes)
		}
		_, _, err = m.CreateUser(ctx(t), "create-user", u, nil)
		mustKind(t, err, connector.ErrUserExists)
		if _, err := m.Undo(ctx(t), ch); err != nil {
			t.Fatal(err)
		}
		if st, _ := m.State(ctx(t), u); st.Exists {
			t.Fatal("undo of create did not drop the user")
		}
		mustKind(t, m.Login(ctx(t), u, pw), connector.ErrAuthFailed)
		noLeak(t, []string{pw.Reveal(), s.adminPwd}, ch)
	})
}

func TestDropUser(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		_, pw, err := m.CreateUser(ctx(t), "create-user", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		var pre connector.UserState
		ch, err := m.DropUser(ctx(t), u, func(st connector.UserState) error { pre = st; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !pre.Exists || !ch.Before.Exists || ch.After.Exists || ch.Undo != nil || ch.NoUndo == "" {
			t.Fatalf("drop change %+v, pre-image %+v", ch, pre)
		}
		mustKind(t, m.Login(ctx(t), u, pw), connector.ErrAuthFailed)
		_, err = m.DropUser(ctx(t), u, nil)
		mustKind(t, err, connector.ErrUserNotFound)
		_, err = m.Undo(ctx(t), ch)
		mustKind(t, err, connector.ErrNoUndo)
	})
}

func TestListUsers(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		m := open(t, s)
		u := uniqueUser(t, m, "admin")
		if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
			t.Fatal(err)
		}
		all, err := m.Users(ctx(t), "")
		if err != nil {
			t.Fatal(err)
		}
		inAdmin, err := m.Users(ctx(t), "admin")
		if err != nil {
			t.Fatal(err)
		}
		for name, list := range map[string][]connector.User{"all": all, "admin": inAdmin} {
			// Atlas's API names no mechanisms, only whether a user authenticates externally.
			if !slices.ContainsFunc(list, func(x connector.User) bool { return x.UserRef == u && (len(x.Mechanisms) > 0 || s.atlas()) }) {
				t.Errorf("%s: %v lacks %v", name, list, u)
			}
		}
		// Listings come sorted by user, then db, whatever order the server answers in.
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.User > b.User || (a.User == b.User && a.DB > b.DB) {
				t.Errorf("listing not sorted: %v before %v", a.UserRef, b.UserRef)
			}
		}
		empty, err := m.Users(ctx(t), "no_users_here")
		if err != nil || len(empty) != 0 {
			t.Errorf("users of an empty database: %v %v", empty, err)
		}
	})
}

// Bad input is refused with a sentence, and nothing reaches the server.
func TestBadInputSendsNothing(t *testing.T) {
	emu := startEmulator(t, mongotestOptions())
	for _, c := range badInputs(t, connect(t, server{uri: emu.URI()})) {
		err := c.call()
		mustKind(t, err, connector.ErrInvalid)
		t.Logf("%s: %v", c.name, err)
	}
	for _, cmd := range []string{"usersInfo", "updateUser", "createUser", "dropUser", "grantRolesToUser", "revokeRolesFromUser"} {
		if n := emu.Count(cmd); n != 0 {
			t.Errorf("%s reached the server %d times for bad input", cmd, n)
		}
	}
	// The same on Atlas: nothing reaches the Administration API.
	onAtlas(t, func(t *testing.T, s server) {
		for _, c := range badInputs(t, open(t, s)) {
			mustKind(t, c.call(), connector.ErrInvalid)
		}
		if calls := s.api.Calls(); len(calls) > 0 {
			t.Errorf("bad input reached Atlas: %v", calls)
		}
	})
	for _, r := range []string{"read", "read@shop", "my.role@shop"} {
		if _, err := connector.ParseRole(r); err != nil {
			t.Errorf("ParseRole(%q): %v", r, err)
		}
	}
	if r, _ := connector.ParseRole("read"); r.DB != "admin" {
		t.Errorf("a bare role is in admin, got %v", r)
	}
	if r, _ := connector.ParseRole("a@b@shop"); r.Name != "a@b" || r.DB != "shop" {
		t.Errorf("role@db splits at the last @, got %v", r)
	}
}

type badInput struct {
	name string
	call func() error
}

// badInputs are calls every connector must refuse as invalid without sending anything.
func badInputs(t *testing.T, m conn) []badInput {
	long := strings.Repeat("x", 300)
	cases := []badInput{
		{"empty user", func() error {
			_, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: connector.UserRef{DB: "admin"}})
			return err
		}},
		{"NUL in user", func() error {
			_, err := m.DropUser(ctx(t), connector.UserRef{User: "a\x00b", DB: "admin"}, nil)
			return err
		}},
		{"long user", func() error { _, err := m.LockUser(ctx(t), connector.UserRef{User: long, DB: "admin"}); return err }},
		{"dot in db", func() error {
			_, err := m.DropUser(ctx(t), connector.UserRef{User: "a", DB: "shop.x"}, nil)
			return err
		}},
		{"slash in db", func() error {
			_, _, err := m.CreateReadOnlyUser(ctx(t), connector.UserRef{User: "a", DB: "admin"}, "a/b", nil)
			return err
		}},
		{"dollar in db", func() error {
			_, err := m.GrantRole(ctx(t), connector.UserRef{User: "a", DB: "ad$min"}, connector.Role{Name: "read", DB: "shop"})
			return err
		}},
		{"empty db", func() error { _, err := m.State(ctx(t), connector.UserRef{User: "a"}); return err }},
		{"long db", func() error { _, err := m.Users(ctx(t), strings.Repeat("d", 64)); return err }},
		{"empty role", func() error {
			_, err := m.GrantRole(ctx(t), connector.UserRef{User: "a", DB: "admin"}, connector.Role{DB: "shop"})
			return err
		}},
		{"role in bad db", func() error {
			_, err := m.RevokeRole(ctx(t), connector.UserRef{User: "a", DB: "admin"}, connector.Role{Name: "read", DB: "x y"})
			return err
		}},
		{"$ role", func() error {
			_, err := m.GrantRole(ctx(t), connector.UserRef{User: "a", DB: "admin"}, connector.Role{Name: "$x", DB: "shop"})
			return err
		}},
		{"password of $external", func() error {
			_, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: connector.UserRef{User: "CN=x", DB: "$external"}})
			return err
		}},
	}
	return cases
}

func TestPasswordPolicy(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := connector.PasswordPolicy{}.NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Reveal()) != 32 || strings.Trim(p.Reveal(), connector.DefaultAlphabet) != "" || seen[p.Reveal()] {
			t.Fatalf("bad or repeated password (length %d)", len(p.Reveal()))
		}
		seen[p.Reveal()] = true
	}
	p, err := connector.PasswordPolicy{Length: 40, Alphabet: "abcdefghijklmnopqrstuvwxyz0123456789"}.NewPassword()
	if err != nil || len(p.Reveal()) != 40 || strings.Trim(p.Reveal(), "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("custom policy: %v", err)
	}
	for _, bad := range []connector.PasswordPolicy{{Length: 8}, {Alphabet: "abc"}, {Alphabet: "abcdefghijklmnop q"}, {Alphabet: "aabcdefghijklmnopq"}} {
		if bad.Validate() == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
	_, err = connector.New(connector.Config{Name: "x", URI: secret.New("mongodb://127.0.0.1"), Passwords: connector.PasswordPolicy{Length: 4}})
	if err == nil {
		t.Error("a connector with a weak password policy was accepted")
	}
}

// A rotation keeps the user's mechanisms: updateUser with only pwd would give a
// SCRAM-SHA-1-only user SCRAM-SHA-256 as well, and --logout-all re-creates the same set.
func TestRotationKeepsMechanisms(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		m := connect(t, s)
		admin := rawClient(t, s.uri)
		for _, logoutAll := range []bool{false, true} {
			u := uniqueUser(t, m, "admin")
			if _, err := run(t, admin, "admin", bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: "sha1-only-pw"},
				{Key: "roles", Value: bson.A{}}, {Key: "mechanisms", Value: bson.A{"SCRAM-SHA-1"}}}); err != nil {
				t.Fatal(err)
			}
			ch, pw, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: logoutAll})
			if err != nil {
				t.Fatalf("logout-all %v: %v", logoutAll, err)
			}
			if !slices.Equal(ch.After.Mechanisms, []string{"SCRAM-SHA-1"}) {
				t.Errorf("logout-all %v: mechanisms after the rotation %v; want [SCRAM-SHA-1] as before", logoutAll, ch.After.Mechanisms)
			}
			if err := m.Login(ctx(t), u, pw); err != nil {
				t.Errorf("logout-all %v: the new password does not log in: %v", logoutAll, err)
			}
		}
	})
}
