package connector_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"mongobot/connector"
	"mongobot/connector/atlas/atlastest"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// server is one deployment the conformance suite runs against.
type server struct {
	kind     string // "emulator", "ferretdb", "mongodb" or "atlas"
	uri      string // on Atlas: its cluster's
	adminPwd string
	emu      *mongotest.Server // the emulator's controls (on Atlas: its cluster's); nil on real servers
	api      *atlastest.Server // Atlas's Administration API; nil on the other kinds
	// userURI builds a connection string for another user of the same deployment.
	userURI func(user, pw, db string) string
}

func (s server) ferret() bool { return s.kind == "ferretdb" }

func (s server) atlas() bool { return s.kind == "atlas" }

// servers starts a fresh emulator and a fresh FerretDB for the calling test, and adds the
// real server of MONGODB_URI when it is set. FerretDB must start: failing to build or run it
// fails the test rather than quietly testing less.
func servers(t *testing.T) []server {
	t.Helper()
	emu := startEmulator(t, mongotest.Options{})
	out := []server{{kind: "emulator", uri: emu.URI(), adminPwd: emu.AdminPassword(), emu: emu, userURI: emu.UserURI}}
	f, err := mongotest.StartFerretDB(t.TempDir())
	if err != nil {
		t.Fatalf("FerretDB: %v", err)
	}
	t.Cleanup(f.Close)
	out = append(out, server{kind: "ferretdb", uri: f.URI(), adminPwd: f.AdminPassword(), userURI: f.UserURI})
	out = append(out, server{kind: "mongodb", uri: os.Getenv("MONGODB_URI")})
	return out
}

func startEmulator(t *testing.T, o mongotest.Options) *mongotest.Server {
	t.Helper()
	s, err := mongotest.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// each runs f as a subtest per server. The real-MongoDB subtest skips, saying so, when
// MONGODB_URI is not set.
func each(t *testing.T, f func(t *testing.T, s server)) {
	for _, s := range servers(t) {
		t.Run(s.kind, func(t *testing.T) {
			if s.kind == "mongodb" && s.uri == "" {
				t.Skip("MONGODB_URI is not set: no real MongoDB server to run against (set it to an account with userAdminAnyDatabase and clusterMonitor)")
			}
			if s.kind == "mongodb" {
				s.userURI = func(user, pw, db string) string { return withCredentials(t, s.uri, user, pw, db) }
			}
			f(t, s)
		})
	}
}

// withCredentials rewrites a connection string's user, password and authSource.
func withCredentials(t *testing.T, uri, user, pw, db string) string {
	scheme, rest, _ := strings.Cut(uri, "://")
	if i := strings.LastIndexByte(strings.SplitN(rest, "/", 2)[0], '@'); i >= 0 {
		rest = rest[i+1:]
	}
	sep := "?"
	if strings.Contains(rest, "?") {
		sep = "&"
	}
	if !strings.Contains(rest, "/") {
		rest = strings.Replace(rest, "?", "/?", 1)
		if !strings.Contains(rest, "/") {
			rest += "/"
		}
	}
	return fmt.Sprintf("%s://%s:%s@%s%sauthSource=%s", scheme, user, pw, rest, sep, db)
}

// connect makes a connector with short timeouts, closed at the end of the test.
func connect(t *testing.T, s server, mod ...func(*connector.Config)) *connector.Mongo {
	t.Helper()
	cfg := connector.Config{Name: "test-" + orDefault(s.kind, "emulator"), URI: secret.New(s.uri),
		ServerSelectionTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second}
	for _, f := range mod {
		f(&cfg)
	}
	m, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// uniqueUser returns a user name no earlier run left behind, dropped at the end of the test.
func uniqueUser(t *testing.T, m interface {
	DropUser(context.Context, connector.UserRef, func(connector.UserState) error) (connector.Change, error)
}, db string) connector.UserRef {
	b := make([]byte, 4)
	rand.Read(b)
	u := connector.UserRef{User: "mongobot_test_" + hex.EncodeToString(b), DB: db}
	t.Cleanup(func() { m.DropUser(context.Background(), u, nil) })
	return u
}

// rawClient is a bare driver client, for what the connector does not do: logging in as the
// managed user to watch what its connections see, and sending raw commands.
func rawClient(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second).SetTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// noLeak fails when any value's printed or JSON form holds one of the secrets.
func noLeak(t *testing.T, secrets []string, values ...any) {
	t.Helper()
	for _, v := range values {
		if v == nil {
			continue
		}
		js, _ := json.Marshal(v)
		text := fmt.Sprintf("%v %+v %s", v, v, js)
		if err, ok := v.(error); ok {
			text += err.Error()
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a secret leaked into %T: %s", v, strings.ReplaceAll(text, s, "<LEAKED>"))
			}
		}
	}
}

func mustKind(t *testing.T, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", kind)
	}
	var e *connector.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *connector.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("error kind %v (%v); want %v", e.Kind, err, kind)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Fatal("error has no sentence for the requester")
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func run(t *testing.T, c *mongo.Client, db string, cmd bson.D) (bson.Raw, error) {
	return c.Database(db).RunCommand(ctx(t), cmd).Raw()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
