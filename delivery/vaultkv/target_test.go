package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/delivery/vaultkv/vaulttest"
	"mongobot/secret"
)

// pathFor is a secret path of the test's own, so that tests share the server, not secrets.
func pathFor(t *testing.T) string {
	return "apps/" + strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
}

func policyFor(t *testing.T, suffix string) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name())) + suffix
}

// rw is what a delivery needs on the secret; ro only reads it.
func rw(path string) string {
	return fmt.Sprintf(`path "secret/data/%s" { capabilities = ["create", "read", "update"] }`, path)
}

func ro(path string) string {
	return fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, path)
}

// token makes a policy from hcl and a token that carries it.
func token(t *testing.T, hcl string) secret.String {
	t.Helper()
	name := policyFor(t, "")
	if err := vault.Policy(name, hcl); err != nil {
		t.Fatal(err)
	}
	tok, err := vault.Token(name)
	if err != nil {
		t.Fatal(err)
	}
	return secret.New(remember(tok))
}

// approleFor makes a role whose tokens carry hcl, and returns its credentials.
func approleFor(t *testing.T, suffix, hcl string) (roleID, secretID string) {
	t.Helper()
	roleID, secretID, err := vault.AppRole(policyFor(t, suffix), hcl)
	if err != nil {
		t.Fatal(err)
	}
	return remember(roleID), remember(secretID)
}

func newTarget(t *testing.T, c Config) *Target {
	t.Helper()
	if c.Address == "" {
		c.Address = vault.Addr
	}
	tg, err := New(c)
	if err != nil {
		t.Fatal(saw(t, err))
	}
	type fields Target // no String method: prints every field, as a careless %+v would
	for _, s := range []string{tg.Describe(), fmt.Sprint(tg), fmt.Sprintf("%+v", (*fields)(tg)), fmt.Sprintf("%#v", (*fields)(tg))} {
		saw(t, errors.New(s))
	}
	return tg
}

func cred(user string) delivery.Credential {
	return delivery.Credential{Connector: "prod-mongo", User: user, Database: "admin", Password: secret.New(random("pw-")), Entry: 7}
}

// deliver delivers and verifies c, failing t on any error, and returns the version.
func deliver(t *testing.T, tg *Target, c delivery.Credential) string {
	t.Helper()
	v, err := tg.Deliver(context.Background(), c)
	if err != nil {
		t.Fatalf("Deliver: %v", saw(t, err))
	}
	how, err := tg.Verify(context.Background(), c, v)
	if err != nil {
		t.Fatalf("Verify %s: %v", v, saw(t, err))
	}
	t.Logf("delivered %s; %s", v, how)
	return v
}

// holds fails t unless secret/path holds c, as an application reading it would see.
func holds(t *testing.T, path string, c delivery.Credential) map[string]string {
	t.Helper()
	data, _, err := vault.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if data["username"] != c.User || data["password"] != c.Password.Reveal() {
		t.Fatalf("secret/%s holds user %q and another password, not %q's", path, data["username"], c.User)
	}
	return data
}

func TestVaultIsReal(t *testing.T) {
	out, err := vault.CallAs("", http.MethodGet, "sys/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out["version"]); "v"+got != vault.Version {
		t.Errorf("sys/health says version %s, the binary %s", got, vault.Version)
	}
	t.Logf("vault: %s", vault)
}

func TestDeliverWithToken(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: token(t, rw(p))})

	first := cred("orders")
	if v := deliver(t, tg, first); v != "version 1" {
		t.Errorf("a new secret: %s, want version 1", v)
	}
	if data := holds(t, p, first); len(data) != 2 {
		t.Errorf("a new secret holds %d fields, want username and password only", len(data))
	}
	if v := deliver(t, tg, cred("orders")); v != "version 2" {
		t.Errorf("delivering again: %s, want version 2", v)
	}

	// The application team adds what else the application needs, keeping the login.
	data, _, err := vault.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	data["host"], data["replica_set"] = "db1.example:27017", "rs0"
	if _, err := vault.Write(p, data); err != nil {
		t.Fatal(err)
	}
	third := cred("orders")
	if v := deliver(t, tg, third); v != "version 4" {
		t.Errorf("after the team's version 3: %s, want version 4", v)
	}
	data = holds(t, p, third)
	if data["host"] != "db1.example:27017" || data["replica_set"] != "rs0" || len(data) != 4 {
		t.Errorf("the team's fields did not survive: %v", keys(data))
	}
}

