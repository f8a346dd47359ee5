package connector

import (
	"fmt"
	"slices"
	"strings"
)

// UserRef names a MongoDB user: its name and its authentication database.
type UserRef struct {
	User string `json:"user"`
	DB   string `json:"db"`
}

func (u UserRef) String() string { return u.User + "@" + u.DB }

// Role names a role and the database it is defined in.
type Role struct {
	Name string `json:"role" bson:"role"`
	DB   string `json:"db" bson:"db"`
}

func (r Role) String() string { return r.Name + "@" + r.DB }

// Restriction is one authenticationRestrictions document. A user may log in when at least one
// of its documents is met; a document is met when every list in it contains the address. A
// list that is present and empty (clientSource: []) matches no address; a nil list is absent.
type Restriction struct {
	// No omitempty: an empty list is journaled as [] and an absent one as null, so the
	// difference survives the journal.
	ClientSource  []string `json:"clientSource"`
	ServerAddress []string `json:"serverAddress"`
	// Doc is the document exactly as the server reported it, in canonical Extended JSON
	// (empty for documents the bot made). Restoring sends these bytes back: rebuilt from
	// the lists, a clientSource: [] would lose its meaning or become {}, which the server
	// rejects.
	Doc string `json:"doc,omitempty"`
}

// lockAddress is in RFC 5737's documentation range (192.0.2.0/24): no client or server ever
// has it, so a user restricted to it cannot log in. MongoDB's own jstest locks users this way.
const lockAddress = "192.0.2.0/32"

// LockRestrictions is what lock-user sets: one document no connection can meet.
func LockRestrictions() []Restriction {
	return []Restriction{{ClientSource: []string{lockAddress}, ServerAddress: []string{lockAddress}}}
}

// UserState is what the connector reads of a user: never its credentials.
type UserState struct {
	Exists       bool          `json:"exists"`
	Roles        []Role        `json:"roles,omitempty"`
	Restrictions []Restriction `json:"authentication_restrictions,omitempty"`
	// CustomData is the user's customData as canonical Extended JSON, so it round-trips exactly.
	CustomData string   `json:"custom_data,omitempty"`
	Mechanisms []string `json:"mechanisms,omitempty"`
	// UserID is the server's userId, in hex, when it reports one: it tells a user from
	// another created later under the same name.
	UserID string `json:"user_id,omitempty"`
	// RoleRestricted is true when a role of the user (direct or inherited) carries
	// authentication restrictions, which bind its logins as well as its own
	// (inheritedAuthenticationRestrictions; restriction_set.h).
	RoleRestricted bool `json:"role_restricted,omitempty"`
}

// LoginRestricted reports whether restrictions, the user's or its roles', may refuse a login
// from the bot: a failed login then says nothing of the password.
func (s UserState) LoginRestricted() bool { return len(s.Restrictions) > 0 || s.RoleRestricted }

// SameUser reports whether s and t can be the same incarnation of a user: false only when
// both carry a userId and they differ (the user was dropped and created again).
func (s UserState) SameUser(t UserState) bool {
	return s.UserID == "" || t.UserID == "" || s.UserID == t.UserID
}

// Locked reports whether the user carries the bot's lock.
func (s UserState) Locked() bool {
	return slices.EqualFunc(s.Restrictions, LockRestrictions(), restrictionEqual)
}

// HasRole reports whether r is among the user's direct roles.
func (s UserState) HasRole(r Role) bool { return slices.Contains(s.Roles, r) }

func restrictionEqual(a, b Restriction) bool {
	if a.Doc != "" && b.Doc != "" {
		return a.Doc == b.Doc
	}
	return sameList(a.ClientSource, b.ClientSource) && sameList(a.ServerAddress, b.ServerAddress)
}

// sameList tells an absent list (nil) from a present empty one, which matches no address.
func sameList(a, b []string) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) }

