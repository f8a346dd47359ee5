package vaultkv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"mongobot/delivery"
)

// The Kubernetes login against the real Vault, as far as it goes without a Kubernetes API
// server: Vault's kubernetes auth parses the service-account JWT, checks its claims against
// the role's bindings, and only then asks the API server (TokenReview) whether the token is
// genuine. Here kubernetes_host is a bare TCP listener that answers nothing; a connection to
// it shows that Vault got as far as TokenReview, so the JWT from the file reached the
// configured mount and role and passed every check Vault makes by itself. A successful
// login, with a token the API server confirms, is left to the test against a real
// kube-apiserver (tools/kube-apiserver.sh).
func TestKubernetesLogin(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reviews atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reviews.Add(1)
			c.Close()
		}
	}()

	mount := "k8s-" + policyFor(t, "")
	for _, call := range []struct {
		path string
		body map[string]any
	}{
		{"sys/auth/" + mount, map[string]any{"type": "kubernetes"}},
		{"auth/" + mount + "/config", map[string]any{"kubernetes_host": "https://" + ln.Addr().String(), "disable_local_ca_jwt": true}},
		{"auth/" + mount + "/role/mongobot", map[string]any{
			"bound_service_account_names": []string{"mongobot"}, "bound_service_account_namespaces": []string{"ops"},
			"token_policies": []string{"default"}, "audience": "vault",
		}},
	} {
		if _, err := vault.Call(http.MethodPost, call.path, call.body); err != nil {
			t.Fatal(err)
		}
	}
	jwtFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(jwtFile, []byte(serviceAccountJWT("ops", "mongobot")), 0o600)
	tg := newTarget(t, Config{Path: pathFor(t), Kubernetes: &Kubernetes{Mount: mount, Role: "mongobot", JWTFile: jwtFile}})

	_, err = tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), `refused the Kubernetes login as role "mongobot" at auth/`+mount+": permission denied") {
		t.Errorf("login without an API server to confirm the token: %v", err)
	}
	if reviews.Load() == 0 {
		t.Fatal("Vault did not try to confirm the token with the API server: the login stopped before TokenReview")
	}
	t.Logf("bound service account: Vault tried TokenReview (%d connection), then: %v", reviews.Load(), err)

	// The kubelet rotates the token: the next login reads the file again. This one is for
	// a service account the role does not bind, which Vault refuses before TokenReview.
	os.WriteFile(jwtFile, []byte(serviceAccountJWT("ops", "intruder")), 0o600)
	before := reviews.Load()
	_, err = tg.Deliver(context.Background(), cred("orders"))
	saw(t, err)
	if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "service account name not authorized") {
		t.Errorf("a rotated token for another service account: %v", err)
	}
	if reviews.Load() != before {
		t.Error("Vault asked TokenReview about an unbound service account?")
	}
}

// serviceAccountJWT is a token shaped like a Kubernetes service-account token, with a
// signature nobody checks until TokenReview. It is remembered as a secret.
func serviceAccountJWT(namespace, name string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	jwt := enc(map[string]string{"alg": "RS256", "kid": "test"}) + "." + enc(map[string]any{
		"iss": "kubernetes/serviceaccount", "aud": []string{"vault"}, "sub": "system:serviceaccount:" + namespace + ":" + name,
		"kubernetes.io/serviceaccount/namespace":            namespace,
		"kubernetes.io/serviceaccount/service-account.name": name,
		"kubernetes.io/serviceaccount/service-account.uid":  "5f9c7a52-0000-4000-8000-000000000001",
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte(random("signature-")))
	return remember(jwt)
}