// Values that are not strings go back as they came: JSON numbers, booleans and objects.
func TestDeliverKeepsTypes(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	if _, err := vault.Call(http.MethodPost, "secret/data/"+p, map[string]any{"data": map[string]any{
		"port": 27017, "tls": true, "options": map[string]any{"w": "majority", "retries": 3},
	}}); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, Config{Path: p, Token: secret.New(vault.RootToken), UsernameField: "user", PasswordField: "pass"})
	c := cred("billing")
	deliver(t, tg, c)
	out, err := vault.Call(http.MethodGet, "secret/data/"+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := out["data"].(map[string]any)["data"].(map[string]any)
	got, _ := json.Marshal(data)
	want, _ := json.Marshal(map[string]any{"port": 27017, "tls": true, "options": map[string]any{"w": "majority", "retries": 3},
		"user": "billing", "pass": c.Password.Reveal()})
	if string(got) != string(want) {
		t.Errorf("secret after delivery, with its password blanked:\n got %s\nwant %s",
			secret.Scrub(string(got), c.Password), secret.Scrub(string(want), c.Password))
	}
}

func TestConflict(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: token(t, rw(p))})
	deliver(t, tg, cred("orders"))

	theirs := map[string]string{"username": "orders", "password": random("theirs-"), "host": "db2.example"}
	var their int
	tg.beforeWrite = func() {
		var err error
		if their, err = vault.Write(p, theirs); err != nil {
			t.Error(err)
		}
	}
	c := cred("orders")
	_, err := tg.Deliver(context.Background(), c)
	saw(t, err)
	if !errors.Is(err, delivery.ErrConflict) {
		t.Fatalf("a write between read and write: %v, want ErrConflict", err)
	}
	t.Logf("conflict: %v", err)
	data, v, err := vault.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if v != their || data["password"] != theirs["password"] || data["host"] != "db2.example" {
		t.Fatalf("the other writer's version %d was overwritten: now version %d", their, v)
	}

	tg.beforeWrite = nil
	v2, err := tg.Deliver(context.Background(), c)
	if err != nil {
		t.Fatal(saw(t, err))
	}
	if v2 != fmt.Sprintf("version %d", their+1) {
		t.Errorf("the retry wrote %s, want version %d", v2, their+1)
	}
	if data := holds(t, p, c); data["host"] != "db2.example" {
		t.Errorf("the retry lost the other writer's field: %v", keys(data))
	}
}

// A secret created between the read (none there) and the write (cas 0) is a conflict too.
func TestConflictOnCreate(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: token(t, rw(p))})
	tg.beforeWrite = func() {
		if _, err := vault.Write(p, map[string]string{"note": "created by hand"}); err != nil {
			t.Error(err)
		}
	}
	_, err := tg.Deliver(context.Background(), cred("orders"))
	if !errors.Is(saw(t, err), delivery.ErrConflict) {
		t.Fatalf("%v, want ErrConflict", err)
	}
	if data, v, _ := vault.Read(p); v != 1 || data["note"] != "created by hand" || data["password"] != "" {
		t.Errorf("the secret created in between was changed: version %d, fields %v", v, keys(data))
	}
}