// Describe is a short line for people: "roles read@shop, readWrite@app; locked".
func (s UserState) Describe() string {
	if !s.Exists {
		return "does not exist"
	}
	var parts []string
	if len(s.Roles) == 0 {
		parts = append(parts, "no roles")
	} else {
		var rs []string
		for _, r := range s.Roles {
			rs = append(rs, r.String())
		}
		parts = append(parts, "roles "+strings.Join(rs, ", "))
	}
	switch {
	case s.Locked():
		parts = append(parts, "locked")
	case len(s.Restrictions) > 0:
		parts = append(parts, fmt.Sprintf("%d authentication restriction(s)", len(s.Restrictions)))
	}
	if s.RoleRestricted {
		parts = append(parts, "logins restricted by its roles")
	}
	return strings.Join(parts, "; ")
}

// Differences lists, in words, how now differs from want, in what actions change: existence,
// roles and authentication restrictions. Every connector kind refuses a rollback with them.
func Differences(want, now UserState) []string {
	if want.Exists != now.Exists {
		if want.Exists {
			return []string{"the user no longer exists"}
		}
		return []string{"the user exists again"}
	}
	if !want.SameUser(now) {
		return []string{"the user was dropped and created again since (it has a new userId): it is not the user the action changed"}
	}
	var out []string
	for _, r := range now.Roles {
		if !want.HasRole(r) {
			out = append(out, "role "+r.String()+" was added since")
		}
	}
	for _, r := range want.Roles {
		if !now.HasRole(r) {
			out = append(out, "role "+r.String()+" was removed since")
		}
	}
	if !slices.EqualFunc(want.Restrictions, now.Restrictions, restrictionEqual) {
		out = append(out, fmt.Sprintf("authentication restrictions changed since (%s, was %s)",
			describeRestrictions(now.Restrictions), describeRestrictions(want.Restrictions)))
	}
	return out
}

func describeRestrictions(rs []Restriction) string {
	switch {
	case len(rs) == 0:
		return "none"
	case slices.EqualFunc(rs, LockRestrictions(), restrictionEqual):
		return "locked"
	}
	return fmt.Sprintf("%d document(s)", len(rs))
}

// Undo is how to reverse a Change.
type Undo struct {
	Action string `json:"action"` // UndoRevokeRole, UndoGrantRole, UndoDropUser, UndoSetRestrictions
	Role   *Role  `json:"role,omitempty"`
	// Restrictions, for UndoSetRestrictions, is the exact array to put back; empty removes it.
	Restrictions []Restriction `json:"restrictions,omitempty"`
	// Describe says what Roll back will do, in words.
	Describe string `json:"describe"`
}

// Undo actions.
const (
	UndoRevokeRole      = "revoke-role"
	UndoGrantRole       = "grant-role"
	UndoDropUser        = "drop-user"
	UndoSetRestrictions = "set-restrictions"
	// UndoRedeliver is not done on the server: the bot gives applications the other user of
	// a pair of alternating users again (Undo refuses it).
	UndoRedeliver = "redeliver"
)

// Change is what an action did: the journal stores it, the result message shows it, and Undo
// reverses it. It never holds a password.
type Change struct {
	Action    string    `json:"action"`
	Connector string    `json:"connector"`
	User      UserRef   `json:"user"`
	Role      *Role     `json:"role,omitempty"`
	Before    UserState `json:"before"`
	After     UserState `json:"after"`
	Undo      *Undo     `json:"undo,omitempty"`
	// NoUndo says why there is no undo, when Undo is nil.
	NoUndo string `json:"no_undo,omitempty"`
	// Notes are facts the requester should know ("logged in with the new password").
	Notes []string `json:"notes,omitempty"`
	// Warnings are parts that did not work although the change was applied.
	Warnings []string `json:"warnings,omitempty"`
	// unconfirmed is set when a majority did not confirm the write (a writeConcernError).
	unconfirmed bool
}
