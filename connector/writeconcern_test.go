package connector_test

import (
	"strings"
	"testing"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// An ok:1 reply with a writeConcernError, whatever its code, was applied on the primary: the
// action reports what is true (read back), keeps its undo and its password, and warns that a
// majority did not confirm it. Nothing is reported as failed that the server did.
func TestWriteConcernErrorIsAppliedNotConfirmed(t *testing.T) {
	codes := []int32{64, 50, 79, 91, 100, 189, 11602}
	for _, code := range codes {
		emu := startEmulator(t, mongotest.Options{Topology: mongotest.Primary})
		m := connect(t, server{uri: emu.URI()})
		u := connector.UserRef{User: "app", DB: "admin"}
		warned := func(what string, ch connector.Change) {
			t.Helper()
			if !strings.Contains(strings.Join(ch.Warnings, " "), "did not confirm it") {
				t.Errorf("code %d, %s: no warning that a majority did not confirm it: %q", code, what, ch.Warnings)
			}
		}

		emu.Inject(mongotest.Fault{Command: "createUser", WriteConcernCode: code, Times: 1})
		var sealed secret.String
		ch, pw, err := m.CreateReadOnlyUser(ctx(t), u, "shop", func(p secret.String) error { sealed = p; return nil })
		if err != nil || !ch.After.Exists || ch.Undo == nil || pw.Reveal() != sealed.Reveal() {
			t.Fatalf("code %d, create: %v (change %+v)", code, err, ch)
		}
		warned("create", ch)

		emu.Inject(mongotest.Fault{Command: "grantRolesToUser", WriteConcernCode: code, Times: 1})
		rw := connector.Role{Name: "readWrite", DB: "shop"}
		ch, err = m.GrantRole(ctx(t), u, rw)
		if err != nil || !ch.After.HasRole(rw) || ch.Undo == nil {
			t.Fatalf("code %d, grant: %v (change %+v)", code, err, ch)
		}
		warned("grant", ch)

		emu.Inject(mongotest.Fault{Command: "updateUser", WriteConcernCode: code, Times: 1})
		ch, pw, err = m.RotatePassword(ctx(t), connector.RotateOptions{User: u})
		if err != nil || !hasNote(ch.Notes, "verified: logged in") {
			t.Fatalf("code %d, rotate: %v (change %+v)", code, err, ch)
		}
		warned("rotate", ch)
		if err := m.Login(ctx(t), u, pw); err != nil {
			t.Fatalf("code %d: the rotated password does not log in: %v", code, err)
		}

		emu.Inject(mongotest.Fault{Command: "updateUser", WriteConcernCode: code, Times: 1})
		ch, err = m.LockUser(ctx(t), u)
		if err != nil || !ch.After.Locked() || ch.Undo == nil {
			t.Fatalf("code %d, lock: %v (change %+v)", code, err, ch)
		}
		warned("lock", ch)

		emu.Inject(mongotest.Fault{Command: "dropUser", WriteConcernCode: code, Times: 1})
		ch, err = m.DropUser(ctx(t), u, nil)
		if err != nil || ch.After.Exists {
			t.Fatalf("code %d, drop: %v (change %+v)", code, err, ch)
		}
		warned("drop", ch)
	}
}

// A mongos reports the config servers' write concern failure as the command's own error, after
// the change was applied: 64 is applied and unconfirmed; a state-change code is "may have been
// applied", which the caller settles from the user's state (the bot's reconciliation).
func TestMongosWriteConcernForms(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{Topology: mongotest.Mongos, Members: 2})
	m := connect(t, server{uri: emu.ClusterURI()})
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
		t.Fatal(err)
	}
	rw := connector.Role{Name: "readWrite", DB: "shop"}
	emu.Inject(mongotest.Fault{Command: "grantRolesToUser", WriteConcernCode: 64, TopLevel: true, Times: 1})
	ch, err := m.GrantRole(ctx(t), u, rw)
	if err != nil || !ch.After.HasRole(rw) || ch.Undo == nil || !strings.Contains(strings.Join(ch.Warnings, " "), "did not confirm it") {
		t.Fatalf("top-level 64 from a mongos: %v (change %+v)", err, ch)
	}
	read := connector.Role{Name: "read", DB: "shop"}
	emu.Inject(mongotest.Fault{Command: "grantRolesToUser", WriteConcernCode: 11602, TopLevel: true, Times: 1})
	_, err = m.GrantRole(ctx(t), u, read)
	mustKind(t, err, connector.ErrTimeout)
	if st, _ := m.State(ctx(t), u); !st.HasRole(read) {
		t.Fatal("the emulator did not apply the change before answering 11602")
	}
}

// When the user cannot be read again after an acknowledged change, or a write a majority did
// not confirm does not show when read back (a failover rolled it back), the action answers
// "may have been applied" (ErrTimeout): the caller settles it from the server's state, and no
// state that nobody read is ever reported.
func TestUnsettledChangesAreCheckedNotAssumed(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{Topology: mongotest.Primary})
	m := connect(t, server{uri: emu.URI()})
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := m.CreateUser(ctx(t), "create-user", u, []connector.Role{{Name: "read", DB: "shop"}}); err != nil {
		t.Fatal(err)
	}
	rw := connector.Role{Name: "readWrite", DB: "shop"}
	emu.Inject(mongotest.Fault{Command: "grantRolesToUser", WriteConcernCode: 91, Times: 1})
	emu.Inject(mongotest.Fault{Command: "usersInfo", Skip: 1, Code: 6, Message: "host unreachable", Times: 1})
	_, err := m.GrantRole(ctx(t), u, rw)
	mustKind(t, err, connector.ErrTimeout)
	if !strings.Contains(err.Error(), "could not be read again") {
		t.Errorf("sentence: %v", err)
	}
	if st, _ := m.State(ctx(t), u); !st.HasRole(rw) {
		t.Fatal("the emulator did not apply the grant")
	}

	// Applied, not confirmed, and rolled back before the read-back.
	dba := connector.Role{Name: "dbAdmin", DB: "shop"}
	emu.Inject(mongotest.Fault{Command: "grantRolesToUser", WriteConcernCode: 64, RolledBack: true, Times: 1})
	_, err = m.GrantRole(ctx(t), u, dba)
	mustKind(t, err, connector.ErrTimeout)
	if !strings.Contains(err.Error(), "a failover may have rolled it back") {
		t.Errorf("sentence: %v", err)
	}
	if st, _ := m.State(ctx(t), u); st.HasRole(dba) {
		t.Fatal("the emulator did not roll the grant back")
	}
}
