package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// TestSupports checks the refusals the bot shows before asking anyone to approve.
func TestSupports(t *testing.T) {
	each(t, func(t *testing.T, s server) {
		m := connect(t, s)
		ctx := context.Background()
		for _, a := range []string{"rotate-password", "drop-user"} {
			if err := m.Supports(ctx, a, false); err != nil {
				t.Errorf("%s: %v", a, err)
			}
		}
		for _, a := range []string{"grant-role", "revoke-role", "create-readonly-user", "lock-user", "unlock-user"} {
			err := m.Supports(ctx, a, false)
			if s.ferret() != errors.Is(err, connector.ErrUnsupported) {
				t.Errorf("%s on %s: %v", a, s.kind, err)
			}
		}
		if err := m.Supports(ctx, "rotate-password", true); s.ferret() != errors.Is(err, connector.ErrUnsupported) {
			t.Errorf("--kill-sessions on %s: %v", s.kind, err)
		}
	})
	atlas, err := connector.New(connector.Config{Name: "atlas", URI: secret.New("mongodb+srv://u:p@cluster0.x1y2z.mongodb.net/")})
	if err != nil {
		t.Fatal(err)
	}
	if err := atlas.Supports(context.Background(), "rotate-password", false); !errors.Is(err, connector.ErrAtlas) {
		t.Fatalf("Atlas: %v", err)
	}
}

func TestAccountOf(t *testing.T) {
	for _, c := range []struct {
		uri  string
		want connector.UserRef
	}{
		{"mongodb://bot:pw@h:27017/", connector.UserRef{"bot", "admin"}},
		{"mongodb://bot:pw@h1,h2/shop", connector.UserRef{"bot", "shop"}},
		{"mongodb://b%40t:p%3Aw@h/shop?authSource=ops&tls=true", connector.UserRef{"b@t", "ops"}},
		{"mongodb+srv://bot:pw@cluster0.example.net/?authsource=admin", connector.UserRef{"bot", "admin"}},
		{"mongodb://h:27017/", connector.UserRef{}},
	} {
		m, err := connector.New(connector.Config{Name: "x", URI: secret.New(c.uri)})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Account(); got != c.want {
			t.Errorf("Account of %q = %v, want %v", c.uri, got, c.want)
		}
	}
}

// A grant of a role that does not exist is refused before anyone approves it: built-in roles
// are known without asking the server, custom ones are asked for.
func TestCheckRole(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	m := connect(t, server{uri: emu.URI()})
	admin := rawClient(t, emu.URI())
	if _, err := run(t, admin, "shop", bson.D{{Key: "createRole", Value: "reporting"}, {Key: "privileges", Value: bson.A{}}, {Key: "roles", Value: bson.A{}}}); err != nil {
		t.Fatal(err)
	}
	before := emu.Count("rolesInfo")
	for _, r := range []connector.Role{{Name: "read", DB: "shop"}, {Name: "root", DB: "admin"}, {Name: "readAnyDatabase", DB: "admin"}} {
		if err := m.CheckRole(ctx(t), r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	if n := emu.Count("rolesInfo") - before; n != 0 {
		t.Errorf("built-in roles cost %d round trips", n)
	}
	if err := m.CheckRole(ctx(t), connector.Role{Name: "reporting", DB: "shop"}); err != nil {
		t.Errorf("a custom role: %v", err)
	}
	for _, c := range []struct{ role, want string }{
		{"nosuchrole@shop", "role nosuchrole@shop does not exist on test-emulator"},
		{"readAnyDatabase@shop", "write readAnyDatabase@admin"},
		{"read@shop@x", "a role is written name@db, with one @"},
		{"reporting@admin", "role reporting@admin does not exist"},
	} {
		r, err := connector.ParseRole(c.role)
		if err != nil {
			t.Fatal(err)
		}
		err = m.CheckRole(ctx(t), r)
		mustKind(t, err, connector.ErrRoleNotFound)
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.role, err, c.want)
		}
	}
}
