package mongotest_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"mongobot/connector/mongotest"
)

func start(t *testing.T, o mongotest.Options) *mongotest.Server {
	t.Helper()
	s, err := mongotest.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx)
	})
	return c
}

func run(ctx context.Context, c *mongo.Client, db string, cmd bson.D) error {
	return c.Database(db).RunCommand(ctx, cmd).Err()
}

func mustRun(t *testing.T, c *mongo.Client, db string, cmd bson.D) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, c, db, cmd); err != nil {
		t.Fatalf("%v: %v", cmd[0].Key, err)
	}
}

func codeOf(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

var adminRef = mongotest.UserRef{User: "admin", DB: "admin"}

// lastEntries returns the entries after mark and checks there are n of them.
func lastEntries(t *testing.T, s *mongotest.Server, mark uint64, n int) []mongotest.Applied {
	t.Helper()
	got := s.AppliedSince(mark)
	if len(got) != n {
		t.Fatalf("%d entries after %d, want %d: %+v", len(got), mark, n, got)
	}
	for i, a := range got {
		if a.Seq != mark+uint64(i)+1 {
			t.Fatalf("entry %d has Seq %d, want %d", i, a.Seq, mark+uint64(i)+1)
		}
	}
	return got
}

// Every applied user change is recorded with what changed; failures record nothing; no
// password is ever kept.
func TestAppliedRecordsEveryUserChange(t *testing.T) {
	s := start(t, mongotest.Options{})
	c := dial(t, s.URI())
	ctx := context.Background()

	boot := s.Applied()
	if len(boot) != 1 || boot[0].Command != "createUser" || boot[0].User != adminRef || boot[0].By != (mongotest.UserRef{}) ||
		!boot[0].Created || !boot[0].PasswordChanged || boot[0].Conn != 0 {
		t.Fatalf("the admin account's creation: %+v", boot)
	}
	mark := s.AppliedSeq()
	if mark != 1 {
		t.Fatalf("AppliedSeq %d, want 1", mark)
	}
	app := mongotest.UserRef{User: "app", DB: "shop"}
	restr := bson.A{bson.D{{Key: "clientSource", Value: bson.A{"127.0.0.1"}}}}
	pw1, pw2 := "first-secret-pw-1", "second-secret-pw-2"

	// createUser
	mustRun(t, c, "shop", bson.D{{Key: "createUser", Value: "app"}, {Key: "pwd", Value: pw1},
		{Key: "roles", Value: bson.A{"readWrite", bson.D{{Key: "role", Value: "read"}, {Key: "db", Value: "admin"}}}},
		{Key: "authenticationRestrictions", Value: restr}, {Key: "customData", Value: bson.D{{Key: "team", Value: "a"}}}})
	a := lastEntries(t, s, mark, 1)[0]
	wantRoles := []mongotest.Role{{Role: "read", DB: "admin"}, {Role: "readWrite", DB: "shop"}}
	if a.Command != "createUser" || a.User != app || a.By != adminRef || a.Conn == 0 || !a.Created || a.Dropped ||
		!a.PasswordChanged || !reflect.DeepEqual(a.RolesAdded, wantRoles) || a.RolesRemoved != nil ||
		!a.RestrictionsChanged || !a.CustomDataChanged || !a.MechanismsChanged || a.Before != nil || a.After == nil ||
		!reflect.DeepEqual(a.Fields, []string{"pwd", "roles", "authenticationRestrictions", "customData"}) {
		t.Fatalf("createUser: %+v", a)
	}
	if !reflect.DeepEqual(a.After.Roles, wantRoles) || a.After.PasswordVersion != 1 ||
		!reflect.DeepEqual(a.After.Restrictions, []mongotest.Restriction{{ClientSource: []string{"127.0.0.1"}}}) {
		t.Fatalf("createUser After: %+v", a.After)
	}
	if time.Since(a.Time) > time.Minute || time.Since(a.Time) < 0 {
		t.Errorf("Time %v", a.Time)
	}
	if !s.CheckPassword(app, pw1) || s.CheckPassword(app, pw2) {
		t.Error("CheckPassword after createUser")
	}
	mark = a.Seq

	// updateUser: a password only.
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "app"}, {Key: "pwd", Value: pw2}})
	a = lastEntries(t, s, mark, 1)[0]
	if a.Command != "updateUser" || !a.PasswordChanged || a.RestrictionsChanged || a.CustomDataChanged || a.MechanismsChanged ||
		a.RolesAdded != nil || a.RolesRemoved != nil || a.Created || a.Dropped ||
		!reflect.DeepEqual(a.Fields, []string{"pwd"}) || a.Before.PasswordVersion != 1 || a.After.PasswordVersion != 2 {
		t.Fatalf("updateUser pwd: %+v", a)
	}
	if s.CheckPassword(app, pw1) || !s.CheckPassword(app, pw2) {
		t.Error("CheckPassword after updateUser")
	}
	mark = a.Seq

	// updateUser: restrictions only, then customData only.
	restr2 := bson.A{bson.D{{Key: "clientSource", Value: bson.A{"127.0.0.0/8"}}, {Key: "serverAddress", Value: bson.A{"127.0.0.1"}}}}
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "app"}, {Key: "authenticationRestrictions", Value: restr2}})
	a = lastEntries(t, s, mark, 1)[0]
	if a.PasswordChanged || !a.RestrictionsChanged || a.CustomDataChanged || a.RolesAdded != nil ||
		!reflect.DeepEqual(a.Before.Restrictions, []mongotest.Restriction{{ClientSource: []string{"127.0.0.1"}}}) ||
		!reflect.DeepEqual(a.After.Restrictions, []mongotest.Restriction{{ClientSource: []string{"127.0.0.0/8"}, ServerAddress: []string{"127.0.0.1"}}}) {
		t.Fatalf("updateUser restrictions: %+v (before %+v, after %+v)", a, a.Before, a.After)
	}
	mark = a.Seq
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "app"}, {Key: "authenticationRestrictions", Value: bson.A{}}})
	a = lastEntries(t, s, mark, 1)[0]
	if !a.RestrictionsChanged || a.After.Restrictions != nil {
		t.Fatalf("updateUser clearing restrictions: %+v", a)
	}
	mark = a.Seq
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "app"}, {Key: "customData", Value: bson.D{{Key: "team", Value: "b"}}}})
	a = lastEntries(t, s, mark, 1)[0]
	if a.PasswordChanged || a.RestrictionsChanged || !a.CustomDataChanged || !reflect.DeepEqual(a.Fields, []string{"customData"}) {
		t.Fatalf("updateUser customData: %+v", a)
	}
	if v := a.After.CustomData.Lookup("team").StringValue(); v != "b" {
		t.Errorf("customData after: %v", a.After.CustomData)
	}
	mark = a.Seq

	// updateUser: roles replaced.
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "app"}, {Key: "roles", Value: bson.A{"read", "readWrite"}}})
	a = lastEntries(t, s, mark, 1)[0]
	if !reflect.DeepEqual(a.RolesAdded, []mongotest.Role{{Role: "read", DB: "shop"}}) ||
		!reflect.DeepEqual(a.RolesRemoved, []mongotest.Role{{Role: "read", DB: "admin"}}) || a.PasswordChanged {
		t.Fatalf("updateUser roles: %+v", a)
	}
	mark = a.Seq

	// grantRolesToUser and revokeRolesFromUser; a grant of a role held changes nothing but is applied.
	mustRun(t, c, "shop", bson.D{{Key: "grantRolesToUser", Value: "app"}, {Key: "roles", Value: bson.A{"dbAdmin", "read"}}})
	mustRun(t, c, "shop", bson.D{{Key: "revokeRolesFromUser", Value: "app"}, {Key: "roles", Value: bson.A{"read", "userAdmin"}}})
	mustRun(t, c, "shop", bson.D{{Key: "grantRolesToUser", Value: "app"}, {Key: "roles", Value: bson.A{"dbAdmin"}}})
	es := lastEntries(t, s, mark, 3)
	if es[0].Command != "grantRolesToUser" || !reflect.DeepEqual(es[0].RolesAdded, []mongotest.Role{{Role: "dbAdmin", DB: "shop"}}) || es[0].RolesRemoved != nil ||
		es[1].Command != "revokeRolesFromUser" || !reflect.DeepEqual(es[1].RolesRemoved, []mongotest.Role{{Role: "read", DB: "shop"}}) || es[1].RolesAdded != nil ||
		es[2].RolesAdded != nil || es[2].RolesRemoved != nil || !reflect.DeepEqual(es[2].Fields, []string{"roles"}) {
		t.Fatalf("grant/revoke: %+v", es)
	}
	mark = es[2].Seq

	// Failures record nothing.
	for _, cmd := range []bson.D{
		{{Key: "dropUser", Value: "nobody"}},
		{{Key: "createUser", Value: "app"}, {Key: "pwd", Value: "x-y-z-pw"}, {Key: "roles", Value: bson.A{}}},
		{{Key: "updateUser", Value: "app"}, {Key: "roles", Value: bson.A{"noSuchRole"}}},
		{{Key: "grantRolesToUser", Value: "nobody"}, {Key: "roles", Value: bson.A{"read"}}},
		{{Key: "updateUser", Value: "app"}, {Key: "bogus", Value: 1}},
	} {
		if err := run(ctx, c, "shop", cmd); err == nil {
			t.Fatalf("%v succeeded", cmd)
		}
	}
	s.Inject(mongotest.Fault{Command: "dropUser", Code: 11000, Times: 1})
	if err := run(ctx, c, "shop", bson.D{{Key: "dropUser", Value: "app"}}); codeOf(err) != 11000 {
		t.Fatalf("injected error: %v", err)
	}
	lastEntries(t, s, mark, 0)

	// A custom role dropped is taken away from its holders.
	mustRun(t, c, "shop", bson.D{{Key: "createRole", Value: "auditor"}, {Key: "privileges", Value: bson.A{}}, {Key: "roles", Value: bson.A{}}})
	mustRun(t, c, "shop", bson.D{{Key: "grantRolesToUser", Value: "app"}, {Key: "roles", Value: bson.A{"auditor"}}})
	mustRun(t, c, "shop", bson.D{{Key: "dropRole", Value: "auditor"}})
	es = lastEntries(t, s, mark, 2)
	if es[1].Command != "dropRole" || es[1].User != app || !reflect.DeepEqual(es[1].RolesRemoved, []mongotest.Role{{Role: "auditor", DB: "shop"}}) {
		t.Fatalf("dropRole: %+v", es[1])
	}
	mark = es[1].Seq

	// dropUser, then dropAllUsersFromDatabase: one entry per user, in name order.
	mustRun(t, c, "shop", bson.D{{Key: "dropUser", Value: "app"}})
	a = lastEntries(t, s, mark, 1)[0]
	if a.Command != "dropUser" || !a.Dropped || a.Created || a.After != nil || a.Before == nil || a.User != app ||
		!reflect.DeepEqual(a.RolesRemoved, []mongotest.Role{{Role: "dbAdmin", DB: "shop"}, {Role: "readWrite", DB: "shop"}}) ||
		a.Fields != nil || a.PasswordChanged {
		t.Fatalf("dropUser: %+v", a)
	}
	if s.CheckPassword(app, pw2) {
		t.Error("CheckPassword of a dropped user")
	}
	mark = a.Seq
	for _, n := range []string{"zed", "bea"} {
		mustRun(t, c, "shop", bson.D{{Key: "createUser", Value: n}, {Key: "pwd", Value: "pw-" + n}, {Key: "roles", Value: bson.A{}}})
	}
	mustRun(t, c, "other", bson.D{{Key: "createUser", Value: "kept"}, {Key: "pwd", Value: "pw-kept"}, {Key: "roles", Value: bson.A{}}})
	mark += 3
	mustRun(t, c, "shop", bson.D{{Key: "dropAllUsersFromDatabase", Value: 1}})
	es = lastEntries(t, s, mark, 2)
	if es[0].User.User != "bea" || es[1].User.User != "zed" || !es[0].Dropped || !es[1].Dropped ||
		es[0].Command != "dropAllUsersFromDatabase" || es[1].Command != "dropAllUsersFromDatabase" {
		t.Fatalf("dropAllUsersFromDatabase: %+v", es)
	}
	mark = es[1].Seq
	mustRun(t, c, "shop", bson.D{{Key: "dropAllUsersFromDatabase", Value: 1}})
	lastEntries(t, s, mark, 0)

	// No password, in any form the record can be printed in.
	text := fmt.Sprintf("%+v %#v", s.Applied(), s.Applied())
	for _, p := range []string{pw1, pw2, "pw-zed", "pw-bea", "pw-kept", s.AdminPassword()} {
		if strings.Contains(text, p) {
			t.Errorf("the record holds a password %q", p)
		}
	}
}

