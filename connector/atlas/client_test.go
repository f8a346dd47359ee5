package atlas_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/connector/atlas"
	"mongobot/connector/atlas/atlastest"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

const (
	clientID     = "mdb_sa_id_6543210fedcba"
	clientSecret = "mdb_sa_sk_not-a-real-secret-0123456789"
	publicKey    = "abcdefgh"
	privateKey   = "0f1e2d3c-private-key-not-real"
)

// clients are a client of each credential kind against one stand-in.
func clients(t *testing.T, s *atlastest.Server) map[string]*atlas.Client {
	t.Helper()
	out := map[string]*atlas.Client{}
	for name, cfg := range map[string]atlas.Config{
		"service account": {ClientID: clientID, ClientSecret: secret.New(clientSecret)},
		"API key":         {PublicKey: publicKey, PrivateKey: secret.New(privateKey)},
	} {
		cfg.BaseURL, cfg.ProjectID, cfg.RetryBase = s.URL(), atlastest.ProjectID, 10*time.Millisecond
		c, err := atlas.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = c
	}
	return out
}

// The database-user operations, with each credential kind, against the stand-in that
// validates every request and response against Atlas's OpenAPI document; accepted changes
// reach the emulator behind it after a delay.
func TestDatabaseUsers(t *testing.T) {
	cluster, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	s := atlastest.New(t, atlastest.Options{ClientID: clientID, ClientSecret: clientSecret, PublicKey: publicKey, PrivateKey: privateKey,
		Cluster: cluster, ApplyDelay: 50 * time.Millisecond})
	for kind, c := range clients(t, s) {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			name := "app-" + strings.ReplaceAll(kind, " ", "")
			until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
			u, err := c.CreateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: name, Password: "first-password-123",
				Roles: []atlas.Role{{DatabaseName: "shop", RoleName: "read"}}, Scopes: []atlas.Scope{{Name: "cluster0", Type: "CLUSTER"}},
				DeleteAfterDate: &until})
			if err != nil {
				t.Fatal(err)
			}
			if u.Password != "" || u.Username != name || u.DeleteAfterDate == nil || !u.DeleteAfterDate.Equal(until) {
				t.Fatalf("created %+v", u)
			}
			if _, err := c.CreateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: name, Password: "another-password"}); !errors.Is(err, &atlas.Error{Kind: atlas.ErrConflict}) {
				t.Fatalf("a second create: %v", err)
			}
			s.WaitApplied()
			if !cluster.CheckPassword(mongotest.UserRef{User: name, DB: "admin"}, "first-password-123") {
				t.Fatal("the cluster does not have the user Atlas accepted")
			}
			got, err := c.User(ctx, "admin", name)
			if err != nil || len(got.Roles) != 1 || got.Roles[0].RoleName != "read" {
				t.Fatalf("read back: %+v, %v", got, err)
			}
			got.Password = "second-password-456"
			got.Roles = append(got.Roles, atlas.Role{DatabaseName: "shop", RoleName: "readWrite"})
			if _, err := c.UpdateUser(ctx, got); err != nil {
				t.Fatal(err)
			}
			s.WaitApplied()
			if !cluster.CheckPassword(mongotest.UserRef{User: name, DB: "admin"}, "second-password-456") {
				t.Fatal("the cluster does not have the new password")
			}
			if err := c.DeleteUser(ctx, "admin", name); err != nil {
				t.Fatal(err)
			}
			if _, err := c.User(ctx, "admin", name); !errors.Is(err, &atlas.Error{Kind: atlas.ErrNotFound}) {
				t.Fatalf("after delete: %v", err)
			}
			// deleteAfterDate more than a week away: refused by Atlas, in words.
			far := time.Now().Add(8 * 24 * time.Hour)
			_, err = c.CreateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: name, Password: "third-password-789", DeleteAfterDate: &far})
			if !errors.Is(err, &atlas.Error{Kind: atlas.ErrInvalid}) || !strings.Contains(err.Error(), "at most a week away") {
				t.Fatalf("deleteAfterDate a week and a day away: %v", err)
			}
		})
	}
}

