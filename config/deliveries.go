package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"mongobot/secret"
)

// Delivery says where the rotated password of one user (or of a pair of alternating users) of
// one connector goes, so that applications read it from there and nobody has to paste it.
type Delivery struct {
	Connector string `yaml:"connector"`
	// User is the one user whose password is delivered (strategy single); Users are the two
	// alternating users (strategy alternating), the first the one applications use today.
	User  string   `yaml:"user"`
	Users []string `yaml:"users"`
	// DB is the users' authentication database (default admin).
	DB string `yaml:"db"`
	// Strategy is single (default) or alternating.
	Strategy string `yaml:"strategy"`
	// Reveal is who may also Reveal a delivered password: none (default: nobody needs to see
	// it) or owner (the requester, or the schedule's owner, once, as without deliveries).
	Reveal  string   `yaml:"reveal"`
	Targets []Target `yaml:"targets"`
}

// Target is one place a password is delivered to: exactly one of its keys.
type Target struct {
	VaultKV          *VaultKV          `yaml:"vault_kv"`
	KubernetesSecret *KubernetesSecret `yaml:"kubernetes_secret"`
	Exec             *Exec             `yaml:"exec"`
}

// VaultKV is a secret in a Vault KV version 2 mount.
type VaultKV struct {
	Address       string    `yaml:"address"`
	Mount         string    `yaml:"mount"` // default secret
	Path          string    `yaml:"path"`
	UsernameField string    `yaml:"username_field"` // default username
	PasswordField string    `yaml:"password_field"` // default password
	TLSCAFile     string    `yaml:"tls_ca_file"`
	Namespace     string    `yaml:"namespace"`
	Timeout       Duration  `yaml:"timeout"`
	Auth          VaultAuth `yaml:"auth"`
}

// VaultAuth is how the bot logs in to Vault: exactly one of a token, AppRole, or Kubernetes
// service-account login. Credentials come from ${VAR} or from files, never from the file's
// own text.
type VaultAuth struct {
	Token      Secret           `yaml:"token"`
	TokenFile  string           `yaml:"token_file"`
	AppRole    *VaultAppRole    `yaml:"approle"`
	Kubernetes *VaultKubernetes `yaml:"kubernetes"`
}

// VaultAppRole is an AppRole login.
type VaultAppRole struct {
	Mount        string `yaml:"mount"` // default approle
	RoleID       string `yaml:"role_id"`
	RoleIDFile   string `yaml:"role_id_file"`
	SecretID     Secret `yaml:"secret_id"`
	SecretIDFile string `yaml:"secret_id_file"`
}

// VaultKubernetes is a Kubernetes service-account login.
type VaultKubernetes struct {
	Mount   string `yaml:"mount"` // default kubernetes
	Role    string `yaml:"role"`
	JWTFile string `yaml:"jwt_file"` // default the pod's service-account token
}

// KubernetesSecret is a Secret in a Kubernetes namespace.
type KubernetesSecret struct {
	Namespace   string   `yaml:"namespace"`
	Name        string   `yaml:"name"`
	UsernameKey string   `yaml:"username_key"` // default username
	PasswordKey string   `yaml:"password_key"` // default password
	Kubeconfig  string   `yaml:"kubeconfig"`   // default: the in-cluster configuration
	Context     string   `yaml:"context"`
	Timeout     Duration `yaml:"timeout"`
}

// Exec is a command that receives the credential as JSON on its standard input.
type Exec struct {
	Command []string          `yaml:"command"`
	Timeout Duration          `yaml:"timeout"` // default 30s
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
}

// Secret is a credential field: read like text (from ${VAR}), kept as a secret.String so that
// no log, message or error can print it.
type Secret struct{ secret.String }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	s.String = secret.New(n.Value)
	return nil
}

// Users are the users whose password d delivers: one, or the alternating two.
func (d Delivery) Names() []string {
	if d.Strategy == "alternating" {
		return d.Users
	}
	return []string{d.User}
}

