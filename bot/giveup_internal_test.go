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