// By tells the accounts apart: the test's own admin, a second administrator made with
// CreateUser for the code under test, and the emulator itself.
func TestAppliedByAndCreateUser(t *testing.T) {
	s := start(t, mongotest.Options{})
	botRef := mongotest.UserRef{User: "bot", DB: "admin"}
	if err := s.CreateUser("bot", "bot-secret-pw", "admin", []mongotest.Role{{Role: "userAdminAnyDatabase", DB: "admin"}, {Role: "clusterMonitor", DB: "admin"}}); err != nil {
		t.Fatal(err)
	}
	a := s.Applied()[1]
	if a.User != botRef || a.By != (mongotest.UserRef{}) || a.Conn != 0 || !a.Created || !a.PasswordChanged || len(a.RolesAdded) != 2 {
		t.Fatalf("CreateUser entry: %+v", a)
	}
	for _, bad := range []struct {
		name, pwd, db string
		roles         []mongotest.Role
	}{
		{"bot", "x", "admin", nil},                                   // exists
		{"other", "x", "admin", []mongotest.Role{{"nope", "admin"}}}, // no such role
		{"other", "", "admin", nil},                                  // no password
		{"", "x", "admin", nil},                                      // no name
		{"other", "x", "shop", []mongotest.Role{{"root", "shop"}}},   // root exists only in admin
	} {
		if err := s.CreateUser(bad.name, bad.pwd, bad.db, bad.roles); err == nil {
			t.Errorf("CreateUser(%q, %q, %q, %v) succeeded", bad.name, bad.pwd, bad.db, bad.roles)
		}
	}
	if len(s.Applied()) != 2 {
		t.Fatalf("failed CreateUser calls recorded: %+v", s.Applied())
	}
	if !s.CheckPassword(botRef, "bot-secret-pw") || s.CheckPassword(botRef, "bot-secret-pW") || !s.CheckPassword(adminRef, s.AdminPassword()) {
		t.Error("CheckPassword")
	}

	bot := dial(t, s.UserURI("bot", "bot-secret-pw", "admin"))
	own := dial(t, s.URI())
	mustRun(t, bot, "shop", bson.D{{Key: "createUser", Value: "u1"}, {Key: "pwd", Value: "pw-u1-xyz"}, {Key: "roles", Value: bson.A{"read"}}})
	mustRun(t, own, "shop", bson.D{{Key: "createUser", Value: "u2"}, {Key: "pwd", Value: "pw-u2-xyz"}, {Key: "roles", Value: bson.A{"read"}}})
	mustRun(t, bot, "shop", bson.D{{Key: "updateUser", Value: "u2"}, {Key: "pwd", Value: "pw-u2-new"}})
	es := lastEntries(t, s, 2, 3)
	if es[0].By != botRef || es[1].By != adminRef || es[2].By != botRef {
		t.Fatalf("By: %v %v %v", es[0].By, es[1].By, es[2].By)
	}
	if es[0].Conn == 0 || es[1].Conn == 0 || es[0].Conn == es[1].Conn {
		t.Errorf("Conn: %d %d", es[0].Conn, es[1].Conn)
	}
	// A user changing its own password is recorded as itself.
	u1 := dial(t, s.UserURI("u1", "pw-u1-xyz", "shop"))
	mustRun(t, u1, "shop", bson.D{{Key: "updateUser", Value: "u1"}, {Key: "pwd", Value: "pw-u1-new"}})
	if a := lastEntries(t, s, 5, 1)[0]; a.By != (mongotest.UserRef{User: "u1", DB: "shop"}) || a.User != a.By {
		t.Fatalf("self change: %+v", a)
	}
}