func TestAppRole(t *testing.T) {
	t.Parallel()
	p := pathFor(t)

	t.Run("allowed", func(t *testing.T) {
		roleID, secretID := approleFor(t, "", rw(p))
		tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretID: secret.New(secretID)}})
		c := cred("orders")
		deliver(t, tg, c)
		holds(t, p, c)
		if err := tg.Check(context.Background()); err != nil {
			t.Errorf("Check: %v", saw(t, err))
		}
	})

	t.Run("files", func(t *testing.T) {
		roleID, secretID := approleFor(t, "", rw(p))
		dir := t.TempDir()
		roleFile, secretFile := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
		os.WriteFile(roleFile, []byte(roleID+"\n"), 0o600)
		os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600)
		tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleIDFile: roleFile, SecretIDFile: secretFile}})
		c := cred("orders")
		deliver(t, tg, c)
		holds(t, p, c)
	})

	t.Run("read-only", func(t *testing.T) {
		roleID, secretID := approleFor(t, "", ro(p))
		tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretID: secret.New(secretID)}})
		_, err := tg.Deliver(context.Background(), cred("orders"))
		saw(t, err)
		if !errors.Is(err, delivery.ErrRejected) {
			t.Fatalf("a read-only role: %v, want ErrRejected", err)
		}
		for _, want := range []string{vault.Addr, "denied writing secret/" + p, "permission denied"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not say %q", err, want)
			}
		}
		t.Logf("read-only: %v", err)
	})

	t.Run("wrong secret ID", func(t *testing.T) {
		roleID, _ := approleFor(t, "", rw(p))
		wrong := random("wrong-secret-id-")
		tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretID: secret.New(wrong)}})
		_, err := tg.Deliver(context.Background(), cred("orders"))
		saw(t, err)
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "refused the AppRole login at auth/approle: invalid role or secret ID") {
			t.Fatalf("a wrong secret ID: %v, want ErrRejected naming the AppRole login", err)
		}
		t.Logf("wrong secret ID: %v", err)
	})

	t.Run("missing secret ID file", func(t *testing.T) {
		roleID, _ := approleFor(t, "", rw(p))
		missing := filepath.Join(t.TempDir(), "secret-id")
		tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretIDFile: missing}})
		_, err := tg.Deliver(context.Background(), cred("orders"))
		if !errors.Is(saw(t, err), delivery.ErrRejected) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("%v, want ErrRejected naming %s", err, missing)
		}
	})
}

// An operator revokes the role's tokens (an expired token looks the same to its holder: a
// 403): the next delivery logs in again, with the secret ID file read afresh.
func TestAppRoleLogsInAgain(t *testing.T) {
	p := pathFor(t)
	roleID, secretID := approleFor(t, "", rw(p))
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	os.WriteFile(secretFile, []byte(secretID), 0o600)
	tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretIDFile: secretFile}})
	deliver(t, tg, cred("orders"))
	first := tg.s.token
	remember(first.Reveal())

	// The secret ID is rotated too: the old one is destroyed, the file rewritten.
	role := policyFor(t, "")
	if _, err := vault.Call(http.MethodPost, "auth/approle/role/"+role+"/secret-id/destroy", map[string]any{"secret_id": secretID}); err != nil {
		t.Fatal(err)
	}
	out, err := vault.Call(http.MethodPost, "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	newSecretID := remember(out["data"].(map[string]any)["secret_id"].(string))
	os.WriteFile(secretFile, []byte(newSecretID), 0o600)
	if err := vault.RevokeLogins("approle"); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.CallAs(first.Reveal(), http.MethodGet, "auth/token/lookup-self", nil); err == nil {
		t.Fatal("the first token still works after revocation")
	}

	c := cred("orders")
	deliver(t, tg, c)
	holds(t, p, c)
	if tg.s.token.Reveal() == first.Reveal() {
		t.Error("delivered with the revoked token?")
	}
	remember(tg.s.token.Reveal())
}

// Before a token reaches the end of its TTL the Target logs in again on its own, without
// waiting for Vault to refuse it.
func TestAppRoleRenewsBeforeExpiry(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	roleID, secretID := approleFor(t, "", rw(p))
	tg := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretID: secret.New(secretID)}})
	deliver(t, tg, cred("orders"))
	first := tg.s.token
	remember(first.Reveal())
	if tg.s.renewAt.IsZero() {
		t.Fatal("an AppRole token has a TTL, but no renewal time was set")
	}
	later := tg.s.renewAt.Add(time.Second)
	tg.now = func() time.Time { return later }
	deliver(t, tg, cred("orders"))
	if tg.s.token.Reveal() == first.Reveal() {
		t.Error("past three quarters of its TTL, the token was not replaced")
	}
	remember(tg.s.token.Reveal())
	if _, err := vault.CallAs(first.Reveal(), http.MethodGet, "auth/token/lookup-self", nil); err != nil {
		t.Errorf("the first token stopped working, so this test did not show a renewal ahead of time: %v", err)
	}
}

