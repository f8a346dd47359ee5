package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"mongobot/bot"
	"mongobot/commands"
	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/delivery/command"
	"mongobot/delivery/kubesecret"
	"mongobot/delivery/vaultkv"
)

const referencePath = "../docs/config.md"

// TestReference keeps docs/config.md equal to what Reference generates from the types;
// UPDATE_GOLDEN=1 rewrites it.
func TestReference(t *testing.T) {
	got := Reference()
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(referencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", referencePath)
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v (UPDATE_GOLDEN=1 go test ./config -run TestReference writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from config.Reference(): run UPDATE_GOLDEN=1 go test ./config -run TestReference, and review the diff", referencePath)
	}
}

// TestReferenceDescribesEveryKey fails on a key of the schema the table does not describe, and
// on a description of a key the schema does not have.
func TestReferenceDescribesEveryKey(t *testing.T) {
	schema := map[string]SchemaKey{}
	for _, k := range Schema() {
		schema[k.Path] = k
	}
	if len(schema) < 100 {
		t.Fatalf("the schema walk found %d keys; it lost its way", len(schema))
	}
	described := map[string]bool{}
	for _, d := range keyDocs {
		if described[d.path] {
			t.Errorf("%s is described twice", d.path)
		}
		described[d.path] = true
		k, ok := schema[d.path]
		if !ok {
			t.Errorf("the reference describes %s, which the config does not have", d.path)
			continue
		}
		if strings.TrimSpace(d.meaning) == "" {
			t.Errorf("%s has no meaning", d.path)
		}
		if !k.Block() && d.example == "" {
			t.Errorf("%s has no example", d.path)
		}
		if d.ints != nil && deref(k.Type).Kind() != reflect.Int {
			t.Errorf("%s has whole-number bounds but is %s", d.path, typeName(k))
		}
	}
	for p := range schema {
		if !described[p] {
			t.Errorf("%s is a key of the config that the reference does not describe (add it to keyDocs)", p)
		}
	}
	// The keys the issue found documented nowhere.
	for _, p := range []string{"reveal_ttl", "connectors[].password_length", "connectors[].verify_login",
		"approvals.allow_self_approval", "slash_command", "connectors[].tls_ca_pem", "connectors[].tls_certificate_key_pem",
		"deliveries[].targets[].vault_kv.auth.approle.role_id_file", "deliveries[].targets[].vault_kv.auth.approle.secret_id_file",
		"store.etcd.replica"} {
		if !strings.Contains(Reference(), "### `"+p+"`") {
			t.Errorf("the reference has no entry for %s", p)
		}
	}
}

// TestSchemaCredentials checks that the walk tells credentials from other text: they are the
// keys decoded into secret.String.
func TestSchemaCredentials(t *testing.T) {
	var got []string
	for _, k := range Schema() {
		if k.Credential {
			got = append(got, k.Path)
		}
	}
	want := []string{
		"deliveries[].targets[].vault_kv.auth.token", "deliveries[].targets[].vault_kv.auth.approle.secret_id",
		"connectors[].connection_string", "connectors[].tls_certificate_key_pem", "connectors[].client_secret",
		"connectors[].private_key", "store.etcd.password",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("credentials %v, want %v", got, want)
	}
}

// TestReferenceDefaults checks the defaults the table copies from other packages, and those
// Parse applies itself, against what the code does.
func TestReferenceDefaults(t *testing.T) {
	dur := func(d time.Duration) string { return "`" + commands.FormatDuration(d) + "`" }
	want := map[string]string{
		"connectors[].password_length": fmt.Sprintf("`%d`", connector.DefaultPasswordLength),
		"connectors[].concurrency":     fmt.Sprintf("`%d`", bot.DefaultConcurrency),
		"connectors[].queue":           fmt.Sprintf("`%d`", bot.DefaultQueue),
		"connectors[].base_url":        "`" + atlas.DefaultBaseURL + "`",
		"connector_idle_timeout":       dur(connector.DefaultIdleTimeout),

		"deliveries[].targets[].vault_kv.mount":                    "`" + vaultkv.DefaultMount + "`",
		"deliveries[].targets[].vault_kv.username_field":           "`" + vaultkv.DefaultUsernameField + "`",
		"deliveries[].targets[].vault_kv.password_field":           "`" + vaultkv.DefaultPasswordField + "`",
		"deliveries[].targets[].vault_kv.timeout":                  dur(vaultkv.DefaultTimeout),
		"deliveries[].targets[].vault_kv.auth.approle.mount":       "`" + vaultkv.DefaultAppRoleMount + "`",
		"deliveries[].targets[].vault_kv.auth.kubernetes.mount":    "`" + vaultkv.DefaultKubeMount + "`",
		"deliveries[].targets[].vault_kv.auth.kubernetes.jwt_file": "`" + vaultkv.DefaultJWTFile + "`",
		"deliveries[].targets[].kubernetes_secret.username_key":    "`" + kubesecret.DefaultUsernameKey + "`",
		"deliveries[].targets[].kubernetes_secret.password_key":    "`" + kubesecret.DefaultPasswordKey + "`",
		"deliveries[].targets[].kubernetes_secret.timeout":         dur(kubesecret.DefaultTimeout),
		"deliveries[].targets[].exec.timeout":                      dur(command.DefaultTimeout),
	}
	// What Parse fills in itself, read back from a minimal config.
	c, err := Parse([]byte(minimal+"store: {etcd: {endpoints: [https://etcd-0:2379]}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want["slash_command"] = "`" + c.SlashCommand + "`"
	want["reveal_ttl"] = dur(time.Duration(c.RevealTTL))
	want["retention.keep"] = dur(time.Duration(c.Retention.Keep))
	want["store.etcd.prefix"] = "`" + c.Store.Etcd.Prefix + "`"
	want["store.etcd.session_ttl"] = dur(time.Duration(c.Store.Etcd.SessionTTL))
	want["store.etcd.max_txn_ops"] = fmt.Sprintf("`%d` (etcd's default)", c.Store.Etcd.MaxTxnOps)
	for _, d := range keyDocs {
		if w, ok := want[d.path]; ok && d.def != w {
			t.Errorf("%s: the reference says the default is %s; the code's is %s", d.path, d.def, w)
		}
		delete(want, d.path)
	}
	for p := range want {
		t.Errorf("%s: not in the table", p)
	}
}

const minimal = `
connectors:
  - name: prod
    connection_string: mongodb://bot@db:27017/
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE]}
deliveries:
  - connector: prod
    user: app
    targets: [{exec: {command: [/bin/true]}}]
`

// TestReferenceBounds feeds Parse the values at and past each documented bound of a whole
// number, and a value outside each documented choice of a text key: the table must say what
// the checks do.
func TestReferenceBounds(t *testing.T) {
	refused := func(path string, value any) (bool, string) {
		var root map[string]any
		if err := yaml.Unmarshal([]byte(minimal), &root); err != nil {
			t.Fatal(err)
		}
		setPath(root, strings.Split(path, "."), value)
		raw, err := yaml.Marshal(root)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(raw, env(nil))
		// The message names the key with the first index of each list.
		named := strings.ReplaceAll(path, "[]", "[0]")
		return err != nil && strings.Contains(err.Error(), named), fmt.Sprint(err)
	}
	n := 0
	for _, d := range keyDocs {
		for _, v := range probes(d) {
			n++
			if got, msg := refused(d.path, v.value); got != v.refused {
				t.Errorf("%s: %v (documented bounds %q): refused %v, want %v: %s", d.path, v.value, boundsText(d), got, v.refused, msg)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d probes", n)
	}
}

type probe struct {
	value   any // an int, or text
	refused bool
}

// probes are the values that test d's documented bounds: the bounds themselves pass, the
// values just past them do not; 0 is left out when it means the default.
func probes(d keyDoc) []probe {
	var ps []probe
	if b := d.ints; b != nil {
		ps = append(ps, probe{b.min, false}, probe{-1, true})
		if b.min-1 > 0 {
			ps = append(ps, probe{b.min - 1, true})
		}
		if b.max != 0 {
			ps = append(ps, probe{b.max, false}, probe{b.max + 1, true})
		}
	}
	if len(d.choices) > 0 {
		ps = append(ps, probe{"bogus", true})
	}
	return ps
}

func boundsText(d keyDoc) string {
	for _, k := range Schema() {
		if k.Path == d.path {
			return boundsOf(k, d)
		}
	}
	return ""
}

// setPath sets the key at path in a decoded YAML document, making the mappings and the first
// element of the lists on the way ("a[].b" is a[0].b).
func setPath(m map[string]any, path []string, value any) {
	key, list := strings.CutSuffix(path[0], "[]")
	if len(path) == 1 {
		m[key] = value
		return
	}
	if !list {
		next, _ := m[key].(map[string]any)
		if next == nil {
			next = map[string]any{}
			m[key] = next
		}
		setPath(next, path[1:], value)
		return
	}
	items, _ := m[key].([]any)
	if len(items) == 0 {
		items = []any{map[string]any{}}
		m[key] = items
	}
	setPath(items[0].(map[string]any), path[1:], value)
}

// TestExampleConfig loads examples/bot.yaml with the real Load, every ${VAR} set to a dummy
// value and the files it names created, and requires no mistake; and it requires every key of
// the schema to appear in it, as a key or as a commented-out key.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../examples/bot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	// Files the example names where a deployment mounts them: made here, since Load checks
	// that the delivery targets' files can be read.
	dir := t.TempDir()
	for _, f := range regexp.MustCompile(`/etc/[a-z]+/[A-Za-z0-9._/-]+`).FindAllString(text, -1) {
		p := filepath.Join(dir, strings.TrimPrefix(f, "/etc/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("dummy\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "bot.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/etc/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		vars[m[1]] = "dummy-" + strings.ToLower(m[1])
	}
	if len(vars) < 5 {
		t.Fatalf("the example takes only %d variables from the environment", len(vars))
	}
	c, err := Load(path, env(vars))
	if err != nil {
		t.Fatalf("examples/bot.yaml does not load: %v", err)
	}
	if len(c.Connectors) < 2 || len(c.Deliveries) < 2 {
		t.Fatalf("the example loads as %d connectors and %d deliveries", len(c.Connectors), len(c.Deliveries))
	}

	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	keyPaths(root.Content[0], "", present)
	commented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*#\s*(?:- )?\{?([a-z_]+):`).FindAllStringSubmatch(text, -1) {
		commented[m[1]] = true
	}
	for _, k := range Schema() {
		if present[k.Path] {
			continue
		}
		name := k.Path[strings.LastIndex(k.Path, ".")+1:]
		if !commented[name] {
			t.Errorf("examples/bot.yaml does not show %s, neither as a key nor commented out", k.Path)
		}
	}
	for p := range present {
		if !slices.ContainsFunc(Schema(), func(k SchemaKey) bool { return k.Path == p }) && !strings.Contains(p, ".env.") {
			t.Errorf("examples/bot.yaml has %s, which the schema does not", p)
		}
	}
}

// keyPaths records the path of every key of n, lists written [].
func keyPaths(n *yaml.Node, path string, out map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			out[p] = true
			keyPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			keyPaths(c, path+"[]", out)
		}
	}
}
