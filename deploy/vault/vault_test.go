package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/delivery/kubesecret/kubetest"
	"mongobot/delivery/vaultkv"
	"mongobot/delivery/vaultkv/vaulttest"
	"mongobot/secret"
)

// The bot's namespace and service account, as the defaults of setup.sh name them.
const ns, sa = "mongobot", "mongobot"

// secrets are every secret the test handles (tokens, IDs, passwords); no output may show one.
var secrets []string

func remember(s string) string { secrets = append(secrets, s); return s }

// clean fails t if text shows a secret.
func clean(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret", what)
		}
	}
}

// The operator's path, end to end, on a real Vault and a real kube-apiserver: setup.sh, as
// shipped and run by the vault CLI, loads the policy and makes the AppRole and Kubernetes
// roles (twice: the second run changes nothing); the bot's own vault_kv code logs in each
// way and delivers, verifies and checks a secret under mongobot/; and with the same login
// everything else is refused: the neighbours, reading, listing, deleting, sys/, minting
// tokens or secret IDs.
func TestSetupPolicyAndLogins(t *testing.T) {
	t0 := time.Now()
	v, err := vaulttest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("a real Vault (this is a failure, not a skip): %v", err)
	}
	defer v.Stop()
	remember(v.RootToken)
	kube, err := kubetest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("a real kube-apiserver (this is a failure, not a skip): %v", err)
	}
	defer kube.Stop()
	remember(kube.AdminToken())
	t.Logf("%s and %s up in %v", v, kube, time.Since(t0).Round(time.Millisecond))

	reviewer := reviewerToken(t, kube)
	dir := t.TempDir()
	reviewerFile := filepath.Join(dir, "reviewer.jwt")
	if err := os.WriteFile(reviewerFile, []byte(reviewer), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := vaulttest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	roleIDFile, secretIDFile := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	env := map[string]string{
		"VAULT": bin, "VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken,
		"K8S_HOST": kube.URL, "K8S_CA_FILE": kube.CAFile, "K8S_REVIEWER_JWT_FILE": reviewerFile,
		// kubetest's TokenRequests carry the API server's own audience, its issuer.
		"K8S_AUDIENCE": "https://kubernetes.default.svc.cluster.local",
		"ROLE_ID_FILE": roleIDFile, "SECRET_ID_FILE": secretIDFile,
	}
	t1 := time.Now()
	out := setup(t, env)
	if !strings.Contains(out, "a new secret ID is in") || !strings.Contains(out, "create, read and update secret/mongobot/* only") {
		t.Errorf("setup.sh said:\n%s", out)
	}
	t.Logf("setup.sh (%v):\n%s", time.Since(t1).Round(time.Millisecond), out)
	secretID := remember(read(t, secretIDFile))
	roleID := remember(read(t, roleIDFile))
	out = setup(t, env)
	if strings.Contains(out, "a new secret ID") || read(t, secretIDFile) != secretID || read(t, roleIDFile) != roleID {
		t.Errorf("the second run minted another secret ID or changed the role ID:\n%s", out)
	}
	for _, f := range []string{roleIDFile, secretIDFile} {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// What the vault CLI loaded is the shipped file, for the default mount and prefix.
	hcl, err := os.ReadFile("mongobot.hcl")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Call(http.MethodGet, "sys/policies/acl/mongobot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := got["data"].(map[string]any)["policy"].(string); strings.TrimSpace(p) != strings.TrimSpace(string(hcl)) {
		t.Errorf("Vault's policy mongobot is not mongobot.hcl:\n%s", p)
	}

	t.Run("approle", func(t *testing.T) {
		bot(t, v, vaultkv.Config{AppRole: &vaultkv.AppRole{RoleIDFile: roleIDFile, SecretIDFile: secretIDFile}},
			func() string { return login(t, v, "approle", map[string]any{"role_id": roleID, "secret_id": secretID}) })
	})
	t.Run("kubernetes", func(t *testing.T) {
		jwt := saToken(t, kube, sa)
		jwtFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(jwtFile, []byte(jwt), 0o600); err != nil {
			t.Fatal(err)
		}
		bot(t, v, vaultkv.Config{Kubernetes: &vaultkv.Kubernetes{Role: "mongobot", JWTFile: jwtFile}},
			func() string { return login(t, v, "kubernetes", map[string]any{"role": "mongobot", "jwt": jwt}) })
		// Another service account of the same namespace, genuine, gets nothing.
		other := saToken(t, kube, "intruder")
		_, err := v.CallAs("", http.MethodPost, "auth/kubernetes/login", map[string]any{"role": "mongobot", "jwt": other})
		if status(err) != http.StatusForbidden {
			t.Errorf("a login as service account intruder: %v, want 403", err)
		}
	})

	// A non-default mount and prefix, run again: the policy follows them.
	if err := v.EnableKV("apps", 2); err != nil {
		t.Fatal(err)
	}
	env["MOUNT"], env["PREFIX"], env["POLICY"], env["APPROLE"] = "apps", "team/orders-bot", "orders-bot", "off"
	delete(env, "K8S_HOST")
	setup(t, env)
	got, err = v.Call(http.MethodGet, "sys/policies/acl/orders-bot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := got["data"].(map[string]any)["policy"].(string); !strings.Contains(p, `path "apps/data/team/orders-bot/*"`) || strings.Contains(p, `path "secret/`) {
		t.Errorf("policy for MOUNT=apps PREFIX=team/orders-bot:\n%s", p)
	}
	// A mount that is not there is refused in words, before anything is written.
	env["MOUNT"] = "nowhere"
	cmd := script(env)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "Vault has no mount nowhere/") {
		t.Errorf("MOUNT=nowhere: %v\n%s", err, b)
	}
	t.Logf("all in %v", time.Since(t0).Round(time.Millisecond))
}

// bot is the bot logging in with auth, delivering to its own path, and being refused
// everything else; token logs in the same way and returns the token, for the calls the
// bot's code never makes.
func bot(t *testing.T, v *vaulttest.Server, auth vaultkv.Config, token func() string) {
	ctx := context.Background()
	target := func(path string) *vaultkv.Target {
		c := auth
		c.Address, c.Path = v.Addr, path
		tg, err := vaultkv.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	own := "mongobot/" + t.Name()[strings.LastIndex(t.Name(), "/")+1:] + "/orders"
	tg := target(own)
	if err := tg.Check(ctx); err != nil {
		t.Fatalf("Check before the first delivery: %v", err)
	}
	for i := range 2 { // create, then a new version over it with check-and-set
		c := credential()
		version, err := tg.Deliver(ctx, c)
		if err != nil {
			t.Fatalf("Deliver %d to secret/%s: %v", i+1, own, err)
		}
		how, err := tg.Verify(ctx, c, version)
		if err != nil {
			t.Fatalf("Verify %s: %v", version, err)
		}
		data, n, err := v.Read(own)
		if err != nil || data["username"] != c.User || data["password"] != c.Password.Reveal() || n != i+1 {
			t.Fatalf("secret/%s after delivery %d: version %d, user %q, %v", own, i+1, n, data["username"], err)
		}
		t.Logf("delivered %s to secret/%s; %s", version, own, how)
	}
	if err := tg.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}

	// The bot's own code, pointed at its neighbours, is refused.
	for _, p := range []string{"other/x", "mongobot-other/x", "mongobotx"} {
		_, err := target(p).Deliver(ctx, credential())
		if !errors.Is(err, delivery.ErrRejected) || !strings.Contains(err.Error(), "denied") {
			t.Errorf("Deliver to secret/%s: %v, want a denial", p, err)
		}
		clean(t, "an error", err.Error())
		if err := target(p).Check(ctx); err == nil {
			t.Errorf("Check of secret/%s passed", p)
		}
	}
	if _, err := v.Write("other/x", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}

	tok := remember(token())
	who, err := v.Call(http.MethodPost, "auth/token/lookup", map[string]any{"token": tok})
	if err != nil {
		t.Fatal(err)
	}
	policies, _ := who["data"].(map[string]any)["policies"].([]any)
	if len(policies) != 1 || policies[0] != "mongobot" {
		t.Errorf("the login's token has policies %v, want only mongobot", policies)
	}
	refused := 0
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "secret/data/other/x"},
		{http.MethodPost, "secret/data/mongobot-other/x"},
		{http.MethodPost, "secret/data/mongobot"},
		{http.MethodGet, "secret/data/other/x"},
		{http.MethodGet, "secret/data/mongobot-other/x"},
		{"LIST", "secret/metadata/"},
		{"LIST", "secret/metadata/mongobot/"},
		{"LIST", "secret/metadata/other/"},
		{http.MethodGet, "secret/metadata/" + own},
		{http.MethodDelete, "secret/data/" + own},
		{http.MethodDelete, "secret/metadata/" + own},
		{http.MethodPost, "secret/destroy/" + own},
		{http.MethodPost, "secret/delete/" + own},
		{http.MethodGet, "secret/config"},
		{"LIST", "sys/policies/acl"},
		{http.MethodPut, "sys/policies/acl/mongobot"},
		{http.MethodGet, "sys/mounts"},
		{http.MethodGet, "sys/auth"},
		{http.MethodPost, "sys/mounts/mine"},
		{http.MethodPost, "auth/token/create"},
		{http.MethodGet, "auth/token/lookup-self"},
		{http.MethodPost, "auth/approle/role/mongobot/secret-id"},
		{http.MethodGet, "auth/approle/role/mongobot/role-id"},
		{http.MethodPost, "cubbyhole/x"},
	} {
		var body any
		if c.method == http.MethodPost || c.method == http.MethodPut {
			body = map[string]any{"data": map[string]string{"k": "v"}, "policy": `path "*" { capabilities = ["sudo"] }`, "type": "kv"}
		}
		_, err := v.CallAs(tok, c.method, c.path, body)
		if status(err) != http.StatusForbidden {
			t.Errorf("%s %s as the bot: %v, want 403", c.method, c.path, err)
		}
		refused++
	}
	if data, _, err := v.Read("other/x"); err != nil || data["k"] != "v" {
		t.Errorf("secret/other/x changed: %v, %v", data, err)
	}
	t.Logf("%d calls outside secret/data/%s refused with 403", refused, "mongobot/*")
}

func credential() delivery.Credential {
	return delivery.Credential{Connector: "prod", User: "orders", Database: "admin", Password: secret.New(remember(random())), Entry: 1}
}

func random() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// script is setup.sh with env, on top of a bare PATH and a HOME of its own.
func script(env map[string]string) *exec.Cmd {
	cmd := exec.Command("bash", "setup.sh")
	home, _ := os.MkdirTemp("", "vault-setup-home-")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// setup runs setup.sh, failing t when it fails or prints a secret.
func setup(t *testing.T, env map[string]string) string {
	t.Helper()
	b, err := script(env).CombinedOutput()
	clean(t, "setup.sh's output", string(b))
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, b)
	}
	return string(b)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// login logs in at auth/<mount>/login and returns the token.
func login(t *testing.T, v *vaulttest.Server, mount string, body map[string]any) string {
	t.Helper()
	out, err := v.CallAs("", http.MethodPost, "auth/"+mount+"/login", body)
	if err != nil {
		t.Fatalf("login at auth/%s: %v", mount, err)
	}
	tok, _ := out["auth"].(map[string]any)["client_token"].(string)
	if tok == "" {
		t.Fatalf("login at auth/%s gave no token", mount)
	}
	return tok
}

func status(err error) int {
	var se *vaulttest.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// reviewerToken sets up the service account Vault sends TokenReviews as, the way a cluster
// operator does for Vault's Kubernetes auth, and returns its token.
func reviewerToken(t *testing.T, kube *kubetest.Server) string {
	t.Helper()
	if err := kube.Namespace(ns); err != nil {
		t.Fatal(err)
	}
	err := kube.Do(http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "vault-reviewer-auth-delegator"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
		"subjects": []map[string]any{{"kind": "ServiceAccount", "name": "vault-reviewer", "namespace": ns}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := saToken(t, kube, "vault-reviewer")
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
	return tok
}

// saToken is a TokenRequest token of service account name in ns, once the API server
// accepts it (its authenticator sees new accounts through a watch).
func saToken(t *testing.T, kube *kubetest.Server, name string) string {
	t.Helper()
	tok, err := kube.ServiceAccountToken(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	remember(tok)
	eventually(t, "the API server to accept a token of "+name, func() (bool, error) {
		ok, _, err := kube.TokenReview(tok)
		return ok, err
	})
	return tok
}

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