// checkDeliveries finds the mistakes in the deliveries section; connectors are the names
// declared.
func (c *Config) checkDeliveries(src *source, connectors []string, add func(string, ...any)) {
	seen := map[string]string{}
	for i, d := range c.Deliveries {
		f := fmt.Sprintf("deliveries[%d]", i)
		if d.Connector == "" {
			add("%s.connector is empty", f)
		} else if !slices.Contains(connectors, d.Connector) {
			add("%s.connector %q is not a connector of this file%s", f, d.Connector, suggest(d.Connector, connectors))
		}
		switch d.Strategy {
		case "", "single":
			if d.User == "" {
				add("%s.user is empty: which user's password is delivered?", f)
			}
			if len(d.Users) > 0 {
				add("%s.users is for strategy: alternating; a single user is given as user", f)
			}
		case "alternating":
			if d.User != "" {
				add("%s.user is for a single user; alternating users are given as users: [a, b]", f)
			}
			if len(d.Users) != 2 || d.Users[0] == "" || d.Users[1] == "" || d.Users[0] == d.Users[1] {
				add("%s.users must name two different users (the first is the one applications use today)", f)
			}
		default:
			add("%s.strategy %q is not single or alternating", f, d.Strategy)
		}
		switch d.Reveal {
		case "", "none", "owner":
		default:
			add("%s.reveal %q is not none or owner", f, d.Reveal)
		}
		for j, u := range d.Names() {
			if u == "" || j > 0 && u == d.Names()[0] {
				continue // reported above
			}
			k := d.Connector + "/" + u + "@" + orAdmin(d.DB)
			if prev, dup := seen[k]; dup {
				add("%s: %s@%s on %s is already delivered by %s: one delivery per user", f, u, orAdmin(d.DB), d.Connector, prev)
			}
			seen[k] = f
		}
		if len(d.Targets) == 0 {
			add("%s.targets is empty: give at least one of vault_kv, kubernetes_secret, exec", f)
		}
		for j, t := range d.Targets {
			checkTarget(fmt.Sprintf("%s.targets[%d]", f, j), t, src.expanded, add)
		}
	}
}

func orAdmin(db string) string {
	if db == "" {
		return "admin"
	}
	return db
}

func checkTarget(f string, t Target, fromEnv func(string) bool, add func(string, ...any)) {
	literal := func(path string, v Secret) { credential(fromEnv, path, v.String, true, add) }
	n := 0
	for _, set := range []bool{t.VaultKV != nil, t.KubernetesSecret != nil, t.Exec != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		add("%s must have exactly one of vault_kv, kubernetes_secret, exec", f)
		return
	}
	switch {
	case t.VaultKV != nil:
		v, f := t.VaultKV, f+".vault_kv"
		if !strings.HasPrefix(v.Address, "https://") && !strings.HasPrefix(v.Address, "http://") {
			add("%s.address %q must be a URL like https://vault.example.com:8200", f, v.Address)
		}
		if strings.Trim(v.Path, "/") == "" {
			add("%s.path is empty: the secret's path under the mount, like apps/orders", f)
		}
		fileOK(f+".tls_ca_file", v.TLSCAFile, add)
		a, fa := v.Auth, f+".auth"
		ways := 0
		if !a.Token.Empty() || a.TokenFile != "" {
			ways++
			if !a.Token.Empty() && a.TokenFile != "" {
				add("%s: give token or token_file, not both", fa)
			}
			fileOK(fa+".token_file", a.TokenFile, add)
			literal(fa+".token", a.Token)
		}
		if a.AppRole != nil {
			ways++
			r := a.AppRole
			if (r.RoleID == "") == (r.RoleIDFile == "") {
				add("%s.approle: give role_id or role_id_file", fa)
			}
			if r.SecretID.Empty() == (r.SecretIDFile == "") {
				add("%s.approle: give secret_id (from ${VAR}) or secret_id_file", fa)
			}
			fileOK(fa+".approle.role_id_file", r.RoleIDFile, add)
			fileOK(fa+".approle.secret_id_file", r.SecretIDFile, add)
			literal(fa+".approle.secret_id", r.SecretID)
		}
		if a.Kubernetes != nil {
			ways++
			if a.Kubernetes.Role == "" {
				add("%s.kubernetes.role is empty: the Vault role to log in as", fa)
			}
		}
		if ways != 1 {
			add("%s must have exactly one of token (or token_file), approle, kubernetes", fa)
		}
	case t.KubernetesSecret != nil:
		k, f := t.KubernetesSecret, f+".kubernetes_secret"
		if k.Namespace == "" {
			add("%s.namespace is empty", f)
		}
		if k.Name == "" {
			add("%s.name is empty: the Secret's name", f)
		}
		if k.UsernameKey != "" && k.UsernameKey == k.PasswordKey {
			add("%s: username_key and password_key are the same key", f)
		}
		fileOK(f+".kubeconfig", k.Kubeconfig, add)
	case t.Exec != nil:
		x, f := t.Exec, f+".exec"
		if len(x.Command) == 0 || x.Command[0] == "" {
			add("%s.command is empty: the program and its arguments, as a list", f)
		} else if !filepath.IsAbs(x.Command[0]) {
			add("%s.command[0] %q must be an absolute path: the bot runs it with a clean environment, without a shell", f, x.Command[0])
		}
		for k := range x.Env {
			if strings.ContainsAny(k, "= \t") || k == "" {
				add("%s.env: %q is not an environment variable name", f, k)
			}
		}
	}
}

// fileOK says when a file the config names cannot be read now: better at start than at 03:00.
func fileOK(path, name string, add func(string, ...any)) {
	if name == "" {
		return
	}
	if _, err := os.Stat(name); err != nil {
		add("%s %q cannot be read: %v", path, name, errText(err))
	}
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