// A token file is read before every call: when whatever writes it (Vault Agent) replaces
// the token, the next delivery uses the new one.
func TestTokenFile(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	file := filepath.Join(t.TempDir(), "token")
	old := token(t, rw(p))
	os.WriteFile(file, []byte(old.Reveal()+"\n"), 0o600)
	tg := newTarget(t, Config{Path: p, TokenFile: file})
	deliver(t, tg, cred("orders"))

	fresh := token(t, rw(p))
	os.WriteFile(file, []byte(fresh.Reveal()), 0o600)
	if err := vault.RevokeToken(old.Reveal()); err != nil {
		t.Fatal(err)
	}
	c := cred("orders")
	deliver(t, tg, c)
	holds(t, p, c)

	os.WriteFile(file, nil, 0o600)
	_, err := tg.Deliver(context.Background(), cred("orders"))
	if !errors.Is(saw(t, err), delivery.ErrRejected) || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("an empty token file: %v", err)
	}
}

func TestSealed(t *testing.T) {
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: token(t, rw(p))})
	roleID, secretID := approleFor(t, "", rw(p))
	fresh := newTarget(t, Config{Path: p, AppRole: &AppRole{RoleID: roleID, SecretID: secret.New(secretID)}})
	deliver(t, tg, cred("orders"))

	if err := vault.Seal(); err != nil {
		t.Fatal(err)
	}
	unsealed := false
	t.Cleanup(func() {
		if !unsealed {
			vault.Unseal()
		}
	})
	_, err := tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !transient(err) || !strings.Contains(err.Error(), "Vault at "+vault.Addr+" is sealed") {
		t.Errorf("Deliver to a sealed Vault: %v, want a plain error saying it is sealed", err)
	}
	t.Logf("sealed: %v", err)
	if err := tg.Check(context.Background()); !transient(saw(t, err)) || !strings.Contains(err.Error(), "is sealed") {
		t.Errorf("Check on a sealed Vault: %v", err)
	}
	// A login, too, meets the seal.
	if _, err := fresh.Deliver(context.Background(), cred("orders")); !transient(saw(t, err)) || !strings.Contains(err.Error(), "is sealed (while the AppRole login") {
		t.Errorf("an AppRole login to a sealed Vault: %v", err)
	}

	if err := vault.Unseal(); err != nil {
		t.Fatal(err)
	}
	unsealed = true
	c := cred("orders")
	deliver(t, tg, c)
	holds(t, p, c)
	deliver(t, fresh, cred("orders"))
}

// Vault down, then back (empty: dev mode keeps its data in memory).
func TestUnreachable(t *testing.T) {
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: secret.New(vault.RootToken), Timeout: 5 * time.Second})
	deliver(t, tg, cred("orders"))

	vault.Stop()
	start := time.Now()
	_, err := tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !transient(err) || !strings.Contains(err.Error(), "Vault at "+vault.Addr+" did not answer") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Vault stopped: %v, want a plain error saying it did not answer", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a refused connection took %v: the client retried", d)
	}
	t.Logf("stopped: %v", err)

	if err := vault.Restart(); err != nil {
		t.Fatal(err)
	}
	c := cred("orders")
	if v := deliver(t, tg, c); v != "version 1" {
		t.Errorf("after a restart (empty): %s", v)
	}
	holds(t, p, c)
}

