package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"mongobot/approvals"
	"mongobot/commands"
	"mongobot/secret"
)

// Config is the whole file.
type Config struct {
	SlashCommand string      `yaml:"slash_command"`
	Connectors   []Connector `yaml:"-"` // decoded through fileYAML, which keeps the URI as text only briefly
	Approvals    Approvals   `yaml:"approvals"`
	Access       Group       `yaml:"access"`
	Schedules    Schedules   `yaml:"schedules"`
	// Deliveries say where rotated passwords go so that applications read them from there.
	Deliveries []Delivery `yaml:"deliveries"`
	// RevealTTL is how long a new password waits for its owner (default 1h).
	RevealTTL Duration `yaml:"reveal_ttl"`
	// Retention is how long the journal keeps what it no longer needs (default 400 days).
	Retention Retention `yaml:"retention"`
	// ConnectorIdleTimeout is how long a connector keeps its MongoDB connections after its last
	// operation (default 10m): a bot with many connectors holds connections, heartbeats and
	// goroutines only for those in use.
	ConnectorIdleTimeout Duration `yaml:"connector_idle_timeout"`
	Log                  Log      `yaml:"log"`
	HTTP                 HTTP     `yaml:"http"`
	// Store is where the journal lives: the data folder's bbolt file, or etcd (store.go).
	Store Store `yaml:"-"`
}

// Retention says how long finished journal entries and requests are kept. Whatever their age,
// the bot keeps those it still needs (an action executing, a temporary grant not yet ended,
// a password not yet delivered, the lock of a user it still holds locked).
type Retention struct {
	// Keep is the age past which a finished record is deleted (default 400d): over a year,
	// so a yearly audit finds the whole year. Export (bot journal export --since) before
	// anything older is needed.
	Keep Duration `yaml:"keep"`
}

// DefaultRetention is Retention.Keep when the config does not set it.
const DefaultRetention = 400 * 24 * time.Hour

// DefaultConnectorIdleTimeout is ConnectorIdleTimeout when the config does not set it.
const DefaultConnectorIdleTimeout = 10 * time.Minute

// HTTP is the optional listener for /healthz, /readyz and /metrics.
type HTTP struct {
	// Listen is off when empty; a bare port (":9090") listens on loopback only.
	Listen string `yaml:"listen"`
}

