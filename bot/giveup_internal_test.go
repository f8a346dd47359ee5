package bot

import (
	"testing"
	"time"

	"mongobot/commands"
	"mongobot/connector"
	"mongobot/store"
)

// givingUp's boundary, case by case: what only removes what a temporary action added, and
// everything next to it that does not. (The end-to-end cases are in giveup_test.go.)
func TestGivingUpBoundary(t *testing.T) {
	role := connector.Role{Name: "root", DB: "admin"}
	other := connector.Role{Name: "read", DB: "shop"}
	u := connector.UserRef{User: "app", DB: "admin"}
	without := connector.UserState{Exists: true, Roles: []connector.Role{other}}
	with := connector.UserState{Exists: true, Roles: []connector.Role{other, role}}
	grant := func() (store.Entry, connector.Change) {
		e := store.Entry{ID: 7, Action: commands.GrantRole, State: store.EntryDone, UndoAt: time.Unix(1e9, 0),
			Args: map[string]string{"user": "app", "role": "root", "for": "4h"}}
		ch := connector.Change{Action: commands.GrantRole, User: u, Role: &role, Before: without, After: with,
			Undo: &connector.Undo{Action: connector.UndoRevokeRole, Role: &role}}
		return e, ch
	}
	access := func() (store.Entry, connector.Change) {
		e := store.Entry{ID: 8, RequestID: 3, Action: commands.Access, State: store.EntryDone, UndoAt: time.Unix(1e9, 0),
			Args: map[string]string{"user": "jit-dev-abcdef", "roles": "read@shop", "for": "1h"}}
		ch := connector.Change{Action: commands.Access, User: connector.UserRef{User: "jit-dev-abcdef", DB: "admin"},
			Before: connector.UserState{}, After: without, Undo: &connector.Undo{Action: connector.UndoDropUser}}
		return e, ch
	}
	cases := []struct {
		name  string
		make  func() (store.Entry, connector.Change)
		gives bool
	}{
		{"a temporary grant in force", grant, true},
		{"a temporary access in force", access, true},
		{"a permanent grant", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.UndoAt, e.Args = time.Time{}, map[string]string{"user": "app", "role": "root"}
			return e, ch
		}, false},
		{"a temporary grant already ended", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.State, e.RolledBackBy = store.EntryRolledBack, 9
			return e, ch
		}, false},
		{"a temporary grant being rolled back", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.RolledBackBy = 9
			return e, ch
		}, false},
		{"a temporary grant that failed", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.State = store.EntryFailed
			return e, ch
		}, false},
		{"a grant whose undo revokes another role", func() (store.Entry, connector.Change) {
			e, ch := grant()
			ch.Undo.Role = &other
			return e, ch
		}, false},
		{"a grant of a role the user already had", func() (store.Entry, connector.Change) {
			e, ch := grant()
			ch.Before = with
			return e, ch
		}, false},
		{"a grant whose undo grants", func() (store.Entry, connector.Change) {
			e, ch := grant()
			ch.Undo.Action = connector.UndoGrantRole
			return e, ch
		}, false},
		{"a revoke (its rollback grants)", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.Action, ch.Before, ch.After = commands.RevokeRole, with, without
			ch.Undo = &connector.Undo{Action: connector.UndoGrantRole, Role: &role}
			return e, ch
		}, false},
		{"a temporary lock (its end gives a login back)", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.Action = commands.LockUser
			ch.Undo = &connector.Undo{Action: connector.UndoSetRestrictions}
			return e, ch
		}, false},
		{"a rotation of alternating users (its rollback redelivers)", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.Action = commands.RotatePassword
			ch.Undo = &connector.Undo{Action: connector.UndoRedeliver}
			return e, ch
		}, false},
		{"a read-only user created (its rollback is a drop)", func() (store.Entry, connector.Change) {
			e, ch := access()
			e.Action, e.UndoAt, e.Args = commands.CreateReadOnlyUser, time.Time{}, map[string]string{"user": "new1"}
			return e, ch
		}, false},
		{"an access whose user existed before", func() (store.Entry, connector.Change) {
			e, ch := access()
			ch.Before = without
			return e, ch
		}, false},
		{"a rollback of a rollback", func() (store.Entry, connector.Change) {
			e, ch := grant()
			e.Action = commands.Rollback
			return e, ch
		}, false},
		{"an entry without an undo", func() (store.Entry, connector.Change) {
			e, ch := grant()
			ch.Undo = nil
			return e, ch
		}, false},
	}
	for _, c := range cases {
		e, ch := c.make()
		if got := givingUp(e, ch) != ""; got != c.gives {
			t.Errorf("%s: gives up %v, want %v (%q)", c.name, got, c.gives, givingUp(e, ch))
		}
	}
}

