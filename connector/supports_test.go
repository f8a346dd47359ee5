package connector_test

import (
	"context"
	"errors"
	"testing"

	"mongobot/connector"
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