// Replaying the record from nothing gives the users Snapshot shows; Snapshot and Applied are
// copies the caller may change freely.
func TestReplayMatchesSnapshot(t *testing.T) {
	s := start(t, mongotest.Options{})
	c := dial(t, s.URI())
	mustRun(t, c, "shop", bson.D{{Key: "createUser", Value: "a"}, {Key: "pwd", Value: "pw-a-123"}, {Key: "roles", Value: bson.A{"readWrite", "read", "dbAdmin"}},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}}})
	mustRun(t, c, "shop", bson.D{{Key: "createUser", Value: "b"}, {Key: "pwd", Value: "pw-b-123"}, {Key: "roles", Value: bson.A{}},
		{Key: "authenticationRestrictions", Value: bson.A{bson.D{{Key: "clientSource", Value: bson.A{"127.0.0.1"}}}}}})
	mustRun(t, c, "shop", bson.D{{Key: "revokeRolesFromUser", Value: "a"}, {Key: "roles", Value: bson.A{"read"}}})
	mustRun(t, c, "shop", bson.D{{Key: "updateUser", Value: "b"}, {Key: "pwd", Value: "pw-b-456"}, {Key: "customData", Value: bson.D{{Key: "k", Value: 1}}}})
	mustRun(t, c, "admin", bson.D{{Key: "createUser", Value: "c"}, {Key: "pwd", Value: "pw-c-123"}, {Key: "roles", Value: bson.A{"root"}}})
	mustRun(t, c, "admin", bson.D{{Key: "dropUser", Value: "c"}})
	mustRun(t, c, "admin", bson.D{{Key: "createUser", Value: "c"}, {Key: "pwd", Value: "pw-c-456"}, {Key: "roles", Value: bson.A{}}})

	replay := map[mongotest.UserRef]mongotest.UserSnapshot{}
	var ids = map[mongotest.UserRef][16]byte{}
	for _, a := range s.Applied() {
		if a.Dropped {
			delete(replay, a.User)
			continue
		}
		if !a.Created && !reflect.DeepEqual(*a.Before, replay[a.User]) {
			t.Fatalf("entry %d: Before %+v, replayed %+v", a.Seq, a.Before, replay[a.User])
		}
		replay[a.User] = *a.After
		if a.Created {
			if old, ok := ids[a.User]; ok && old == a.After.UserID {
				t.Errorf("re-created %v kept its userId", a.User)
			}
			ids[a.User] = a.After.UserID
		}
	}
	snap := s.Snapshot()
	if !reflect.DeepEqual(replay, snap) {
		t.Fatalf("replay %+v\nsnapshot %+v", replay, snap)
	}
	a := snap[mongotest.UserRef{User: "a", DB: "shop"}]
	if !reflect.DeepEqual(a.Roles, []mongotest.Role{{Role: "dbAdmin", DB: "shop"}, {Role: "readWrite", DB: "shop"}}) ||
		!slices.Equal(a.Mechanisms, []string{"SCRAM-SHA-256"}) || a.PasswordVersion != 1 {
		t.Errorf("snapshot of a: %+v", a)
	}
	if b := snap[mongotest.UserRef{User: "b", DB: "shop"}]; b.PasswordVersion != 2 || b.CustomData == nil || len(b.Restrictions) != 1 {
		t.Errorf("snapshot of b: %+v", b)
	}
	if len(snap) != 4 {
		t.Errorf("snapshot holds %d users, want 4 (admin, a, b, c)", len(snap))
	}

	// Copies: scribbling on them changes nothing in the server.
	want := s.Snapshot()
	a.Roles[0].Role = "scribbled"
	got := s.Applied()
	got[1].After.Roles[0].Role = "scribbled"
	got[1].RolesAdded[0].Role = "scribbled"
	if !reflect.DeepEqual(s.Snapshot(), want) || reflect.DeepEqual(s.Applied(), got) {
		t.Error("Snapshot or Applied shares memory with the server")
	}
	if n := len(s.AppliedSince(s.AppliedSeq())); n != 0 {
		t.Errorf("AppliedSince(AppliedSeq()) has %d entries", n)
	}
	if n := len(s.AppliedSince(1 << 40)); n != 0 {
		t.Errorf("AppliedSince(far) has %d entries", n)
	}
}

