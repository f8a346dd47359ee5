package connector_test

import (
	"encoding/json"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

func mongotestOptions() mongotest.Options { return mongotest.Options{} }

// Lock: new logins fail, a connection already logged in loses its authentication at its next
// command, sessions are killed; undo restores exactly the previous restrictions.
func TestLockUnlock(t *testing.T) {
	eachKind(t, func(t *testing.T, s server) {
		if s.atlas() {
			lockOnAtlas(t, s)
			return
		}
		m := connect(t, s)
		u := uniqueUser(t, m, "admin")
		raw := rawClient(t, s.uri)
		// The user starts with a restriction of its own, which unlock must give back exactly.
		// It admits every IPv4 client, so the test logs in from wherever it runs.
		own := bson.A{bson.D{{Key: "clientSource", Value: bson.A{"0.0.0.0/0", "10.0.0.0/8"}}}}
		cmd := bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: "lock-test-pw-1"}, {Key: "roles", Value: bson.A{}}}
		if !s.ferret() {
			cmd = append(cmd, bson.E{Key: "authenticationRestrictions", Value: own})
		}
		if _, err := run(t, raw, "admin", cmd); err != nil {
			t.Fatal(err)
		}
		ch, err := m.LockUser(ctx(t), u)
		if s.ferret() {
			mustKind(t, err, connector.ErrUnsupported)
			if !strings.Contains(err.Error(), "ignores authenticationRestrictions") {
				t.Errorf("sentence: %v", err)
			}
			mustKind(t, m.CanLock(ctx(t)), connector.ErrUnsupported)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		pw := secret.New("lock-test-pw-1")
		mustKind(t, m.Login(ctx(t), u, pw), connector.ErrAuthFailed)
		if !ch.After.Locked() || ch.Before.Locked() || ch.Undo == nil || ch.Undo.Action != connector.UndoSetRestrictions {
			t.Fatalf("lock change %+v", ch)
		}
		if s.emu != nil {
			if k := s.emu.Killed(); len(k) != 1 || k[0][0].User != u.User {
				t.Errorf("killAllSessions not sent for the user: %+v", k)
			}
		}
		_, err = m.LockUser(ctx(t), u)
		mustKind(t, err, connector.ErrConflict)

		un, err := m.Undo(ctx(t), ch)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := m.State(ctx(t), u)
		// Exactly the document the user had, byte for byte.
		if len(after.Restrictions) != 1 || after.Restrictions[0].Doc != `{"clientSource":["0.0.0.0/0","10.0.0.0/8"]}` ||
			!equalJSON(after.Restrictions, ch.Before.Restrictions) {
			t.Fatalf("unlock restored %+v, want exactly %+v", after.Restrictions, ch.Before.Restrictions)
		}
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatalf("login after unlock: %v", err)
		}
		// Undo of the unlock locks again.
		if un.Undo == nil {
			t.Fatal("unlock has no undo")
		}
		if _, err := m.Undo(ctx(t), un); err != nil {
			t.Fatal(err)
		}
		if st, _ := m.State(ctx(t), u); !st.Locked() {
			t.Fatal("undo of unlock did not lock")
		}
		// The explicit verb, given the saved restrictions.
		if _, err := m.UnlockUser(ctx(t), u, ch.Before.Restrictions); err != nil {
			t.Fatal(err)
		}
		_, err = m.UnlockUser(ctx(t), u, nil)
		mustKind(t, err, connector.ErrConflict)
	})
}

// Case 24 and 26 of the reference, on the emulator (and a real server): a connection logged in
// before the lock is refused at its next command; after a drop and re-create, too.
func TestLockCutsLoggedInConnections(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		if s.ferret() {
			t.Log("FerretDB cannot lock (asserted in TestLockUnlock); checking the drop and re-create case only")
		}
		m := connect(t, s)
		u := uniqueUser(t, m, "admin")
		raw := rawClient(t, s.uri)
		if _, err := run(t, raw, "admin", bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: "cut-test-pw-1"}, {Key: "roles", Value: bson.A{}}}); err != nil {
			t.Fatal(err)
		}
		asUser := rawClient(t, s.userURI(u.User, "cut-test-pw-1", "admin"))
		self := bson.D{{Key: "usersInfo", Value: u.User}}
		if _, err := run(t, asUser, "admin", self); err != nil {
			t.Fatalf("the user cannot read itself before the lock: %v", err)
		}
		if !s.ferret() {
			if _, err := m.LockUser(ctx(t), u); err != nil {
				t.Fatal(err)
			}
			_, err := run(t, asUser, "admin", self)
			if code := codeOf(err); code != 13 {
				t.Fatalf("next command of a connection logged in before the lock: %v (code %d), want 13", err, code)
			}
			if _, err := m.UnlockUser(ctx(t), u, nil); err != nil {
				t.Fatal(err)
			}
		}
		// --logout-all: drop and re-create. The old connection must not inherit the new user.
		asUser2 := rawClient(t, s.userURI(u.User, "cut-test-pw-1", "admin"))
		if _, err := run(t, asUser2, "admin", self); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true}); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, asUser2, "admin", self)
		if s.ferret() {
			t.Logf("FerretDB, old connection after drop and re-create: %v (code %d)", err, codeOf(err))
			return
		}
		if code := codeOf(err); code != 13 {
			t.Fatalf("old connection after --logout-all: %v (code %d), want 13", err, code)
		}
	})
}

