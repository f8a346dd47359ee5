package kubesecret

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/delivery"
)

// A service account that may only read Secrets: the API server's RBAC refuses the write, the
// error names the verb and the Secret, and Check says the same before anything is written.
func TestForbidden(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	if err := srv.PutSecret(ns, "exists", map[string]string{"password": "old-password"}); err != nil {
		t.Fatal(err)
	}
	reader, err := srv.UserKubeconfig("reader", ns, []string{"get"})
	if err != nil {
		t.Fatal(err)
	}
	as := func(kubeconfig string) func(*Config) { return func(c *Config) { c.Kubeconfig = kubeconfig } }

	c := credential("orders", 80)
	tg := target(t, ns, "exists", as(reader))
	_, err = tg.Deliver(ctx, c)
	if !errors.Is(err, delivery.ErrRejected) ||
		!strings.Contains(err.Error(), "Kubernetes refused to update Secret exists in namespace "+ns+" (403 Forbidden)") {
		t.Errorf("Deliver as a reader = %v, want ErrRejected naming update", err)
	}
	t.Logf("the refusal reads: %v", err)
	noSecret(t, err.Error(), c.Password.Reveal())
	if data, _, _ := srv.Secret(ns, "exists"); data["password"] != "old-password" {
		t.Error("the refused write changed the Secret")
	}
	err = tg.Check(ctx)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "does not allow the bot to update Secret exists in namespace "+ns) {
		t.Errorf("Check as a reader = %v, want ErrRejected naming update", err)
	}

	// The Secret is not there yet: the reader may not create it either.
	tg = target(t, ns, "missing", as(reader))
	if _, err = tg.Deliver(ctx, c); !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "refused to create Secret missing") {
		t.Errorf("Deliver of a new Secret as a reader = %v, want ErrRejected naming create", err)
	}
	if err = tg.Check(ctx); !errors.Is(err, delivery.ErrRejected) ||
		!strings.Contains(err.Error(), "update, create (the Secret does not exist yet)") {
		t.Errorf("Check of a new Secret as a reader = %v", err)
	}

	// No verbs at all: the read is what is refused.
	nobody, err := srv.UserKubeconfig("nobody", ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg = target(t, ns, "exists", as(nobody))
	if _, err = tg.Deliver(ctx, c); !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "refused to get Secret exists") {
		t.Errorf("Deliver with no rights = %v, want ErrRejected naming get", err)
	}
	if err = tg.Check(ctx); !errors.Is(err, delivery.ErrRejected) ||
		!strings.Contains(err.Error(), "get, update, create (needed only if the Secret does not exist yet)") {
		t.Errorf("Check with no rights = %v", err)
	}

	// get and update suffice for a Secret that exists; a new one needs create as well.
	updater, err := srv.UserKubeconfig("updater", ns, []string{"get", "update"})
	if err != nil {
		t.Fatal(err)
	}
	if err := target(t, ns, "exists", as(updater)).Check(ctx); err != nil {
		t.Errorf("Check with get and update on an existing Secret: %v", err)
	}
	if err := target(t, ns, "missing", as(updater)).Check(ctx); !errors.Is(err, delivery.ErrRejected) {
		t.Errorf("Check with get and update on a missing Secret: %v, want ErrRejected", err)
	}
	if _, err := target(t, ns, "exists", as(updater)).Deliver(ctx, c); err != nil {
		t.Errorf("Deliver with get and update: %v", err)
	}
	writer, err := srv.UserKubeconfig("writer", ns, []string{"get", "update", "create"})
	if err != nil {
		t.Fatal(err)
	}
	tg = target(t, ns, "missing", as(writer))
	if err := tg.Check(ctx); err != nil {
		t.Errorf("Check with get, update and create: %v", err)
	}
	if _, err := tg.Deliver(ctx, c); err != nil {
		t.Errorf("Deliver with get, update and create: %v", err)
	}
	if err := target(t, ns, "anything").Check(ctx); err != nil {
		t.Errorf("Check as the admin: %v", err)
	}
}

// writeKubeconfigWithToken writes a kubeconfig for the shared server with another token.
func writeKubeconfigWithToken(t *testing.T, token string) string {
	t.Helper()
	b, err := os.ReadFile(srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), srv.AdminToken(), token)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