// A server that accepts the connection and never answers: the Timeout bounds the call.
func TestTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tg := newTarget(t, Config{Address: "http://" + ln.Addr().String(), Path: "apps/x", Token: secret.New(random("tok-")), Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !transient(err) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer in time (while looking up the mount of secret/apps/x; the timeout is 300ms)") {
		t.Errorf("a silent server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the 300ms timeout took %v", d)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Token: token(t, rw(p))})
	c := cred("orders")
	v := deliver(t, tg, c)

	t.Run("a later version keeps the login", func(t *testing.T) {
		data, _, _ := vault.Read(p)
		data["host"] = "db3.example"
		if _, err := vault.Write(p, data); err != nil {
			t.Fatal(err)
		}
		how, err := tg.Verify(context.Background(), c, v)
		if err != nil || !strings.Contains(how, "still in version 2, the current one") {
			t.Errorf("Verify: %q, %v", how, saw(t, err))
		}
	})

	t.Run("the team overwrote the password", func(t *testing.T) {
		theirs := random("theirs-")
		if _, err := vault.Write(p, map[string]string{"username": "orders", "password": theirs}); err != nil {
			t.Fatal(err)
		}
		_, err := tg.Verify(context.Background(), c, v)
		saw(t, err)
		if !errors.Is(err, delivery.ErrMismatch) || !strings.Contains(err.Error(), "changed after version 1: in version 3, the current one, the password field holds another password") {
			t.Errorf("Verify after the password was overwritten: %v, want ErrMismatch", err)
		}
		t.Logf("overwritten: %v", err)
	})

	t.Run("another user", func(t *testing.T) {
		if _, err := vault.Write(p, map[string]string{"username": "someone", "password": c.Password.Reveal()}); err != nil {
			t.Fatal(err)
		}
		_, err := tg.Verify(context.Background(), c, v)
		if !errors.Is(saw(t, err), delivery.ErrMismatch) || !strings.Contains(err.Error(), `the username field holds "someone", not "orders"`) {
			t.Errorf("%v", err)
		}
	})

	t.Run("no such version", func(t *testing.T) {
		_, err := tg.Verify(context.Background(), c, "version 99")
		if !errors.Is(saw(t, err), delivery.ErrMismatch) {
			t.Errorf("%v, want ErrMismatch", err)
		}
		_, err = tg.Verify(context.Background(), c, "v1")
		if !errors.Is(saw(t, err), delivery.ErrRejected) {
			t.Errorf("%v, want ErrRejected", err)
		}
	})

	t.Run("the version was deleted", func(t *testing.T) {
		c := cred("orders")
		v := deliver(t, tg, c)
		if _, err := vault.Call(http.MethodPost, "secret/delete/"+p, map[string]any{"versions": []string{strings.TrimPrefix(v, "version ")}}); err != nil {
			t.Fatal(err)
		}
		_, err := tg.Verify(context.Background(), c, v)
		if !errors.Is(saw(t, err), delivery.ErrMismatch) || !strings.Contains(err.Error(), "deleted") {
			t.Errorf("%v, want ErrMismatch saying it was deleted", err)
		}
		// A deleted latest version is replaced by the next delivery.
		c = cred("orders")
		deliver(t, tg, c)
		holds(t, p, c)
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	check := func(c Config) error {
		t.Helper()
		if c.Path == "" {
			c.Path = p
		}
		return saw(t, newTarget(t, c).Check(context.Background()))
	}
	if err := check(Config{Token: secret.New(vault.RootToken)}); err != nil {
		t.Errorf("root: %v", err)
	}
	if err := check(Config{Token: token(t, rw(p))}); err != nil {
		t.Errorf("read, create, update: %v", err)
	}
	for _, tc := range []struct {
		name, hcl, want string
		exists          bool
	}{
		{"read-only, no secret yet", ro(p), "the token's policies allow read on secret/data/" + p + "; a delivery also needs update, create", false},
		{"read-only", ro(p), "allow read on secret/data/" + p + "; a delivery also needs update", true},
		{"create only", fmt.Sprintf(`path "secret/data/%s" { capabilities = ["create"] }`, p), "allow create on secret/data/" + p + "; a delivery also needs read, update", true},
		{"update, no read", fmt.Sprintf(`path "secret/data/%s" { capabilities = ["update", "create"] }`, p), "a delivery also needs read", false},
	} {
		if tc.exists {
			vault.Write(p, map[string]string{"x": "y"})
		}
		err := check(Config{Token: token(t, tc.hcl)})
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant it to say %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}

	t.Run("no access", func(t *testing.T) {
		err := check(Config{Token: token(t, `path "secret/data/elsewhere" { capabilities = ["read"] }`)})
		if !errors.Is(err, delivery.ErrRejected) {
			t.Errorf("%v, want ErrRejected", err)
		}
		t.Logf("no access: %v", err)
	})
	t.Run("no such mount", func(t *testing.T) {
		err := check(Config{Mount: "nosuch", Token: secret.New(vault.RootToken)})
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), `there is no mount "nosuch", or the token's policies allow nothing under it`) {
			t.Errorf("%v", err)
		}
		t.Logf("no such mount: %v", err)
	})
	t.Run("KV version 1", func(t *testing.T) {
		mount := policyFor(t, "")
		if err := vault.EnableKV(mount, 1); err != nil {
			t.Fatal(err)
		}
		err := check(Config{Mount: mount, Path: "apps/orders", Token: secret.New(vault.RootToken)})
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "is KV version 1, not KV version 2") {
			t.Errorf("%v", err)
		}
		// Deliver makes the same check before writing: nothing lands in the v1 mount.
		_, err = newTarget(t, Config{Mount: mount, Path: "apps/orders", Token: secret.New(vault.RootToken)}).Deliver(context.Background(), cred("orders"))
		if !errors.Is(saw(t, err), delivery.ErrRejected) {
			t.Errorf("Deliver into KV v1: %v", err)
		}
		if out, err := vault.Call("LIST", mount, nil); err == nil {
			t.Errorf("Deliver wrote into the KV v1 mount: %v", out)
		}
	})
}