// A present, empty list matches no address: {clientSource: []} keeps a user out. Lock and unlock
// put it back exactly, never as {} (which the server rejects) or without the list.
func TestRestrictionsRoundTripExactly(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	m := connect(t, server{uri: emu.URI()})
	admin := rawClient(t, emu.URI())
	u := connector.UserRef{User: "walled", DB: "admin"}
	docs := bson.A{bson.D{{Key: "clientSource", Value: bson.A{}}}, bson.D{{Key: "serverAddress", Value: bson.A{"127.0.0.1"}}, {Key: "clientSource", Value: bson.A{"10.1.0.0/16"}}}}
	if _, err := run(t, admin, "admin", bson.D{{Key: "createUser", Value: u.User}, {Key: "pwd", Value: "walled-pw-1"},
		{Key: "roles", Value: bson.A{}}, {Key: "authenticationRestrictions", Value: docs}}); err != nil {
		t.Fatal(err)
	}
	// Neither document is met from here: the first matches no address, the second not ours.
	mustKind(t, m.Login(ctx(t), u, secret.New("walled-pw-1")), connector.ErrAuthFailed)
	before, err := m.State(ctx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	wantDocs := []string{`{"clientSource":[]}`, `{"serverAddress":["127.0.0.1"],"clientSource":["10.1.0.0/16"]}`}
	if len(before.Restrictions) != len(wantDocs) {
		t.Fatalf("read %d restriction documents, want %d", len(before.Restrictions), len(wantDocs))
	}
	for i, r := range before.Restrictions {
		if r.Doc != wantDocs[i] {
			t.Fatalf("restriction %d read as %s; want %s", i, r.Doc, wantDocs[i])
		}
	}
	lock, err := m.LockUser(ctx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	// Through the journal (JSON) and back.
	raw, _ := json.Marshal(lock)
	var journaled connector.Change
	if err := json.Unmarshal(raw, &journaled); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Undo(ctx(t), journaled); err != nil {
		t.Fatal(err)
	}
	after, _ := m.State(ctx(t), u)
	if len(after.Restrictions) != 2 || after.Restrictions[0].Doc != wantDocs[0] || after.Restrictions[1].Doc != wantDocs[1] {
		t.Fatalf("after unlock: %+v; want exactly %q", after.Restrictions, wantDocs)
	}
	mustKind(t, m.Login(ctx(t), u, secret.New("walled-pw-1")), connector.ErrAuthFailed)
	// The server refuses a document with no list at all.
	_, err = run(t, admin, "admin", bson.D{{Key: "updateUser", Value: u.User}, {Key: "authenticationRestrictions", Value: bson.A{bson.D{}}}})
	if codeOf(err) != 162 {
		t.Fatalf("an empty restriction document: %v; want 162 CollectionIsEmpty", err)
	}
	// Lists the bot made itself keep an empty list through the journal too.
	made := []connector.Restriction{{ClientSource: []string{}}}
	raw, _ = json.Marshal(made)
	var back []connector.Restriction
	if err := json.Unmarshal(raw, &back); err != nil || back[0].ClientSource == nil || back[0].ServerAddress != nil {
		t.Fatalf("through JSON %s: %+v", raw, back)
	}
}

// A role's restrictions bind the user's logins too: the state says so, so that a failed login
// is not taken as proof of a password (the bot's reconciliation of a rotation).
func TestRoleRestrictionsShowInTheState(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	admin := rawClient(t, emu.URI())
	if _, err := run(t, admin, "admin", bson.D{{Key: "createRole", Value: "walled"}, {Key: "privileges", Value: bson.A{}}, {Key: "roles", Value: bson.A{}},
		{Key: "authenticationRestrictions", Value: bson.A{bson.D{{Key: "clientSource", Value: bson.A{"192.0.2.0/32"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := emu.CreateUser("app", "app-pw-1", "admin", []mongotest.Role{{Role: "walled", DB: "admin"}}); err != nil {
		t.Fatal(err)
	}
	m := connect(t, server{uri: emu.URI()})
	st, err := m.State(ctx(t), connector.UserRef{User: "app", DB: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.RoleRestricted || !st.LoginRestricted() || len(st.Restrictions) != 0 || !strings.Contains(st.Describe(), "restricted by its roles") {
		t.Fatalf("state %+v (%s)", st, st.Describe())
	}
	mustKind(t, m.Login(ctx(t), connector.UserRef{User: "app", DB: "admin"}, secret.New("app-pw-1")), connector.ErrAuthFailed)
}

// Atlas has no login restriction for database users: lock and unlock are refused with that
// reason, before and when acting, and the user still logs in.
func lockOnAtlas(t *testing.T, s server) {
	m := open(t, s)
	u := uniqueUser(t, m, "admin")
	_, pw, err := m.CreateUser(ctx(t), "create-user", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := len(s.api.Calls())
	for _, err := range []error{
		m.Supports(ctx(t), "lock-user", false),
		m.Supports(ctx(t), "unlock-user", false),
		func() error { _, err := m.LockUser(ctx(t), u); return err }(),
		func() error { _, err := m.UnlockUser(ctx(t), u, nil); return err }(),
	} {
		mustKind(t, err, connector.ErrUnsupported)
		if !strings.Contains(err.Error(), "no login restriction") || !strings.Contains(err.Error(), "rotate its password instead") {
			t.Errorf("the refusal gives no reason or no way out: %v", err)
		}
	}
	if sent := s.api.Calls()[calls:]; len(sent) > 0 {
		t.Errorf("a refused lock sent %v", sent)
	}
	if err := m.Login(ctx(t), u, pw); err != nil {
		t.Fatalf("after a refused lock: %v", err)
	}
}
