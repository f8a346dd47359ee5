package mongotest_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector/mongotest"
)

// Restrictions on a role bind every user holding it, directly or through another role, on top
// of the user's own; usersInfo shows them as one array per restricted role
// (authentication_restrictions_role.js).
func TestRoleRestrictionsAreEnforced(t *testing.T) {
	s := start(t, mongotest.Options{})
	admin := dial(t, s.URI())
	mustRun(t, admin, "admin", bson.D{{Key: "createRole", Value: "walled"}, {Key: "privileges", Value: bson.A{}}, {Key: "roles", Value: bson.A{}},
		{Key: "authenticationRestrictions", Value: bson.A{bson.D{{Key: "clientSource", Value: bson.A{"192.0.2.0/32"}}}}}})
	mustRun(t, admin, "admin", bson.D{{Key: "createRole", Value: "outer"}, {Key: "privileges", Value: bson.A{}}, {Key: "roles", Value: bson.A{"walled"}}})
	mustRun(t, admin, "admin", bson.D{{Key: "createUser", Value: "direct"}, {Key: "pwd", Value: "pw-direct-1"}, {Key: "roles", Value: bson.A{"walled"}}})
	mustRun(t, admin, "admin", bson.D{{Key: "createUser", Value: "nested"}, {Key: "pwd", Value: "pw-nested-1"}, {Key: "roles", Value: bson.A{"outer"}}})
	mustRun(t, admin, "admin", bson.D{{Key: "createUser", Value: "free"}, {Key: "pwd", Value: "pw-free-1"}, {Key: "roles", Value: bson.A{"read"}}})

	login := func(user, pw string) error {
		c := dial(t, s.UserURI(user, pw, "admin"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return run(ctx, c, "admin", bson.D{{Key: "ping", Value: 1}})
	}
	if err := login("free", "pw-free-1"); err != nil {
		t.Fatalf("an unrestricted user: %v", err)
	}
	for _, u := range [][2]string{{"direct", "pw-direct-1"}, {"nested", "pw-nested-1"}} {
		if code := codeOf(login(u[0], u[1])); code != 18 {
			t.Errorf("%s holds a role restricted to 192.0.2.0/32 and logged in from 127.0.0.1 (code %d)", u[0], code)
		}
	}
	var reply struct {
		Users []struct {
			Inherited [][]bson.M `bson:"inheritedAuthenticationRestrictions"`
			Own       []bson.M   `bson:"authenticationRestrictions"`
		} `bson:"users"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "usersInfo", Value: "nested"}, {Key: "showAuthenticationRestrictions", Value: true}}).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	if len(reply.Users) != 1 || len(reply.Users[0].Inherited) != 1 || len(reply.Users[0].Inherited[0]) != 1 || reply.Users[0].Own == nil || len(reply.Users[0].Own) != 0 {
		t.Fatalf("usersInfo of a user with a restricted inherited role: %+v", reply.Users)
	}
}