// Open-source Vault has no namespaces, and ignores one on writes: a namespace there is
// refused before anything is written.
func TestNamespaceNeedsEnterprise(t *testing.T) {
	t.Parallel()
	p := pathFor(t)
	tg := newTarget(t, Config{Path: p, Namespace: "team-a", Token: secret.New(vault.RootToken)})
	_, err := tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), `which has no namespaces: namespace "team-a" must be left out`) {
		t.Errorf("a namespace on open-source Vault: %v", err)
	}
	if err := saw(t, tg.Check(context.Background())); !errors.Is(err, delivery.ErrRejected) {
		t.Errorf("Check: %v", err)
	}
	if _, _, err := vault.Read(p); !errors.Is(err, vaulttest.ErrNotFound) {
		t.Errorf("something was written in the root namespace: %v", err)
	}
}

// A token Vault does not know: its own words say so.
func TestInvalidToken(t *testing.T) {
	t.Parallel()
	bogus := secret.New(random("hvs.bogus-"))
	_, err := newTarget(t, Config{Path: pathFor(t), Token: bogus}).Deliver(context.Background(), cred("orders"))
	if !errors.Is(saw(t, err), delivery.ErrRejected) || !strings.Contains(err.Error(), "does not know the token (expired, revoked or never issued) while looking up the mount of secret/"+pathFor(t)+": permission denied; invalid token") {
		t.Errorf("an invalid token: %v", err)
	}
	t.Logf("invalid token: %v", err)
}

// VAULT_* variables in the bot's environment change nothing: the token and the address
// are the configuration's.
func TestIgnoresEnvironment(t *testing.T) {
	p := pathFor(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	t.Setenv("VAULT_TOKEN", vault.RootToken)
	t.Setenv("VAULT_ADDR", "http://"+closed)
	t.Setenv("VAULT_NAMESPACE", "elsewhere")
	t.Setenv("VAULT_MAX_RETRIES", "5")
	tg := newTarget(t, Config{Path: p, Token: token(t, ro(p))})
	_, err := tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "Vault at "+vault.Addr+" denied writing") {
		t.Errorf("with VAULT_TOKEN=<root>: %v, want the read-only token denied", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	s, err := vaultTLS(t)
	if err != nil {
		t.Fatal(err)
	}
	p := "apps/orders"
	tg := newTarget(t, Config{Address: s.Addr, TLSCAFile: s.CAFile, Path: p, Token: secret.New(s.RootToken)})
	c := cred("orders")
	deliver(t, tg, c)

	_, err = newTarget(t, Config{Address: s.Addr, Path: p, Token: secret.New(s.RootToken)}).Deliver(context.Background(), c)
	saw(t, err)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "certificate does not verify") {
		t.Errorf("without the CA: %v, want ErrRejected", err)
	}
	t.Logf("without the CA: %v", err)

	if _, err := New(Config{Address: s.Addr, TLSCAFile: filepath.Join(t.TempDir(), "none.pem"), Path: p, Token: secret.New("x")}); !errors.Is(saw(t, err), delivery.ErrRejected) {
		t.Errorf("a missing CA file: %v", err)
	}
}

func keys(m map[string]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return k
}

// vaultTLS starts a second Vault, serving HTTPS, for one test.
func vaultTLS(t *testing.T) (*vaulttest.Server, error) {
	s, err := vaulttest.StartTLS(t.TempDir())
	if err != nil {
		return nil, err
	}
	t.Cleanup(s.Stop)
	remember(s.RootToken)
	t.Logf("vault: %s", s)
	return s, nil
}