// touches, case by case: which later entries on the same user stand in the way of giving up
// a temporary grant of root, or a temporary access, without a vote.
func TestGivingUpLaterEntries(t *testing.T) {
	root := connector.Role{Name: "root", DB: "admin"}
	grant := connector.Change{Undo: &connector.Undo{Action: connector.UndoRevokeRole, Role: &root}}
	access := connector.Change{Undo: &connector.Undo{Action: connector.UndoDropUser}}
	entry := func(action string, args ...string) store.Entry {
		m := map[string]string{"user": "app"}
		for i := 0; i+1 < len(args); i += 2 {
			m[args[i]] = args[i+1]
		}
		return store.Entry{Action: action, Args: m}
	}
	cases := []struct {
		name          string
		x             store.Entry
		grant, access bool // whether x stands in the way of giving up the grant, the access
	}{
		{"a grant of the same role", entry(commands.GrantRole, "role", "root@admin"), true, false},
		{"a revoke of the same role", entry(commands.RevokeRole, "role", "root@admin"), true, false},
		{"a grant of another role", entry(commands.GrantRole, "role", "read@shop"), false, false},
		{"a rollback that grants the same role", entry(commands.Rollback, "performs", commands.GrantRole, "role", "root@admin"), true, false},
		{"a rollback that revokes another role", entry(commands.Rollback, "performs", commands.RevokeRole, "role", "read@shop"), false, false},
		{"a rollback that drops the user", entry(commands.Rollback, "performs", commands.DropUser), true, true},
		{"a rollback that re-creates the user", entry(commands.Rollback, "performs", commands.Rollback), true, true},
		{"a drop of the user", entry(commands.DropUser), true, true},
		{"a read-only user created under the name", entry(commands.CreateReadOnlyUser), true, true},
		{"an access under the name", entry(commands.Access, "roles", "read@shop"), true, true},
		{"a rotation", entry(commands.RotatePassword), false, false},
		{"a lock", entry(commands.LockUser), false, false},
		{"an unlock", entry(commands.UnlockUser), false, false},
		{"a rollback that redelivers", entry(commands.Rollback, "performs", commands.RotatePassword), false, false},
		{"an action the bot does not know yet", entry("rename-user"), true, true},
	}
	for _, c := range cases {
		if got := touches(c.x, grant); got != c.grant {
			t.Errorf("%s: stands in the way of the grant's give-up %v, want %v", c.name, got, c.grant)
		}
		if got := touches(c.x, access); got != c.access {
			t.Errorf("%s: stands in the way of the access's give-up %v, want %v", c.name, got, c.access)
		}
	}
}

// sameAccessUser, case by case: a userId decides when both states carry one; without it,
// only the access's own customData marker lets its user be dropped.
func TestSameAccessUser(t *testing.T) {
	marker := `{"mongobot":{"jit":true,"request":{"$numberLong":"3"}}}`
	other := `{"mongobot":{"jit":true,"request":{"$numberLong":"4"}}}`
	st := func(id, cd string) connector.UserState {
		return connector.UserState{Exists: true, UserID: id, CustomData: cd}
	}
	cases := []struct {
		name     string
		was, now connector.UserState
		same     bool
	}{
		{"the same userId", st("a1", marker), st("a1", marker), true},
		{"the same userId, customData changed since", st("a1", marker), st("a1", other), true},
		{"another userId, the same customData", st("a1", marker), st("b2", marker), false},
		{"no userId, the access's marker", st("", marker), st("", marker), true},
		{"no userId, another access's marker", st("", marker), st("", other), false},
		{"no userId, no marker now", st("", marker), st("", ""), false},
		{"a userId only now, the marker gone", st("", marker), st("b2", ""), false},
		{"no userId and no marker recorded", st("", ""), st("", other), true},
	}
	for _, c := range cases {
		if got := sameAccessUser(c.was, c.now); got != c.same {
			t.Errorf("%s: same %v, want %v", c.name, got, c.same)
		}
	}
}
