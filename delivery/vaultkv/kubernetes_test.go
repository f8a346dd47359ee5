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
	"time"

	"mongobot/delivery"
	"mongobot/delivery/kubesecret/kubetest"
)

// The Kubernetes login against the real Vault, as far as Vault goes by itself: Vault's
// kubernetes auth parses the service-account JWT, checks its claims against the role's
// bindings, and only then asks the API server (TokenReview) whether the token is genuine.
// Here kubernetes_host is a bare TCP listener that answers nothing; a connection to it shows
// that Vault got as far as TokenReview, so the JWT from the file reached the configured
// mount and role and passed every check Vault makes by itself. TestKubernetesLoginAPIServer
// does the whole login, with a real kube-apiserver answering the TokenReview.
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

// The whole Kubernetes login, against a real kube-apiserver set up as a cluster operator
// sets one up for Vault: Vault reviews tokens with the token of its own service account,
// vault-reviewer, bound to system:auth-delegator; the bot's pod runs as service account
// mongobot, which a Vault role binds to a policy on the secret. The bot's token is one the
// API server issued (TokenRequest), so Vault's TokenReview of it comes back authenticated.
func TestKubernetesLoginAPIServer(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	kube, err := kubetest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("a real kube-apiserver (this is a failure, not a skip): %v", err)
	}
	defer kube.Stop()
	remember(kube.AdminToken())
	t.Logf("%s, ready in %v", kube, kube.Startup.Round(time.Millisecond))

	const ns = "orders"
	if err := kube.Namespace(ns); err != nil {
		t.Fatal(err)
	}
	reviewer := kubeToken(t, kube, ns, "vault-reviewer")
	err = kube.Do(http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "vault-reviewer-auth-delegator"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
		"subjects": []map[string]any{{"kind": "ServiceAccount", "name": "vault-reviewer", "namespace": ns}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC reaches the authorizer through a watch, a moment after the write.
	eventually(t, "RBAC to let vault-reviewer create TokenReviews", func() (bool, error) {
		var r struct {
			Status struct {
				Allowed bool `json:"allowed"`
			} `json:"status"`
		}
		err := kube.Do(http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", map[string]any{
			"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
			"spec": map[string]any{
				"user":               "system:serviceaccount:" + ns + ":vault-reviewer",
				"groups":             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
				"resourceAttributes": map[string]any{"group": "authentication.k8s.io", "resource": "tokenreviews", "verb": "create"},
			},
		}, &r)
		return r.Status.Allowed, err
	})
	jwt := kubeToken(t, kube, ns, "mongobot")

	ca, err := os.ReadFile(kube.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	p, policy := pathFor(t), policyFor(t, "")
	if err := vault.Policy(policy, rw(p)); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		path string
		body map[string]any
	}{
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{
			"kubernetes_host": kube.URL, "kubernetes_ca_cert": string(ca),
			"token_reviewer_jwt": reviewer, "disable_local_ca_jwt": true,
		}},
		{"auth/kubernetes/role/mongobot", map[string]any{
			"bound_service_account_names": []string{"mongobot"}, "bound_service_account_namespaces": []string{ns},
			"token_policies": []string{policy},
			// A TokenRequest without audiences is for the API server's own, its issuer
			// (kubetest's --service-account-issuer); Vault passes it on in the TokenReview.
			"audience": "https://kubernetes.default.svc.cluster.local",
		}},
	} {
		if _, err := vault.Call(http.MethodPost, call.path, call.body); err != nil {
			t.Fatal(err)
		}
	}
	jwtFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwtFile, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, Config{Path: p, Kubernetes: &Kubernetes{Role: "mongobot", JWTFile: jwtFile}})
	c := cred("orders")
	deliver(t, tg, c)
	holds(t, p, c)
	if err := tg.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", saw(t, err))
	}
	first := remember(tg.s.token.Reveal())
	firstUID := loginUID(t, first)

	// Tokens Vault must refuse, each in a Target of its own so that it logs in with it.
	refused := func(what, jwt, want string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "token")
		os.WriteFile(file, []byte(jwt), 0o600)
		other := newTarget(t, Config{Path: p, Kubernetes: &Kubernetes{Role: "mongobot", JWTFile: file}})
		_, err := other.Deliver(context.Background(), cred("orders"))
		saw(t, err)
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), `refused the Kubernetes login as role "mongobot" at auth/kubernetes: `+want) {
			t.Errorf("%s: %v, want ErrRejected saying %q", what, err, want)
		}
		t.Logf("%s: %v", what, err)
	}
	// Genuine, but for a service account the role does not bind.
	refused("a genuine token of service account intruder", kubeToken(t, kube, ns, "intruder"), "service account name not authorized")
	// Bound by its claims, but not signed by the API server: only TokenReview can tell.
	refused("a forged token claiming to be mongobot", remember(jwt[:len(jwt)-8]+"AAAAAAAA"), "permission denied")

	// The kubelet writes a new token, and the operator revokes Vault's tokens: the next
	// delivery logs in again, reading the file afresh. To tell the new token from the old
	// one by the login it makes, it is of the service account made again under the same
	// name, whose uid Vault records. (The API server would accept the old account's token
	// for about 10 s more, from its cache of authenticated tokens, so this does not wait
	// for the old one to be refused.)
	if err := kube.Do(http.MethodDelete, "/api/v1/namespaces/"+ns+"/serviceaccounts/mongobot", nil, nil); err != nil {
		t.Fatal(err)
	}
	fresh := kubeToken(t, kube, ns, "mongobot")
	if err := os.WriteFile(jwtFile, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := vault.RevokeLogins("kubernetes"); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.CallAs(first, http.MethodGet, "auth/token/lookup-self", nil); err == nil {
		t.Fatal("the first token still works after revocation")
	}
	c = cred("orders")
	deliver(t, tg, c)
	holds(t, p, c)
	second := remember(tg.s.token.Reveal())
	if second == first {
		t.Error("delivered with the revoked token?")
	}
	var sa struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := kube.Do(http.MethodGet, "/api/v1/namespaces/"+ns+"/serviceaccounts/mongobot", nil, &sa); err != nil {
		t.Fatal(err)
	}
	if got := loginUID(t, second); got == firstUID || got != sa.Metadata.UID {
		t.Errorf("the second login was as service account uid %s; the first as %s, the recreated account is %s", got, firstUID, sa.Metadata.UID)
	}
	if t.Failed() {
		return
	}
	t.Logf("%s + %s: Kubernetes auth TokenReview round trip: delivered, verified, checked; an unbound and a forged token refused; "+
		"a rotated token file used after revocation; %v", vault, kube, time.Since(t0).Round(time.Millisecond))
}

// kubeToken returns a TokenRequest token of service account sa in ns (made if missing), once
// the API server accepts it: its authenticator sees new accounts through a watch.
func kubeToken(t *testing.T, kube *kubetest.Server, ns, sa string) string {
	t.Helper()
	tok, err := kube.ServiceAccountToken(ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	remember(tok)
	eventually(t, "the API server to accept a token of "+ns+"/"+sa, func() (bool, error) {
		ok, _, err := kube.TokenReview(tok)
		return ok, err
	})
	return tok
}

// loginUID is the uid of the service account whose Kubernetes login made the Vault token.
func loginUID(t *testing.T, token string) string {
	t.Helper()
	out, err := vault.CallAs(token, http.MethodGet, "auth/token/lookup-self", nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := out["data"].(map[string]any)["meta"].(map[string]any)
	uid, _ := meta["service_account_uid"].(string)
	if uid == "" {
		t.Fatalf("the token's metadata has no service_account_uid: %v", meta)
	}
	return uid
}

// eventually waits up to 10 s for cond to hold, failing t on an error or the deadline.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
