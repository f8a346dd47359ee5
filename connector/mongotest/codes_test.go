package mongotest_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector/mongotest"
)

// The emulator answers these with MongoDB's codes. The differential suite can only say that
// FerretDB differs here (it lacks the commands), so the codes are pinned here, each with the
// source it comes from (connector/REFERENCE.md).
func TestCodesAsMongoDB(t *testing.T) {
	s := start(t, mongotest.Options{})
	c := dial(t, s.URI())
	mustRun(t, c, "admin", bson.D{{Key: "createUser", Value: "app"}, {Key: "pwd", Value: "pw-app-1"}, {Key: "roles", Value: bson.A{}}})
	missingRole := bson.A{bson.D{{Key: "role", Value: "no_such_role"}, {Key: "db", Value: "shop"}}}
	wc := bson.D{{Key: "w", Value: "majority"}}
	for _, tc := range []struct {
		why  string
		cmd  bson.D
		code int32
	}{
		{"details on all users: IllegalOperation (usersInfo typedRun)",
			bson.D{{Key: "usersInfo", Value: 1}, {Key: "showAuthenticationRestrictions", Value: true}}, 20},
		{"details on every database's users: IllegalOperation",
			bson.D{{Key: "usersInfo", Value: bson.D{{Key: "forAllDBs", Value: true}}}, {Key: "showPrivileges", Value: true}}, 20},
		{"a missing user before a missing role: UserNotFound (getCurrentUserRoles before rolesExist)",
			bson.D{{Key: "grantRolesToUser", Value: "nobody"}, {Key: "roles", Value: missingRole}}, 11},
		{"revoke likewise", bson.D{{Key: "revokeRolesFromUser", Value: "nobody"}, {Key: "roles", Value: missingRole}}, 11},
		{"a missing role for an existing user: RoleNotFound", bson.D{{Key: "grantRolesToUser", Value: "app"}, {Key: "roles", Value: missingRole}}, 31},
		{"writeConcern on usersInfo: InvalidOptions", bson.D{{Key: "usersInfo", Value: "app"}, {Key: "writeConcern", Value: wc}}, 72},
		{"writeConcern on killAllSessions: InvalidOptions", bson.D{{Key: "killAllSessions", Value: bson.A{}}, {Key: "writeConcern", Value: wc}}, 72},
		{"writeConcern on connectionStatus: InvalidOptions", bson.D{{Key: "connectionStatus", Value: 1}, {Key: "writeConcern", Value: wc}}, 72},
		{"an empty restriction document: CollectionIsEmpty (address_restriction.cpp)",
			bson.D{{Key: "updateUser", Value: "app"}, {Key: "authenticationRestrictions", Value: bson.A{bson.D{}}}}, 162},
		{"customData that is not a document: TypeMismatch (reference case 9)",
			bson.D{{Key: "updateUser", Value: "app"}, {Key: "customData", Value: 1}}, 14},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, c, "admin", tc.cmd)
		cancel()
		if got := codeOf(err); got != tc.code {
			t.Errorf("%s: code %d (%v), want %d", tc.why, got, err, tc.code)
		}
	}
	// showCustomData is new in 5.0: 4.4 refuses it.
	old := start(t, mongotest.Options{Version: "4.4.29"})
	oc := dial(t, old.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got := codeOf(run(ctx, oc, "admin", bson.D{{Key: "usersInfo", Value: "admin"}, {Key: "showCustomData", Value: true}})); got != 2 {
		t.Errorf("showCustomData on 4.4: code %d, want 2", got)
	}
}
