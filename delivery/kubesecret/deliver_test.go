package kubesecret

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/delivery"
)

// rawSecret is what the API server stores, read without client-go.
type rawSecret struct {
	Metadata struct {
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
		ManagedFields   []struct {
			Manager string `json:"manager"`
		} `json:"managedFields"`
	} `json:"metadata"`
	Type string `json:"type"`
}

func getRaw(t *testing.T, ns, name string) rawSecret {
	t.Helper()
	var s rawSecret
	if err := srv.Do(http.MethodGet, "/api/v1/namespaces/"+ns+"/secrets/"+name, nil, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeliverCreates(t *testing.T) {
	ns := namespace(t)
	tg := target(t, ns, "orders-mongo")
	c := credential("orders", 41)
	ctx := context.Background()

	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	data, rv, err := srv.Secret(ns, "orders-mongo")
	if err != nil {
		t.Fatal(err)
	}
	if version != "resourceVersion "+rv {
		t.Errorf("Deliver returned %q; the API server has resourceVersion %s", version, rv)
	}
	want := map[string]string{"username": "orders", "password": c.Password.Reveal()}
	if !maps.Equal(data, want) {
		t.Errorf("data = %v, want the user and the password only", keys(data))
	}
	raw := getRaw(t, ns, "orders-mongo")
	if raw.Type != "Opaque" {
		t.Errorf("type = %q, want Opaque", raw.Type)
	}
	if raw.Metadata.Labels[LabelManagedBy] != "mongobot" || raw.Metadata.Annotations[AnnotationEntry] != "41" {
		t.Errorf("labels %v, annotations %v: want managed-by mongobot and journal entry 41", raw.Metadata.Labels, raw.Metadata.Annotations)
	}
	if len(raw.Metadata.ManagedFields) == 0 || raw.Metadata.ManagedFields[0].Manager != FieldManager {
		t.Errorf("managedFields %+v: want the write attributed to %q", raw.Metadata.ManagedFields, FieldManager)
	}

	how, err := tg.Verify(ctx, c, version)
	if err != nil {
		t.Fatal(err)
	}
	if want := "read back " + version + ": user and password match"; how != want {
		t.Errorf("Verify = %q, want %q", how, want)
	}
}

func TestDeliverUpdatesOnlyItsKeys(t *testing.T) {
	ns := namespace(t)
	// An application team's Secret, made by Helm, with keys, labels and annotations of its own.
	err := srv.Do(http.MethodPost, "/api/v1/namespaces/"+ns+"/secrets", map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": map[string]any{
			"name":        "app",
			"labels":      map[string]string{"app": "orders", LabelManagedBy: "Helm"},
			"annotations": map[string]string{"meta.helm.sh/release-name": "orders"},
		},
		"stringData": map[string]string{"MONGO_URL": "mongodb://db:27017", "MONGO_PASSWORD": "old-password", "MONGO_USER": "orders"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, before, _ := srv.Secret(ns, "app")
	tg := target(t, ns, "app", func(c *Config) { c.UsernameKey, c.PasswordKey = "MONGO_USER", "MONGO_PASSWORD" })
	c := credential("orders", 42)
	ctx := context.Background()

	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	data, rv, _ := srv.Secret(ns, "app")
	want := map[string]string{"MONGO_URL": "mongodb://db:27017", "MONGO_PASSWORD": c.Password.Reveal(), "MONGO_USER": "orders"}
	if !maps.Equal(data, want) {
		t.Errorf("keys after delivery %v, password changed %v; want the other key kept and the password changed",
			keys(data), data["MONGO_PASSWORD"] == c.Password.Reveal())
	}
	if rv == before || version != "resourceVersion "+rv {
		t.Errorf("resourceVersion %s before, %s after, Deliver said %q", before, rv, version)
	}
	raw := getRaw(t, ns, "app")
	if l := raw.Metadata.Labels; len(l) != 2 || l["app"] != "orders" || l[LabelManagedBy] != "Helm" {
		t.Errorf("labels = %v, want Helm's left as they were", l)
	}
	if a := raw.Metadata.Annotations; len(a) != 2 || a["meta.helm.sh/release-name"] != "orders" || a[AnnotationEntry] != "42" {
		t.Errorf("annotations = %v, want Helm's kept and %s=42 added", a, AnnotationEntry)
	}
	if how, err := tg.Verify(ctx, c, version); err != nil || !strings.Contains(how, "user and password match") {
		t.Errorf("Verify = %q, %v", how, err)
	}

	// The next rotation writes over the bot's own previous password, and only that.
	c2 := credential("orders", 43)
	if _, err := tg.Deliver(ctx, c2); err != nil {
		t.Fatal(err)
	}
	data, _, _ = srv.Secret(ns, "app")
	if data["MONGO_PASSWORD"] != c2.Password.Reveal() || data["MONGO_URL"] != "mongodb://db:27017" {
		t.Errorf("after a second delivery: keys %v", keys(data))
	}
}

// An edit that lands between the adapter's read and its write must not be overwritten: the
// write fails with ErrConflict, and the next attempt keeps the edit.
func TestDeliverConflict(t *testing.T) {
	ns := namespace(t)
	if err := srv.PutSecret(ns, "s", map[string]string{"username": "orders", "password": "old-password"}); err != nil {
		t.Fatal(err)
	}
	tg := target(t, ns, "s")
	edits := 0
	tg.beforeWrite = func() {
		edits++
		if err := srv.PutSecret(ns, "s", map[string]string{"tls.crt": "theirs"}); err != nil {
			t.Error(err)
		}
	}
	c := credential("orders", 50)
	ctx := context.Background()

	_, err := tg.Deliver(ctx, c)
	if !errors.Is(err, delivery.ErrConflict) {
		t.Fatalf("Deliver after an edit in between = %v, want ErrConflict", err)
	}
	noSecret(t, err.Error(), c.Password.Reveal(), srv.AdminToken())
	t.Logf("the conflict reads: %v", err)
	data, _, _ := srv.Secret(ns, "s")
	if data["password"] != "old-password" || data["tls.crt"] != "theirs" {
		t.Fatalf("after the conflict, keys %v: want their edit and the old password", keys(data))
	}

	tg.beforeWrite = nil
	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	data, _, _ = srv.Secret(ns, "s")
	if data["password"] != c.Password.Reveal() || data["tls.crt"] != "theirs" {
		t.Errorf("after the retry, keys %v: want their edit kept and the new password", keys(data))
	}
	if _, err := tg.Verify(ctx, c, version); err != nil {
		t.Error(err)
	}
	if edits != 1 {
		t.Errorf("the hook ran %d times, want 1", edits)
	}
}

// Two creators racing for a Secret that did not exist: the one that loses gets ErrConflict.
func TestDeliverCreateConflict(t *testing.T) {
	ns := namespace(t)
	tg := target(t, ns, "s")
	tg.beforeWrite = func() {
		if err := srv.PutSecret(ns, "s", map[string]string{"ca.crt": "theirs"}); err != nil {
			t.Error(err)
		}
	}
	c := credential("orders", 51)
	ctx := context.Background()
	_, err := tg.Deliver(ctx, c)
	if !errors.Is(err, delivery.ErrConflict) {
		t.Fatalf("Deliver racing a create = %v, want ErrConflict", err)
	}
	tg.beforeWrite = nil
	if _, err := tg.Deliver(ctx, c); err != nil {
		t.Fatal(err)
	}
	data, _, _ := srv.Secret(ns, "s")
	if data["ca.crt"] != "theirs" || data["password"] != c.Password.Reveal() {
		t.Errorf("keys %v: want theirs and the password", keys(data))
	}
}

// Deleted between the read and the write: a conflict too, and the next attempt creates it.
func TestDeliverDeleteConflict(t *testing.T) {
	ns := namespace(t)
	if err := srv.PutSecret(ns, "s", map[string]string{"password": "old-password"}); err != nil {
		t.Fatal(err)
	}
	tg := target(t, ns, "s")
	tg.beforeWrite = func() {
		if err := srv.Do(http.MethodDelete, "/api/v1/namespaces/"+ns+"/secrets/s", nil, nil); err != nil {
			t.Error(err)
		}
	}
	c := credential("orders", 52)
	ctx := context.Background()
	if _, err := tg.Deliver(ctx, c); !errors.Is(err, delivery.ErrConflict) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("Deliver racing a delete = %v, want ErrConflict", err)
	}
	tg.beforeWrite = nil
	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Verify(ctx, c, version); err != nil {
		t.Error(err)
	}
}

func TestVerifyDetectsChanges(t *testing.T) {
	ns := namespace(t)
	tg := target(t, ns, "s")
	c := credential("orders", 60)
	ctx := context.Background()
	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatal(err)
	}

	// Someone adds a key: the password is still the one written, and Verify says the
	// Secret moved on.
	if err := srv.PutSecret(ns, "s", map[string]string{"extra": "x"}); err != nil {
		t.Fatal(err)
	}
	_, rv, _ := srv.Secret(ns, "s")
	how, err := tg.Verify(ctx, c, version)
	if err != nil {
		t.Fatal(err)
	}
	if want := "read back resourceVersion " + rv + " (written at " + strings.TrimPrefix(version, "resourceVersion ") + ", changed since): user and password match"; how != want {
		t.Errorf("Verify = %q, want %q", how, want)
	}

	// Someone puts their own password in.
	if err := srv.PutSecret(ns, "s", map[string]string{"password": "someone-elses"}); err != nil {
		t.Fatal(err)
	}
	_, err = tg.Verify(ctx, c, version)
	if !errors.Is(err, delivery.ErrMismatch) || !strings.Contains(err.Error(), "the password (key password) differ") {
		t.Fatalf("Verify after the password changed = %v, want ErrMismatch naming the password", err)
	}
	noSecret(t, err.Error(), c.Password.Reveal(), "someone-elses")

	// And a different user name.
	c.User = "other"
	if _, err = tg.Verify(ctx, c, version); !errors.Is(err, delivery.ErrMismatch) || !strings.Contains(err.Error(), "user name (key username) and the password") {
		t.Errorf("Verify for another user = %v", err)
	}

	// Gone altogether.
	if err := srv.Do(http.MethodDelete, "/api/v1/namespaces/"+ns+"/secrets/s", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err = tg.Verify(ctx, c, version); !errors.Is(err, delivery.ErrMismatch) || !strings.Contains(err.Error(), "gone") {
		t.Errorf("Verify of a deleted Secret = %v", err)
	}
}

func TestDeliverRejected(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)

	t.Run("namespace missing", func(t *testing.T) {
		tg := target(t, ns+"-missing", "s")
		c := credential("orders", 70)
		_, err := tg.Deliver(ctx, c)
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "namespace "+ns+"-missing does not exist") {
			t.Errorf("Deliver into a missing namespace = %v", err)
		}
	})

	t.Run("immutable", func(t *testing.T) {
		err := srv.Do(http.MethodPost, "/api/v1/namespaces/"+ns+"/secrets", map[string]any{
			"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "frozen"},
			"immutable": true, "stringData": map[string]string{"password": "old-password"},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tg := target(t, ns, "frozen")
		_, err = tg.Deliver(ctx, credential("orders", 71))
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("Deliver to an immutable Secret = %v", err)
		}
	})

	t.Run("unknown certificate authority", func(t *testing.T) {
		// The admin's kubeconfig without the CA: the system's roots do not know the API
		// server's self-signed certificate.
		b, err := os.ReadFile(srv.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		delete(cfg["clusters"].([]any)[0].(map[string]any)["cluster"].(map[string]any), "certificate-authority")
		b, _ = json.Marshal(cfg)
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tg := target(t, ns, "s", func(c *Config) { c.Kubeconfig = path })
		_, err = tg.Deliver(ctx, credential("orders", 73))
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Deliver to a server whose certificate does not verify = %v", err)
		}
		t.Logf("the refusal reads: %v", err)
	})

	t.Run("unauthorized", func(t *testing.T) {
		const bogus = "not-a-token-0123456789abcdef"
		path := writeKubeconfigWithToken(t, bogus)
		tg := target(t, ns, "s", func(c *Config) { c.Kubeconfig = path })
		c := credential("orders", 72)
		_, err := tg.Deliver(ctx, c)
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Errorf("Deliver with a bad token = %v", err)
		}
		noSecret(t, err.Error(), bogus, c.Password.Reveal())
		if err := tg.Check(ctx); !errors.Is(err, delivery.ErrRejected) {
			t.Errorf("Check with a bad token = %v", err)
		}
	})
}

func keys(m map[string]string) []string {
	var k []string
	for key := range maps.Keys(m) {
		k = append(k, key)
	}
	return k
}
