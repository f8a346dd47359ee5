package vaulttest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain finds or builds the binary before any test runs, so that a first build (about 20
// minutes) does not count against go test's timeout. No binary is a failure, never a skip.
func TestMain(m *testing.M) {
	if _, err := Binary(); err != nil {
		fmt.Fprintln(os.Stderr, "vaulttest: no Vault binary (a failure, not a skip):", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// The harness itself, against the real server: if these helpers were wrong, the adapter's
// tests would check it against the wrong thing.
func TestServer(t *testing.T) {
	t0 := time.Now()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err) // a missing binary is a failure, not a skip
	}
	defer s.Stop()
	t.Logf("vault: %s, ready in %v", s, time.Since(t0).Round(time.Millisecond))

	v, err := s.Write("apps/a", map[string]string{"username": "u", "password": "p"})
	if err != nil || v != 1 {
		t.Fatalf("Write: version %d, %v", v, err)
	}
	if v, _ := s.Write("apps/a", map[string]string{"username": "u", "password": "p2", "host": "h"}); v != 2 {
		t.Errorf("second Write: version %d", v)
	}
	data, v, err := s.Read("apps/a")
	if err != nil || v != 2 || data["password"] != "p2" || data["host"] != "h" || len(data) != 3 {
		t.Errorf("Read: %v, version %d, %v", data, v, err)
	}
	if _, _, err := s.Read("apps/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read of nothing: %v", err)
	}

	// Policies are enforced on the tokens Token and AppRole give.
	if err := s.Policy("reader", `path "secret/data/apps/a" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token("reader")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CallAs(tok, http.MethodGet, "secret/data/apps/a", nil); err != nil {
		t.Errorf("reader reads: %v", err)
	}
	_, err = s.CallAs(tok, http.MethodPost, "secret/data/apps/a", map[string]any{"data": map[string]string{"x": "y"}})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("reader writes: %v, want 403", err)
	}
	roleID, secretID, err := s.AppRole("writer", `path "secret/data/apps/*" { capabilities = ["create", "read", "update"] }`)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppRole("second", `path "secret/data/x" { capabilities = ["read"] }`); err != nil {
		t.Errorf("a second role (approle enabled once): %v", err)
	}
	out, err := s.CallAs("", http.MethodPost, "auth/approle/login", map[string]string{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatal(err)
	}
	login, _ := dataOf(out)["client_token"].(string)
	if _, err := s.CallAs(login, http.MethodPost, "secret/data/apps/b", map[string]any{"data": map[string]string{"x": "y"}}); err != nil {
		t.Errorf("approle token writes: %v", err)
	}
	if err := s.RevokeLogins("approle"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CallAs(login, http.MethodGet, "auth/token/lookup-self", nil); err == nil {
		t.Error("RevokeLogins left the login's token working")
	}

	// Sealed: 503 until Unseal, data kept.
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Read("apps/a"); !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Errorf("Read while sealed: %v, want 503", err)
	}
	if err := s.Unseal(); err != nil {
		t.Fatal(err)
	}
	if data, _, err := s.Read("apps/a"); err != nil || data["host"] != "h" {
		t.Errorf("after Unseal: %v, %v", data, err)
	}

	// Restart: same address and root token, empty.
	addr := s.Addr
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Errorf("Restart moved from %s to %s", addr, s.Addr)
	}
	if _, _, err := s.Read("apps/a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Restart: %v, want nothing (dev mode is in memory)", err)
	}
	if _, _, err := s.AppRole("writer", `path "x" { capabilities = ["read"] }`); err != nil {
		t.Errorf("AppRole after Restart enables approle again: %v", err)
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := s.Unseal(); err != nil {
		t.Errorf("Unseal after Restart (a new key): %v", err)
	}
	if strings.Contains(s.Log(), s.RootToken) {
		t.Error("Log shows the root token")
	}
}

func TestServerTLS(t *testing.T) {
	s, err := StartTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.Addr, "https://") || s.CAFile == "" {
		t.Fatalf("StartTLS: %s, CA %q", s.Addr, s.CAFile)
	}
	if _, err := s.Write("a", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write("a", map[string]string{"k": "v"}); err != nil {
		t.Errorf("after Restart, with a new CA: %v", err)
	}
}