// DelayAfter: the change is applied and recorded, then the answer waits; a client that times
// out has its change made anyway.
func TestDelayAfterAppliesThenWaits(t *testing.T) {
	s := start(t, mongotest.Options{})
	c := dial(t, s.URI())
	mustRun(t, c, "admin", bson.D{{Key: "createUser", Value: "u"}, {Key: "pwd", Value: "pw-old-123"}, {Key: "roles", Value: bson.A{}}})
	u := mongotest.UserRef{User: "u", DB: "admin"}
	mark := s.AppliedSeq()

	s.Inject(mongotest.Fault{Command: "updateUser", DelayAfter: 400 * time.Millisecond, Times: 1})
	begin := time.Now()
	mustRun(t, c, "admin", bson.D{{Key: "updateUser", Value: "u"}, {Key: "pwd", Value: "pw-new-123"}})
	if d := time.Since(begin); d < 400*time.Millisecond {
		t.Errorf("answered after %v, before DelayAfter", d)
	}
	a := lastEntries(t, s, mark, 1)[0]
	if a.Time.Sub(begin) > 300*time.Millisecond {
		t.Errorf("recorded %v after the call began: after the delay, not when applied", a.Time.Sub(begin))
	}
	mark = a.Seq

	// The client gives up; the change is there, recorded, before the answer would have come.
	s.Inject(mongotest.Fault{Command: "updateUser", DelayAfter: 3 * time.Second, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := run(ctx, c, "admin", bson.D{{Key: "updateUser", Value: "u"}, {Key: "pwd", Value: "pw-timeout-1"}})
	cancel()
	if err == nil || !mongo.IsTimeout(err) {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if got := lastEntries(t, s, mark, 1); !got[0].PasswordChanged || !s.CheckPassword(u, "pw-timeout-1") {
		t.Fatalf("after the timeout: %+v", got)
	}
	if s.Count("updateUser") != 2 {
		t.Errorf("Count %d", s.Count("updateUser"))
	}
}

// DropAfter: the change is applied and recorded, and the connection closes with no answer.
func TestDropAfterAppliesThenDrops(t *testing.T) {
	s := start(t, mongotest.Options{})
	c := dial(t, s.URI())
	s.Inject(mongotest.Fault{Command: "createUser", DropAfter: true, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, c, "shop", bson.D{{Key: "createUser", Value: "u"}, {Key: "pwd", Value: "pw-u-123"}, {Key: "roles", Value: bson.A{"read"}}})
	if err == nil || !mongo.IsNetworkError(err) {
		t.Fatalf("want a network error, got %v", err)
	}
	u := mongotest.UserRef{User: "u", DB: "shop"}
	if a := lastEntries(t, s, 1, 1)[0]; a.User != u || !a.Created {
		t.Fatalf("entry: %+v", a)
	}
	if _, ok := s.Snapshot()[u]; !ok {
		t.Fatal("the user is not there")
	}
	// The fault is spent: a retry meets the server as it is.
	err = run(ctx, c, "shop", bson.D{{Key: "createUser", Value: "u"}, {Key: "pwd", Value: "pw-u-123"}, {Key: "roles", Value: bson.A{"read"}}})
	if codeOf(err) != 51003 {
		t.Fatalf("retry: %v", err)
	}
	// A failing command under DropAfter changes nothing and still gets no answer.
	s.Inject(mongotest.Fault{Command: "dropUser", DropAfter: true, Times: 1})
	if err := run(ctx, c, "shop", bson.D{{Key: "dropUser", Value: "nobody"}}); !mongo.IsNetworkError(err) {
		t.Fatalf("want a network error, got %v", err)
	}
	// Drop (before) runs nothing.
	s.Inject(mongotest.Fault{Command: "dropUser", Drop: true, DropAfter: true, Times: 1})
	if err := run(ctx, c, "shop", bson.D{{Key: "dropUser", Value: "u"}}); !mongo.IsNetworkError(err) {
		t.Fatalf("want a network error, got %v", err)
	}
	lastEntries(t, s, 2, 0)
	if _, ok := s.Snapshot()[u]; !ok {
		t.Fatal("Drop ran the command")
	}
}

// Delay waits before applying: nothing is recorded while the command waits. Close interrupts
// both Delay and DelayAfter.
func TestCloseInterruptsDelays(t *testing.T) {
	for _, f := range []mongotest.Fault{
		{Command: "createUser", Delay: time.Hour},
		{Command: "createUser", DelayAfter: time.Hour},
	} {
		t.Run(fmt.Sprintf("Delay=%v,DelayAfter=%v", f.Delay, f.DelayAfter), func(t *testing.T) {
			s, err := mongotest.NewServer(mongotest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := dial(t, s.URI())
			s.Inject(f)
			errc := make(chan error, 1)
			go func() {
				errc <- run(context.Background(), c, "shop", bson.D{{Key: "createUser", Value: "u"}, {Key: "pwd", Value: "pw-u-123"}, {Key: "roles", Value: bson.A{}}})
			}()
			deadline := time.Now().Add(10 * time.Second)
			for s.Received("createUser") == 0 || (f.DelayAfter > 0 && s.AppliedSeq() < 2) {
				if time.Now().After(deadline) {
					t.Fatal("the command never arrived")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			want := 1
			if f.DelayAfter > 0 {
				want = 2 // applied before the wait
			}
			if n := len(s.Applied()); n != want {
				t.Fatalf("%d entries while waiting, want %d", n, want)
			}
			begin := time.Now()
			s.Close()
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("Close took %v", d)
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Error("the command was answered")
				}
			case <-time.After(10 * time.Second):
				t.Error("the client never returned")
			}
			if n := len(s.Applied()); n != want {
				t.Errorf("%d entries after Close, want %d", n, want)
			}
		})
	}
}
