package connector_test

import (
	"context"
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/connector/atlas/atlastest"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// conn is what the conformance suite drives: a connector of either kind, over the wire or
// through Atlas's Administration API.
type conn interface {
	Discover(ctx context.Context) (connector.ServerInfo, error)
	Users(ctx context.Context, db string) ([]connector.User, error)
	State(ctx context.Context, u connector.UserRef) (connector.UserState, error)
	Login(ctx context.Context, u connector.UserRef, pw secret.String) error
	RotatePassword(ctx context.Context, o connector.RotateOptions) (connector.Change, secret.String, error)
	GrantRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error)
	RevokeRole(ctx context.Context, u connector.UserRef, r connector.Role) (connector.Change, error)
	CreateReadOnlyUser(ctx context.Context, u connector.UserRef, db string, beforeApply func(secret.String) error) (connector.Change, secret.String, error)
	DropUser(ctx context.Context, u connector.UserRef, beforeDrop func(connector.UserState) error) (connector.Change, error)
	Undo(ctx context.Context, ch connector.Change) (connector.Change, error)
	LockUser(ctx context.Context, u connector.UserRef) (connector.Change, error)
	UnlockUser(ctx context.Context, u connector.UserRef, restore []connector.Restriction) (connector.Change, error)
	Supports(ctx context.Context, action string, killSessions bool) error
	// CreateUser makes a user to act on, with a generated password.
	CreateUser(ctx context.Context, action string, u connector.UserRef, roles []connector.Role) (connector.Change, secret.String, error)
}

var _ conn = (*connector.Mongo)(nil)

// eachKind runs f on every server of each, then on an Atlas project: the Administration API
// stand-in (every request and response validated against Atlas's OpenAPI document) whose
// accepted changes reach an emulator, its cluster, 50 ms later.
func eachKind(t *testing.T, f func(t *testing.T, s server)) {
	each(t, f)
	onAtlas(t, f)
}

// onAtlas runs f on an Atlas project only.
func onAtlas(t *testing.T, f func(t *testing.T, s server)) {
	t.Run("atlas", func(t *testing.T) {
		cluster := startEmulator(t, mongotest.Options{})
		api := atlastest.New(t, atlastest.Options{ClientID: atlasClientID, ClientSecret: atlasClientSecret, Cluster: cluster, ApplyDelay: 50 * time.Millisecond})
		f(t, server{kind: "atlas", uri: cluster.URI(), adminPwd: cluster.AdminPassword(), emu: cluster, userURI: cluster.UserURI, api: api})
	})
}

const (
	atlasClientID     = "mdb_sa_id_conformance"
	atlasClientSecret = "mdb_sa_sk_conformance-not-a-real-secret"
)

// open makes a connector of s's kind.
func open(t *testing.T, s server) conn {
	t.Helper()
	if s.api == nil {
		return connect(t, s)
	}
	client, err := atlas.New(atlas.Config{BaseURL: s.api.URL(), ProjectID: atlastest.ProjectID, ClientID: atlasClientID,
		ClientSecret: secret.New(atlasClientSecret), RetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wire := connect(t, server{kind: "cluster0", uri: s.uri})
	return atlasConn{atlas.NewConnector(atlas.ConnectorConfig{Name: "test-atlas", Client: client, Clusters: []string{"cluster0"},
		Verify: wire, VerifyWithin: 10 * time.Second, VerifyEvery: 20 * time.Millisecond})}
}

// atlasConn makes the users the suite acts on through the API too.
type atlasConn struct{ *atlas.Connector }

// baseRole is what a user the suite creates holds on Atlas, where every database user has
// at least one role.
var baseRole = connector.Role{Name: "read", DB: "mongobot_conformance"}

func (a atlasConn) CreateUser(ctx context.Context, _ string, u connector.UserRef, roles []connector.Role) (connector.Change, secret.String, error) {
	if len(roles) == 0 {
		roles = []connector.Role{baseRole}
	}
	return a.CreateAccessUser(ctx, u, roles, connector.AccessOwner{}, nil)
}
