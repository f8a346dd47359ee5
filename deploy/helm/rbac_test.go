package helm

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/delivery/kubesecret"
	"mongobot/secret"
)

// TestRBAC installs the chart with kubernetes_secret targets in its own namespace and in
// another, then acts as the bot's service account, with a token the API server issued it
// (TokenRequest) and nothing but the chart's RBAC: its own Secrets may be read and updated,
// every other Secret is refused, and the bot's real delivery target writes its Secret.
func TestRBAC(t *testing.T) {
	const ns, other, elsewhere = "rbac", "rbac-other", "rbac-elsewhere"
	r := mustRender(t, parseValues(t, rbacValues(ns, other)), ns)
	applyAll(t, r, []string{ns, other, elsewhere})
	if t.Failed() {
		t.FailNow()
	}
	// Secrets as the application teams made them; reports-db does not exist yet.
	for _, s := range []struct{ ns, name string }{{ns, "orders-db"}, {other, "billing-db"}, {ns, "app-tls"}, {other, "app-tls"}, {elsewhere, "orders-db"}} {
		if err := srv.PutSecret(s.ns, s.name, map[string]string{"note": "made by the app team"}); err != nil {
			t.Fatal(err)
		}
	}
	token, err := srv.ServiceAccountToken(ns, "mongobot")
	if err != nil {
		t.Fatal(err)
	}
	secretPath := func(ns, name string) string { return "/api/v1/namespaces/" + ns + "/secrets/" + name }
	as := func(method, path string, body []byte) int {
		t.Helper()
		code, _, err := call(token, method, path, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	// RBAC reaches the authorizer through a watch, a moment after the write.
	for deadline := time.Now().Add(10 * time.Second); as(http.MethodGet, secretPath(ns, "orders-db"), nil) != http.StatusOK; {
		if time.Now().After(deadline) {
			t.Fatal("the bot's service account still cannot read its Secret 10s after the Role was applied")
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("own secrets", func(t *testing.T) {
		for _, s := range [][2]string{{ns, "orders-db"}, {other, "billing-db"}} {
			code, body, err := call(token, http.MethodGet, secretPath(s[0], s[1]), "", nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("get %s/%s as the bot = %d, %v", s[0], s[1], code, err)
			}
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil {
				t.Fatal(err)
			}
			obj["data"].(map[string]any)["username"] = base64.StdEncoding.EncodeToString([]byte("orders"))
			b, _ := json.Marshal(obj)
			if code := as(http.MethodPut, secretPath(s[0], s[1]), b); code != http.StatusOK {
				t.Errorf("update %s/%s as the bot = %d, want 200", s[0], s[1], code)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		secretBody := func(ns, name string) []byte {
			b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name, "namespace": ns}, "data": map[string]any{"x": "eA=="}})
			return b
		}
		for _, c := range []struct {
			what, method, path string
			body               []byte
		}{
			{"get another Secret in its namespace", http.MethodGet, secretPath(ns, "app-tls"), nil},
			{"update another Secret in its namespace", http.MethodPut, secretPath(ns, "app-tls"), secretBody(ns, "app-tls")},
			{"get another Secret in the other target's namespace", http.MethodGet, secretPath(other, "app-tls"), nil},
			{"get a Secret of the same name elsewhere", http.MethodGet, secretPath(elsewhere, "orders-db"), nil},
			{"update a Secret of the same name elsewhere", http.MethodPut, secretPath(elsewhere, "orders-db"), secretBody(elsewhere, "orders-db")},
			{"list the Secrets of its namespace", http.MethodGet, "/api/v1/namespaces/" + ns + "/secrets", nil},
			{"watch the Secrets of its namespace", http.MethodGet, "/api/v1/namespaces/" + ns + "/secrets?watch=true", nil},
			{"list Secrets everywhere", http.MethodGet, "/api/v1/secrets", nil},
			{"create a Secret (the chart never grants create)", http.MethodPost, "/api/v1/namespaces/" + ns + "/secrets", secretBody(ns, "reports-db")},
			{"delete its own Secret", http.MethodDelete, secretPath(ns, "orders-db"), nil},
			{"patch its own Secret", http.MethodPatch, secretPath(ns, "orders-db") + "?fieldManager=x", []byte(`{"metadata":{"labels":{"a":"b"}}}`)},
		} {
			ct := "application/json"
			if c.method == http.MethodPatch {
				ct = "application/merge-patch+json"
			}
			code, _, err := call(token, c.method, c.path, ct, c.body)
			if err != nil || code != http.StatusForbidden {
				t.Errorf("%s: %d, %v; want 403", c.what, code, err)
			}
		}
	})

	// What the API server itself says the account may do with Secrets in its namespace: get
	// and update on the config's two names, nothing more (a Role with list or a wildcard
	// would show here even if the requests above missed it).
	t.Run("rules review", func(t *testing.T) {
		for _, c := range []struct {
			ns    string
			names []string
		}{{ns, []string{"orders-db", "reports-db"}}, {other, []string{"billing-db"}}, {elsewhere, nil}} {
			got := secretRules(t, token, c.ns)
			want := []string{}
			if c.names != nil {
				want = []string{fmt.Sprintf("[get update] on %v", c.names)}
			}
			if !slices.Equal(got, want) {
				t.Errorf("rules on Secrets in %s: %q, want %q", c.ns, got, want)
			}
		}
	})

	// The bot's own delivery code, with the account's token in a kubeconfig, as it runs in
	// the pod (where rest.InClusterConfig reads the same token from the mounted file).
	t.Run("kubesecret target", func(t *testing.T) {
		kubeconfig := writeKubeconfig(t, token, ns)
		ctx := context.Background()
		target := func(ns, name string) *kubesecret.Target {
			tg, err := kubesecret.New(kubesecret.Config{Namespace: ns, Name: name, Kubeconfig: kubeconfig})
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
		for _, s := range [][2]string{{ns, "orders-db"}, {other, "billing-db"}} {
			tg := target(s[0], s[1])
			if err := tg.Check(ctx); err != nil {
				t.Fatalf("Check of %s/%s: %v", s[0], s[1], err)
			}
			c := credential()
			version, err := tg.Deliver(ctx, c)
			if err != nil {
				t.Fatalf("Deliver to %s/%s: %v", s[0], s[1], err)
			}
			if _, err := tg.Verify(ctx, c, version); err != nil {
				t.Errorf("Verify of %s/%s: %v", s[0], s[1], err)
			}
			data, _, err := srv.Secret(s[0], s[1])
			if err != nil || data["password"] != c.Password.Reveal() || data["note"] != "made by the app team" {
				t.Errorf("%s/%s as the admin reads it: the password written %v, the app's key kept %v (%v)", s[0], s[1], data["password"] == c.Password.Reveal(), data["note"] != "", err)
			}
		}
		// Not in the config: refused, and Check says so before any delivery.
		if err := target(ns, "app-tls").Check(ctx); err == nil || !strings.Contains(err.Error(), "does not allow") {
			t.Errorf("Check of a Secret not in the config = %v, want a refusal", err)
		}
		// In the config but not created yet: the chart grants no create, Check says to make it.
		reports := target(ns, "reports-db")
		if err := reports.Check(ctx); err == nil || !strings.Contains(err.Error(), "create (the Secret does not exist yet)") {
			t.Errorf("Check of a missing target Secret = %v, want a refusal naming create", err)
		}
		if _, err := reports.Deliver(ctx, credential()); err == nil {
			t.Error("Deliver created a Secret without create rights")
		}
		if err := srv.PutSecret(ns, "reports-db", map[string]string{"note": "made by the app team"}); err != nil {
			t.Fatal(err)
		}
		if _, err := reports.Deliver(ctx, credential()); err != nil {
			t.Errorf("Deliver once the Secret exists: %v", err)
		}
	})
}

// secretRules asks the API server (SelfSubjectRulesReview, as the token's owner) what it may
// do with Secrets in ns: one "[verbs] on [names]" per rule naming secrets or a wildcard.
func secretRules(t *testing.T, token, ns string) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": map[string]any{"namespace": ns},
	})
	code, answer, err := call(token, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", "application/json", body)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("SelfSubjectRulesReview in %s: %d, %v", ns, code, err)
	}
	var review struct {
		Status struct {
			ResourceRules []struct {
				Verbs, APIGroups, Resources, ResourceNames []string
			} `json:"resourceRules"`
			Incomplete bool `json:"incomplete"`
		} `json:"status"`
	}
	if err := json.Unmarshal(answer, &review); err != nil {
		t.Fatal(err)
	}
	if review.Status.Incomplete {
		t.Errorf("the rules review in %s is incomplete", ns)
	}
	out := []string{}
	for _, r := range review.Status.ResourceRules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
			out = append(out, fmt.Sprintf("%v on %v", r.Verbs, r.ResourceNames))
		}
	}
	return out
}

// writeKubeconfig writes a kubeconfig with the token as its one user.
func writeKubeconfig(t *testing.T, token, ns string) string {
	t.Helper()
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config",
		"clusters":        []any{map[string]any{"name": "kubetest", "cluster": map[string]any{"server": srv.URL, "certificate-authority": srv.CAFile}}},
		"users":           []any{map[string]any{"name": "bot", "user": map[string]any{"token": token}}},
		"contexts":        []any{map[string]any{"name": "bot", "context": map[string]any{"cluster": "kubetest", "user": "bot", "namespace": ns}}},
		"current-context": "bot",
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func credential() delivery.Credential {
	b := make([]byte, 18)
	rand.Read(b)
	return delivery.Credential{Connector: "prod", User: "orders", Database: "admin", Password: secret.New("pw-" + base64.RawURLEncoding.EncodeToString(b)), Entry: 7}
}