// Connector is the credential fields of one MongoDB deployment.
type Connector struct {
	Name string `yaml:"name"`
	// Type is "mongodb" (the default: users managed over the wire) or "atlas" (through the
	// Atlas Administration API; the connection string is then optional and only used to
	// verify changes on the cluster).
	Type             string        `yaml:"type"`
	ConnectionString secret.String `yaml:"-"`
	// Atlas: the project, the cluster(s) created users may reach, the API's base URL (Atlas
	// for Government has its own), and one credential: a service account (client_id,
	// client_secret) or an API key (public_key, private_key).
	ProjectID    string        `yaml:"project_id"`
	Cluster      string        `yaml:"cluster"`
	Clusters     []string      `yaml:"clusters"`
	BaseURL      string        `yaml:"base_url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret secret.String `yaml:"-"`
	PublicKey    string        `yaml:"public_key"`
	PrivateKey   secret.String `yaml:"-"`
	TLSCAFile    string        `yaml:"tls_ca_file"`
	TLSCAPEM     string        `yaml:"tls_ca_pem"`
	// TLSCertificateKeyFile or TLSCertificateKeyPEM (not both) is the bot's own client
	// certificate and its private key, PEM, in one: with no user in the connection string the
	// bot logs in with it (MONGODB-X509).
	TLSCertificateKeyFile string        `yaml:"tls_certificate_key_file"`
	TLSCertificateKeyPEM  secret.String `yaml:"-"`
	// PasswordLength is the length of generated passwords (default 32).
	PasswordLength int `yaml:"password_length"`
	// VerifyLogin, default true, logs in with each new password.
	VerifyLogin *bool `yaml:"verify_login"`
	// Concurrency is how many approved actions run on this connector at once (default 4,
	// at most 64); Queue how many more may wait for a turn (default 100, at most 10,000).
	// Beyond the queue an approved request fails at once, saying the connector is busy.
	Concurrency int `yaml:"concurrency"`
	Queue       int `yaml:"queue"`
	// JIT, when set, lets people ask for just-in-time access of their own on this connector.
	JIT *JIT `yaml:"jit"`
}

// JIT is one connector's just-in-time access policy (approvals.JIT says what each field does).
type JIT struct {
	Roles        []string  `yaml:"roles"`
	MaxFor       Duration  `yaml:"max_for"`
	UserTemplate string    `yaml:"user_template"`
	AutoApprove  []JITAuto `yaml:"auto_approve"`
}

// JITAuto is one auto-approval rule: these roles, for these people.
type JITAuto struct {
	Roles      []string `yaml:"roles"`
	Users      []string `yaml:"users"`
	Usergroups []string `yaml:"usergroups"`
}

// Group is a list of users and user groups.
type Group struct {
	Users      []string `yaml:"users"`
	Usergroups []string `yaml:"usergroups"`
}

// Approvals is the approvals section.
type Approvals struct {
	Channel           string   `yaml:"channel"`
	Approvers         Group    `yaml:"approvers"`
	Quorum            int      `yaml:"quorum"`
	ExpireAfter       Duration `yaml:"expire_after"`
	AllowSelfApproval bool     `yaml:"allow_self_approval"`
	// RequireReason refuses requests without --reason (default false); rules may override it.
	RequireReason bool     `yaml:"require_reason"`
	Require       []string `yaml:"require"`
	Rules         []Rule   `yaml:"rules"`
	// MaxOpenPerRequester bounds the requests one person has open at once (default 10).
	MaxOpenPerRequester int `yaml:"max_open_per_requester"`
}

// Rule overrides the approvals policy for some actions and connectors.
type Rule struct {
	Actions    []string `yaml:"actions"`
	Connectors []string `yaml:"connectors"`
	// Risk "high" limits the rule to requests the bot judges high-risk; empty: all requests.
	Risk              string   `yaml:"risk"`
	Approvers         *Group   `yaml:"approvers"`
	Quorum            int      `yaml:"quorum"`
	ExpireAfter       Duration `yaml:"expire_after"`
	AllowSelfApproval *bool    `yaml:"allow_self_approval"`
	Require           *bool    `yaml:"require"`
	RequireReason     *bool    `yaml:"require_reason"`
}

// Schedules configures scheduled rotations.
type Schedules struct {
	// Channel receives every run's result; default the approvals channel.
	Channel string `yaml:"channel"`
	// MissedRunWindow: a run missed while the bot was down runs at start-up if it is at most
	// this late, and is skipped and reported otherwise (default 1h).
	MissedRunWindow Duration `yaml:"missed_run_window"`
	// Retries after a failed run (default 2), RetryDelay apart (default 5m).
	Retries    *int     `yaml:"retries"`
	RetryDelay Duration `yaml:"retry_delay"`
	// ConcurrencyPerConnector is how many scheduled runs touch one connector at once (default 1).
	ConcurrencyPerConnector int `yaml:"concurrency_per_connector"`
}

// Log configures the bot's logs.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Duration reads "90s", "30m", "4h", "2d".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSpan(strings.TrimSpace(n.Value))
	if errors.Is(err, commands.ErrSpanTooLong) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%v (or 90s)", err)
	}
	*d = Duration(v)
	return nil
}

// connectorYAML carries the connection string as text for decoding only.
type connectorYAML struct {
	Connector            `yaml:",inline"`
	ConnectionString     string `yaml:"connection_string"`
	TLSCertificateKeyPEM string `yaml:"tls_certificate_key_pem"`
	ClientSecret         string `yaml:"client_secret"`
	PrivateKey           string `yaml:"private_key"`
}

type fileYAML struct {
	Config     `yaml:",inline"`
	Connectors []connectorYAML `yaml:"connectors"`
	Store      storeYAML       `yaml:"store"`
}

// atlasProject is an Atlas project id.
var atlasProject = regexp.MustCompile(`^[a-f0-9]{24}$`)

// Actions are the action names the policy may name.
var Actions = append(append([]string{}, commands.Actions...), "schedule", "unschedule", "rollback")

// Load reads and checks the file at path; env looks up ${VAR} (os.LookupEnv when nil).
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist (set BOT_CONFIG to its path)", path)
		}
		return nil, fmt.Errorf("config file %s: %v", path, err)
	}
	c, err := Parse(raw, env)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse reads and checks a config from its YAML text.
func Parse(raw []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var expanded []secret.String
	src := newSource()
	if err := expand(&root, "", func(k string) (string, bool) {
		v, ok := env(k)
		if ok && len(v) >= 4 {
			expanded = append(expanded, secret.New(v))
		}
		return v, ok
	}, src); err != nil {
		return nil, err
	}
	var f fileYAML
	if len(root.Content) > 0 {
		// The tree is checked against the types before decoding, for messages that name the
		// path and line of a mistake; the decoder's own name Go types, and quote values.
		var errs []string
		src.walk(root.Content[0], reflect.TypeFor[fileYAML](), "", &errs)
		if len(errs) > 0 {
			// Checks of meaning are left for when the file has the right shape: their messages
			// would follow from these ("approvers lists nobody" for a misspelt approvers).
			return nil, mistakes(byLine(append(errs, src.badValues...)), expanded)
		}
		if err := root.Decode(&f); err != nil {
			// Not expected after the walk; a value in the wrong place is quoted by the YAML
			// error, and it may be a secret.
			return nil, fmt.Errorf("%s", secret.Scrub(strings.TrimPrefix(err.Error(), "yaml: "), expanded...))
		}
	}
	c := f.Config
	c.Connectors = nil
	for _, cy := range f.Connectors {
		cn := cy.Connector
		cn.ConnectionString = secret.New(cy.ConnectionString)
		cn.TLSCertificateKeyPEM = secret.New(cy.TLSCertificateKeyPEM)
		cn.ClientSecret, cn.PrivateKey = secret.New(cy.ClientSecret), secret.New(cy.PrivateKey)
		if cn.Cluster != "" {
			cn.Clusters = append([]string{cn.Cluster}, cn.Clusters...)
		}
		c.Connectors = append(c.Connectors, cn)
	}
	c.Store = f.Store.decode()
	if c.SlashCommand == "" {
		c.SlashCommand = "/mongo"
	}
	if c.RevealTTL == 0 {
		c.RevealTTL = Duration(time.Hour)
	}
	if c.Retention.Keep == 0 {
		c.Retention.Keep = Duration(DefaultRetention)
	}
	if c.ConnectorIdleTimeout == 0 {
		c.ConnectorIdleTimeout = Duration(DefaultConnectorIdleTimeout)
	}
	if errs := append(src.badValues, c.check(src)...); len(errs) > 0 {
		// Messages name values on purpose; none of them may be one from the environment.
		// A field whose variable is unset is empty too: saying so twice would be noise.
		errs = slices.DeleteFunc(errs, func(m string) bool {
			return slices.ContainsFunc(src.unset, func(p string) bool { return strings.HasPrefix(m, p+" (line") && strings.HasSuffix(m, "is empty") })
		})
		return &c, mistakes(byLine(errs), expanded)
	}
	return &c, nil
}

// Mistakes are every mistake found in a config, one sentence each, in the order of the file:
// bot check counts and prints them one by one.
type Mistakes []string

func (m Mistakes) Error() string { return strings.Join(m, "; ") }

// mistakes scrubs each message of the values that came from the environment.
func mistakes(msgs []string, expanded []secret.String) Mistakes {
	out := make(Mistakes, len(msgs))
	for i, m := range msgs {
		out[i] = secret.Scrub(m, expanded...)
	}
	return out
}

// expand replaces ${VAR} in every scalar with the variable's value; a missing variable is an
// error naming the field. Values are never quoted back into YAML text, so a value with YAML
// syntax in it (a password with ": " or "#") stays one string.
// It records in src the paths of the values it changed.
func expand(n *yaml.Node, path string, env func(string) (string, bool), src *source) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			if err := expand(c, p, env, src); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			if err := expand(n.Content[i+1], p, env, src); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing, used []string
		raw := n.Value
		n.Value = varRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := varRef.FindStringSubmatch(ref)[1]
			v, ok := env(name)
			if !ok {
				missing = append(missing, name)
			}
			if !slices.Contains(used, name) {
				used = append(used, name)
			}
			return v
		})
		substituted := len(used) > 0
		if substituted {
			src.vars[path], src.values[path], src.raw[path] = used, n.Value, raw
		}
		if len(missing) > 0 {
			// One mistake among the others, not a stop: the rest of the file is still checked.
			src.badValues = append(src.badValues, fmt.Sprintf("%s (line %d): the environment variable %s is not set", path, n.Line, strings.Join(missing, ", ")))
			src.unset = append(src.unset, path)
		}
		if substituted {
			// An expanded value is a string, whatever it holds ("#", ": ", quotes), except a
			// plain number or boolean, which may fill a number or boolean field.
			n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
			if _, err := strconv.Atoi(n.Value); err == nil {
				n.Tag, n.Style = "!!int", 0
			} else if n.Value == "true" || n.Value == "false" {
				n.Tag, n.Style = "!!bool", 0
			}
		}
	}
	return nil
}

// check finds the mistakes that a well-typed config can still hold; src gives messages the
// line of the field they start with.
func (c *Config) check(src *source) []string {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, src.annotate(fmt.Sprintf(format, a...))) }
	if !strings.HasPrefix(c.SlashCommand, "/") || strings.ContainsAny(c.SlashCommand, " \t") {
		add("slash_command: %q must be one word starting with /", c.SlashCommand)
	}
	if len(c.Connectors) == 0 {
		add("connectors: at least one connector is needed")
	}
	c.Store.check(add)
	if e := c.Store.Etcd; e != nil {
		credential(src.expanded, "store.etcd.password", e.Password, false, add)
	}
	var names []string
	for i, cn := range c.Connectors {
		f := fmt.Sprintf("connectors[%d]", i)
		switch {
		case strings.TrimSpace(cn.Name) == "":
			add("%s.name is empty", f)
		case strings.ContainsAny(cn.Name, " \t\"'"):
			add("%s.name %q must be one word: it is typed in commands", f, cn.Name)
		case slices.Contains(names, cn.Name):
			add("%s.name %q is used twice", f, cn.Name)
		}
		names = append(names, cn.Name)
		switch cn.Type {
		case "", "mongodb":
			if cn.ConnectionString.Empty() {
				add("%s.connection_string is empty", f)
			}
			if cn.ProjectID != "" || cn.ClientID != "" || cn.PublicKey != "" || len(cn.Clusters) > 0 {
				add("%s: project_id, cluster, client_id and public_key are for type: atlas", f)
			}
		case "atlas":
			if !atlasProject.MatchString(cn.ProjectID) {
				add("%s.project_id %q is not an Atlas project id (24 hexadecimal digits, in the project's settings)", f, cn.ProjectID)
			}
			service := cn.ClientID != "" || !cn.ClientSecret.Empty()
			key := cn.PublicKey != "" || !cn.PrivateKey.Empty()
			switch {
			case service && key:
				add("%s: give client_id/client_secret (a service account) or public_key/private_key (an API key), not both", f)
			case service && (cn.ClientID == "" || cn.ClientSecret.Empty()):
				add("%s: a service account needs client_id and client_secret", f)
			case key && (cn.PublicKey == "" || cn.PrivateKey.Empty()):
				add("%s: an API key needs public_key and private_key", f)
			case !service && !key:
				add("%s: type atlas needs a credential: client_id and client_secret (a service account), or public_key and private_key (an API key)", f)
			}
			if len(cn.Clusters) == 0 {
				add("%s: type atlas needs cluster (or clusters): the users it creates are scoped to them, never to the whole project", f)
			}
		default:
			add("%s.type %q is not mongodb or atlas", f, cn.Type)
		}
		if cn.TLSCAFile != "" && cn.TLSCAPEM != "" {
			add("%s: give tls_ca_file or tls_ca_pem, not both", f)
		}
		if cn.TLSCertificateKeyFile != "" && !cn.TLSCertificateKeyPEM.Empty() {
			add("%s: give tls_certificate_key_file or tls_certificate_key_pem, not both", f)
		}
		if pw := uriPassword(src.written(f+".connection_string", cn.ConnectionString.Reveal())); pw != "" && !varRef.MatchString(pw) {
			add("%s.connection_string holds a password written in the file: give the password (or the whole string) as ${VAR} so the file holds no credential", f)
		}
		credential(src.expanded, f+".tls_certificate_key_pem", cn.TLSCertificateKeyPEM, true, add)
		credential(src.expanded, f+".client_secret", cn.ClientSecret, false, add)
		credential(src.expanded, f+".private_key", cn.PrivateKey, false, add)
		if cn.PasswordLength != 0 && (cn.PasswordLength < 16 || cn.PasswordLength > 256) {
			add("%s.password_length must be between 16 and 256", f)
		}
		if cn.Concurrency < 0 || cn.Concurrency > 64 {
			add("%s.concurrency must be between 1 and 64", f)
		}
		if cn.Queue < 0 || cn.Queue > 10000 {
			add("%s.queue must be between 1 and 10000", f)
		}
	}
	addID := func(m string) { add("%s", m) }
	if c.Approvals.Channel == "" {
		add("approvals.channel is empty: approval requests need a channel (its id, like C0123456789)")
	} else if m := src.slackID("approvals.channel", c.Approvals.Channel, channelID); m != "" {
		add("%s", m)
	}
	src.slackIDs("approvals.approvers", c.Approvals.Approvers, addID)
	for i, r := range c.Approvals.Rules {
		if r.Approvers != nil {
			src.slackIDs(fmt.Sprintf("approvals.rules[%d].approvers", i), *r.Approvers, addID)
		}
	}
	src.slackIDs("access", c.Access, addID)
	if ch := c.Schedules.Channel; ch != "" {
		if m := src.slackID("schedules.channel", ch, channelID); m != "" {
			add("%s", m)
		}
	}
	// A negative quorum is the policy's to say (Validate), once.
	if err := c.Policy().Validate(Actions, names); err != nil {
		ps := []error{err}
		if m, ok := err.(interface{ Unwrap() []error }); ok {
			ps = m.Unwrap() // one by one, for each to get its line
		}
		for _, p := range ps {
			add("%v", p)
		}
	}
	c.checkDeliveries(src, names, add)
	if r := c.Schedules.Retries; r != nil && (*r < 0 || *r > 10) {
		add("schedules.retries must be between 0 and 10")
	}
	if c.Schedules.ConcurrencyPerConnector < 0 {
		add("schedules.concurrency_per_connector must be at least 1")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		add("log.level %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		add("log.format %q is not text or json", c.Log.Format)
	}
	return errs
}

// credential refuses a credential written into the file itself, which ends up in backups,
// diffs and screenshares: it must come from ${VAR}, or from a file when the field has a
// _file form.
func credential(fromEnv func(string) bool, path string, v secret.String, fileForm bool, add func(string, ...any)) {
	if v.Empty() || fromEnv(path) {
		return
	}
	or := ""
	if fileForm {
		or = " (or use the _file form)"
	}
	add("%s is written in the file: give it as ${VAR}%s so the file holds no credential", path, or)
}

// uriPassword is the password in a connection string's text, "" when it has none (no user,
// or a user alone, as with X.509). The user information ends at the last @ before the
// first /, as the driver reads it.
func uriPassword(uri string) string {
	if _, rest, ok := strings.Cut(uri, "://"); ok {
		uri = rest
	}
	hosts, _, _ := strings.Cut(uri, "/")
	at := strings.LastIndex(hosts, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(hosts[:at], ":")
	return pw
}

// Policy is the approvals policy the config describes.
func (c *Config) Policy() approvals.Policy {
	a := c.Approvals
	p := approvals.Policy{
		Access:            approvals.Group(c.Access),
		Approvers:         approvals.Group(a.Approvers),
		Quorum:            a.Quorum,
		ExpireAfter:       time.Duration(a.ExpireAfter),
		AllowSelfApproval: a.AllowSelfApproval,
		RequireReason:     a.RequireReason,
		Require:           a.Require,
		MaxOpen:           a.MaxOpenPerRequester,
	}
	for _, r := range a.Rules {
		pr := approvals.Rule{Actions: r.Actions, Connectors: r.Connectors, Risk: approvals.Risk(r.Risk), Quorum: r.Quorum,
			ExpireAfter: time.Duration(r.ExpireAfter), AllowSelfApproval: r.AllowSelfApproval, Require: r.Require, RequireReason: r.RequireReason}
		if r.Approvers != nil {
			g := approvals.Group(*r.Approvers)
			pr.Approvers = &g
		}
		p.Rules = append(p.Rules, pr)
	}
	for _, cn := range c.Connectors {
		if cn.JIT == nil {
			continue
		}
		j := approvals.JIT{Roles: cn.JIT.Roles, MaxFor: time.Duration(cn.JIT.MaxFor), UserTemplate: cn.JIT.UserTemplate}
		for _, a := range cn.JIT.AutoApprove {
			j.AutoApprove = append(j.AutoApprove, approvals.JITAuto{Roles: a.Roles, Who: approvals.Group{Users: a.Users, Usergroups: a.Usergroups}})
		}
		if p.JIT == nil {
			p.JIT = map[string]approvals.JIT{}
		}
		p.JIT[cn.Name] = j
	}
	return p
}

// Usergroups are every user group the config names, for membership lookups.
func (c *Config) Usergroups() []string {
	var out []string
	add := func(gs []string) {
		for _, g := range gs {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	add(c.Access.Usergroups)
	add(c.Approvals.Approvers.Usergroups)
	for _, r := range c.Approvals.Rules {
		if r.Approvers != nil {
			add(r.Approvers.Usergroups)
		}
	}
	for _, cn := range c.Connectors {
		if cn.JIT != nil {
			for _, a := range cn.JIT.AutoApprove {
				add(a.Usergroups)
			}
		}
	}
	return out
}
