package vaultkv

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"mongobot/secret"
)

// Config says which secret a Target writes and how it logs in to Vault. Nothing in it is read
// from the environment: a VAULT_TOKEN or VAULT_ADDR meant for something else on the bot's host
// must not redirect a delivery or change whose permissions it runs with.
//
// The token (however it is obtained) needs this on the secret, and nothing else; Check says
// what is missing:
//
//	path "secret/data/apps/orders" { capabilities = ["create", "read", "update"] }
type Config struct {
	Address       string        // Vault's address, e.g. https://vault.example:8200
	Mount         string        // the KV v2 mount; default "secret"
	Path          string        // the secret's path under the mount, as the CLI shows it: "apps/orders"
	UsernameField string        // default "username"
	PasswordField string        // default "password"
	TLSCAFile     string        // optional: a PEM file of the CAs that sign Vault's certificate
	Namespace     string        // optional: a Vault Enterprise namespace (refused by open-source Vault)
	Timeout       time.Duration // bounds each Deliver, Verify and Check; default 15s

	// Authentication: exactly one of Token or TokenFile, AppRole, Kubernetes.

	// Token is used as it is; when Vault stops accepting it, deliveries fail as rejected
	// until the configuration changes.
	Token secret.String
	// TokenFile is read before every call, so a token that Vault Agent (or anything else)
	// rewrites in place is picked up without a restart.
	TokenFile  string
	AppRole    *AppRole
	Kubernetes *Kubernetes
}

// AppRole logs in with a role ID and a secret ID. The files, when given, are read again at
// every login, so a rotated secret ID is used as soon as the old token stops working.
type AppRole struct {
	Mount        string // the auth mount; default "approle"
	RoleID       string
	RoleIDFile   string
	SecretID     secret.String
	SecretIDFile string
}

// Kubernetes logs in with the pod's service-account token. The file is read again at every
// login: the kubelet rotates projected tokens, and an old one is refused once it expires.
type Kubernetes struct {
	Mount   string // the auth mount; default "kubernetes"
	Role    string
	JWTFile string // default /var/run/secrets/kubernetes.io/serviceaccount/token
}

// Defaults.
const (
	DefaultMount         = "secret"
	DefaultUsernameField = "username"
	DefaultPasswordField = "password"
	DefaultTimeout       = 15 * time.Second
	DefaultAppRoleMount  = "approle"
	DefaultKubeMount     = "kubernetes"
	DefaultJWTFile       = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// normalize fills in the defaults and reports every mistake at once, one per line, so that
// `bot check` shows all of them instead of one per run.
func (c Config) normalize() (Config, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	c.Address = strings.TrimRight(strings.TrimSpace(c.Address), "/")
	if c.Address == "" {
		bad("address is missing (e.g. https://vault.example:8200)")
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("address %q is not an http:// or https:// URL", c.Address)
	} else if u.User != nil || u.RawQuery != "" {
		bad("address %q must not carry a user or a query", u.Redacted())
	}
	c.Mount = strings.Trim(c.Mount, "/")
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	c.Path = strings.Trim(c.Path, "/")
	switch {
	case c.Path == "":
		bad("path is missing (the secret's path under the mount, e.g. apps/orders)")
	case strings.HasPrefix(c.Path, "data/") || strings.HasPrefix(c.Path, "metadata/"):
		// The HTTP API's secret/data/apps/orders is the CLI's secret/apps/orders; the client
		// adds data/ itself, so a path written the API's way would land one level deeper.
		bad("path %q starts with %s: give it as the CLI shows it, without the data/ the HTTP API inserts", c.Path, c.Path[:strings.Index(c.Path, "/")+1])
	case strings.Contains(c.Path, "//") || strings.Contains("/"+c.Path+"/", "/../") || strings.Contains("/"+c.Path+"/", "/./"):
		bad("path %q has an empty, . or .. segment", c.Path)
	}
	if c.UsernameField == "" {
		c.UsernameField = DefaultUsernameField
	}
	if c.PasswordField == "" {
		c.PasswordField = DefaultPasswordField
	}
	if c.UsernameField == c.PasswordField {
		bad("username_field and password_field are both %q", c.UsernameField)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	} else if c.Timeout < 0 {
		bad("timeout %v is negative", c.Timeout)
	}

	methods := 0
	if !c.Token.Empty() || c.TokenFile != "" {
		methods++
		if !c.Token.Empty() && c.TokenFile != "" {
			bad("token and token_file are both set: give one")
		}
	}
	if c.AppRole != nil {
		methods++
		a := *c.AppRole
		a.Mount = strings.Trim(a.Mount, "/")
		if a.Mount == "" {
			a.Mount = DefaultAppRoleMount
		}
		if (a.RoleID == "") == (a.RoleIDFile == "") {
			bad("approle needs exactly one of role_id and role_id_file")
		}
		if a.SecretID.Empty() == (a.SecretIDFile == "") {
			bad("approle needs exactly one of secret_id and secret_id_file")
		}
		c.AppRole = &a
	}
	if c.Kubernetes != nil {
		methods++
		k := *c.Kubernetes
		k.Mount = strings.Trim(k.Mount, "/")
		if k.Mount == "" {
			k.Mount = DefaultKubeMount
		}
		if k.Role == "" {
			bad("kubernetes needs the Vault role to log in as")
		}
		if k.JWTFile == "" {
			k.JWTFile = DefaultJWTFile
		}
		c.Kubernetes = &k
	}
	switch {
	case methods == 0:
		bad("no way to log in: give a token, a token_file, approle or kubernetes")
	case methods > 1:
		bad("more than one way to log in: give only one of token or token_file, approle and kubernetes")
	}
	return c, errors.Join(errs...)
}