// Pages are followed to the end; a rate limit is waited out, honouring Retry-After.
func TestPagesAndRateLimits(t *testing.T) {
	s := atlastest.New(t, atlastest.Options{PublicKey: publicKey, PrivateKey: privateKey})
	c := clients(t, s)["API key"]
	ctx := t.Context()
	for i := range 503 {
		if _, err := c.CreateUser(ctx, atlas.DatabaseUser{DatabaseName: "admin", Username: fmt.Sprintf("u%03d", i), Password: "password-long-enough"}); err != nil {
			t.Fatal(err)
		}
	}
	s.RateLimit(1)
	start := time.Now()
	users, err := c.Users(ctx)
	if err != nil || len(users) != 503 {
		t.Fatalf("%d users, %v", len(users), err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %s; Retry-After said 1s", d)
	}
	var pages int
	for _, call := range s.Calls() {
		if call == "GET /api/atlas/v2/groups/"+atlastest.ProjectID+"/databaseUsers" {
			pages++
		}
	}
	if pages != 3 { // the rate-limited one, then two pages of 500
		t.Fatalf("%d list calls, want 3", pages)
	}
}

// A refused credential, a wrong project and a missing permission each say what to fix, and
// no error holds a secret.
func TestErrorsInWords(t *testing.T) {
	s := atlastest.New(t, atlastest.Options{ClientID: clientID, ClientSecret: clientSecret, PublicKey: publicKey, PrivateKey: privateKey})
	ctx := t.Context()
	for _, c := range []struct {
		name string
		cfg  atlas.Config
		want []string
	}{
		{"wrong client secret", atlas.Config{ClientID: clientID, ClientSecret: secret.New("mdb_sa_sk_wrong-secret-value")}, []string{"did not give the service account a token", "client_id and client_secret"}},
		{"wrong private key", atlas.Config{PublicKey: publicKey, PrivateKey: secret.New("wrong-private-key-value")}, []string{"does not accept the connector's credential"}},
	} {
		c.cfg.BaseURL, c.cfg.ProjectID, c.cfg.Retries = s.URL(), atlastest.ProjectID, 1
		cl, err := atlas.New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Users(ctx)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", c.name, err, w)
			}
		}
		for _, sec := range []string{clientSecret, privateKey, "mdb_sa_sk_wrong-secret-value", "wrong-private-key-value"} {
			if err != nil && strings.Contains(err.Error(), sec) {
				t.Errorf("%s: the error holds a secret: %v", c.name, err)
			}
		}
	}
	other, err := atlas.New(atlas.Config{BaseURL: s.URL(), ProjectID: "000000000000000000000000", PublicKey: publicKey, PrivateKey: secret.New(privateKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Users(ctx); !errors.Is(err, &atlas.Error{Kind: atlas.ErrNotFound}) {
		t.Fatalf("another project: %v", err)
	}
	for _, bad := range []atlas.Config{
		{BaseURL: s.URL(), ProjectID: "not-a-project"},
		{BaseURL: s.URL(), ProjectID: atlastest.ProjectID},
		{BaseURL: s.URL(), ProjectID: atlastest.ProjectID, ClientID: clientID, PublicKey: publicKey, PrivateKey: secret.New(privateKey)},
	} {
		if _, err := atlas.New(bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	if calls := s.Calls(); slices.Contains(calls, "") {
		t.Fatal("an empty call")
	}
}

// The permission check changes nothing, and tells a read-only credential from a manager.
func TestCanManage(t *testing.T) {
	for _, ro := range []bool{false, true} {
		s := atlastest.New(t, atlastest.Options{PublicKey: publicKey, PrivateKey: privateKey, ReadOnly: ro})
		c := clients(t, s)["API key"]
		ok, err := c.CanManage(t.Context())
		if err != nil || ok == ro {
			t.Fatalf("read-only %v: can manage %v, %v", ro, ok, err)
		}
		if users, err := c.Users(t.Context()); err != nil || len(users) != 0 {
			t.Fatalf("the check left %d users, %v", len(users), err)
		}
	}
}
