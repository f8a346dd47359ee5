package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
)

const good = `
slash_command: /db
connectors:
  - name: prod-mongo
    connection_string: ${PROD_MONGO_URI}
    tls_ca_file: /etc/mongo/ca.pem
    tls_certificate_key_pem: ${BOT_CERT}
  - name: staging
    connection_string: "mongodb://admin:${STAGING_PW}@127.0.0.1:27017/?authSource=admin"
    verify_login: false
approvals:
  channel: C0APPROVALS
  approvers:
    users: [U0ALICE, U0BOB]
    usergroups: [S0DBAS]
  quorum: ${QUORUM}
  expire_after: 2h
  allow_self_approval: false
  require: [rotate-password, grant-role, revoke-role, create-readonly-user, drop-user, lock-user, unlock-user, schedule]
  rules:
    - actions: [drop-user]
      connectors: [prod-mongo]
      quorum: 2
    - connectors: [staging]
      approvers: {usergroups: [S0STAGING]}
      expire_after: 1d
access:
  users: []
  usergroups: [S0ENG]
schedules:
  channel: C0NOTIFY
  missed_run_window: 30m
  retries: 0
  retry_delay: 10m
  concurrency_per_connector: 2
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var vars = map[string]string{
	"PROD_MONGO_URI": "mongodb://bot:p#ss: word@db1.example.com:27017/?tls=true",
	"STAGING_PW":     "s3cr3t",
	"QUORUM":         "1",
	"BOT_CERT":       "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if c.SlashCommand != "/db" || len(c.Connectors) != 2 || c.Approvals.Quorum != 1 || time.Duration(c.Approvals.ExpireAfter) != 2*time.Hour {
		t.Fatalf("%+v", c)
	}
	if got := c.Connectors[0].ConnectionString.Reveal(); got != vars["PROD_MONGO_URI"] {
		t.Fatalf("connection string with YAML syntax in it: %q", got)
	}
	if got := c.Connectors[1].ConnectionString.Reveal(); !strings.Contains(got, "admin:s3cr3t@") {
		t.Fatalf("expansion inside a string: %q", got)
	}
	if c.Schedules.Channel != "C0NOTIFY" || time.Duration(c.Schedules.MissedRunWindow) != 30*time.Minute || c.Schedules.Retries == nil || *c.Schedules.Retries != 0 || c.Schedules.ConcurrencyPerConnector != 2 {
		t.Fatalf("schedules: %+v", c.Schedules)
	}
	if c.Connectors[0].TLSCertificateKeyPEM.Reveal() != vars["BOT_CERT"] || strings.Contains(fmt.Sprintf("%+v", c.Connectors[0]), "MIIB") {
		t.Fatal("tls_certificate_key_pem was not read as given, or prints in the clear")
	}
	if c.Connectors[1].VerifyLogin == nil || *c.Connectors[1].VerifyLogin {
		t.Fatal("verify_login: false was lost")
	}
	p := c.Policy()
	if e := p.For("drop-user", "prod-mongo"); e.Quorum != 2 {
		t.Errorf("rule: %+v", e)
	}
	if e := p.For("grant-role", "staging"); e.ExpireAfter != 24*time.Hour || e.Approvers.Usergroups[0] != "S0STAGING" {
		t.Errorf("rule: %+v", e)
	}
	if g := c.Usergroups(); strings.Join(g, ",") != "S0ENG,S0DBAS,S0STAGING" {
		t.Errorf("usergroups: %v", g)
	}
	if s := strings.Join([]string{c.Connectors[0].ConnectionString.String()}, ""); strings.Contains(s, "p#ss") {
		t.Fatal("the connection string prints")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("connectors: [{name: a, connection_string: 'mongodb://x'}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.SlashCommand != "/mongo" || time.Duration(c.RevealTTL) != time.Hour || time.Duration(c.Retention.Keep) != DefaultRetention ||
		time.Duration(c.ConnectorIdleTimeout) != DefaultConnectorIdleTimeout {
		t.Fatalf("%+v", c)
	}
	if e := c.Policy().For("drop-user", "a"); !e.Required || e.Quorum != 1 || e.ExpireAfter != time.Hour {
		t.Fatalf("default policy: %+v", e)
	}
}

func TestParseBad(t *testing.T) {
	base := "connectors: [{name: a, connection_string: 'mongodb://x'}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n"
	tests := []struct{ yaml, says string }{
		{"connectors: [", "not valid YAML"},
		{base + "slash_command: mongo\n", `slash_command (line 3): "mongo" must be one word starting with /`},
		{"approvals: {channel: C1, approvers: {users: [U1]}}\n", "connectors: at least one connector"},
		{"connectors: [{name: a, connection_string: '${NOPE}'}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", "connectors[0].connection_string (line 1): the environment variable NOPE is not set"},
		{"connectors: [{name: a, connection_string: x}, {name: a, connection_string: y}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", `connectors[1].name (line 1) "a" is used twice`},
		{"connectors: [{name: a}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", "connectors[0].connection_string is empty"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {approvers: {users: [U1]}}\n", "approvals.channel is empty"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1}\n", "approvers lists nobody"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, quorum: 2}\n", "quorum is 2 but only 1 approver"},
		{base + "approvals_typo: 1\n", "approvals_typo (line 3): unknown key; the keys here are access, approvals, connector_idle_timeout, connectors, deliveries, http, log, retention, reveal_ttl, schedules, slash_command"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, expire_after: soon}\n", `"soon" is not a duration`},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, require: [drop-table]}\n", `"drop-table" is not an action`},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, rules: [{connectors: [b]}]}\n", `"b" is not a configured connector`},
		{base + "log: {level: loud}\n", `log.level (line 3) "loud"`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Parse(%q) = %v, want %q", tt.yaml, err, tt.says)
		}
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "bot.yaml"), nil); err == nil || !strings.Contains(err.Error(), "does not exist (set BOT_CONFIG") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "bot.yaml")
	os.WriteFile(p, []byte("connectors: []\n"), 0o600)
	if _, err := Load(p, env(nil)); err == nil || !strings.HasPrefix(err.Error(), "config file "+p+": ") {
		t.Fatalf("error names the file: %v", err)
	}
}

func TestErrorsDoNotQuoteSecrets(t *testing.T) {
	_, err := Parse([]byte("connectors: [{name: a, connection_string: x, password_length: ${PW}}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n"),
		env(map[string]string{"PW": "hunter2-secret"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error: %v", err)
	}
}

// TestMistakesNamePathAndLine: a mistake in the file is reported as terraform or kubectl
// would, by its YAML path and line, in words, with the key that was probably meant.
func TestMistakesNamePathAndLine(t *testing.T) {
	const head = "connectors:\n  - name: a\n    connection_string: x\napprovals:\n  channel: C1\n  approvers: {users: [U1]}\n"
	tests := []struct{ name, yaml, says string }{
		{"misspelt key", head + "  quorom: 1\n", `approvals.quorom (line 7): unknown key; did you mean "quorum"?`},
		{"swapped letters", head + "  approvers2: {}\naccess:\n  usres: [U1]\n", `access.usres (line 9): unknown key; did you mean "users"?`},
		{"capitals", head + "  Quorum: 1\n", `approvals.Quorum (line 7): unknown key; did you mean "quorum"?`},
		{"nothing close", head + "  colour: blue\n", "approvals.colour (line 7): unknown key; the keys here are allow_self_approval, approvers, channel, expire_after, max_open_per_requester, quorum, require, require_reason, rules"},
		{"in a list item", "connectors:\n  - name: a\n    connection_strng: x\n", `connectors[0].connection_strng (line 3): unknown key; did you mean "connection_string"?`},
		{"in a rule", head + "  rules:\n    - actions: [drop-user]\n      quorun: 2\n", `approvals.rules[0].quorun (line 9): unknown key; did you mean "quorum"?`},
		{"text for a number", head + "  quorum: two\n", `approvals.quorum (line 7): expected a whole number, got "two"`},
		{"text for a boolean", head + "  allow_self_approval: sometimes\n", `approvals.allow_self_approval (line 7): expected true or false, got "sometimes"`},
		{"a word for a list", head + "  require: drop-user\n", `approvals.require (line 7): expected a list, got "drop-user" (write [drop-user] for a list of one)`},
		{"a list for text", head + "slash_command: [a]\n", "slash_command (line 7): expected text, got a list"},
		{"a word for a section", head + "access: everyone\n", `access (line 7): expected a mapping with the keys users, usergroups, got "everyone"`},
		{"a mapping for a number", "connectors:\n  - name: a\n    password_length: {n: 1}\n", "connectors[0].password_length (line 3): expected a whole number, got a mapping"},
		{"not a mapping at all", "- a\n- b\n", "the file (line 1): expected a mapping"},
		{"a key twice", head + "  quorum: 1\n  quorum: 2\n", "approvals.quorum (line 8): given twice (first at line 7)"},
		{"every mistake at once", head + "  quorom: 1\nlog: {levle: info}\n", `approvals.quorom (line 7): unknown key; did you mean "quorum"?; log.levle (line 8): unknown key; did you mean "level"?`},
		{"a check names the line too", head + "log:\n  format: xml\n", `log.format (line 8) "xml" is not text or json`},
		{"a policy check names the line too", head + "  rules:\n    - {actions: [drop-user], quorum: 2}\n", "approvals.rules[0] (line 8): quorum is 2 but only 1 approver(s) are listed, so drop-user on a could never be approved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Parse:\n%s\n= %v\nwant %q", tt.yaml, err, tt.says)
			}
			if err != nil && strings.Contains(err.Error(), "config.") {
				t.Errorf("a Go type name: %v", err)
			}
		})
	}
}

// TestErrorsNeverQuoteExpandedValues: a value that came from ${VAR} may be a secret, so no
// message quotes it, whichever check finds it wrong, short or long; messages name the
// variable instead.
func TestErrorsNeverQuoteExpandedValues(t *testing.T) {
	const secretValue = "Zq9-hunter2-Zq9"
	const head = "connectors:\n  - name: a\n    connection_string: x\napprovals:\n  channel: C1\n  approvers: {users: [U1]}\n"
	tests := []struct{ name, yaml, says string }{
		{"number", head + "  quorum: ${S}\n", "approvals.quorum (line 7): expected a whole number, got the value of ${S}"},
		{"boolean", head + "  allow_self_approval: ${S}\n", "got the value of ${S}"},
		{"list", head + "  require: ${S}\n", "approvals.require (line 7): expected a list, got the value of ${S}"},
		{"duration", head + "  expire_after: ${S}\n", "approvals.expire_after (line 7): the value of ${S} is not a duration"},
		{"duration in text", head + "  expire_after: \"1${S}\"\n", "the value of ${S} is not a duration"},
		{"mapping", head + "access: ${S}\n", "access (line 7): expected a mapping with the keys users, usergroups, got the value of ${S}"},
		{"slash command", head + "slash_command: ${S}\n", "slash_command (line 7): the value of ${S} must be one word"},
		{"log level", head + "log: {level: \"${S}\"}\n", "log.level (line 7) the value of ${S} is not debug"},
		{"connector name", "connectors:\n  - name: ${S}\n    connection_string: x\n  - name: ${S}\n    connection_string: y\napprovals: {channel: C1, approvers: {users: [U1]}}\n", "the value of ${S} is used twice"},
		{"action", head + "  require: [\"${S}\"]\n", "approvals.require (line 7): the value of ${S} is not an action"},
	}
	for _, v := range []string{secretValue, "ab"} {
		for _, tt := range tests {
			t.Run(tt.name+"/"+v, func(t *testing.T) {
				_, err := Parse([]byte(tt.yaml), env(map[string]string{"S": v}))
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), `"`+v) || strings.Contains(err.Error(), secretValue) || strings.Contains(err.Error(), "hunter2") {
					t.Errorf("quotes the value: %v", err)
				}
				if !strings.Contains(err.Error(), tt.says) {
					t.Errorf("= %v\nwant %q", err, tt.says)
				}
			})
		}
	}
}

// TestNoApproversSaidOnce: a config with no approvers strands every action, and says so in
// one sentence naming them, not once per action.
func TestNoApproversSaidOnce(t *testing.T) {
	_, err := Parse([]byte("connectors: [{name: a, connection_string: x}]\napprovals:\n  channel: C1\n"), env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	want := "approvals (line 2): approvers lists nobody, so rotate-password, grant-role, revoke-role, create-readonly-user, drop-user, lock-user, unlock-user, schedule, unschedule on a could never be approved"
	if err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// TestSlackIDs: a name where Slack needs an id passes every other check and then nobody can
// ever approve, so every place that names a channel, a user or a user group takes ids only,
// and the message says what an id looks like and where Slack shows it.
func TestSlackIDs(t *testing.T) {
	const conn = "connectors: [{name: a, connection_string: x}]\n"
	tests := []struct{ name, yaml, says string }{
		{"channel by name", conn + "approvals:\n  channel: \"#approvals\"\n  approvers: {users: [U1]}\n",
			`approvals.channel (line 3): "#approvals" is not a Slack channel id: the bot needs the id, like C0123456789 (or G… for an older private channel), not a name; open the channel's details in Slack, the id is at the bottom`},
		{"channel in lower case", conn + "approvals: {channel: c0approvals, approvers: {users: [U1]}}\n",
			`approvals.channel (line 2): "c0approvals" is not a Slack channel id: the bot needs the id, like C0123456789 (or G… for an older private channel), in capital letters`},
		{"a user's id for a channel", conn + "approvals: {channel: U0ALICE, approvers: {users: [U1]}}\n", `approvals.channel (line 2): "U0ALICE" is not a Slack channel id`},
		{"user by name", conn + "approvals:\n  channel: C1\n  approvers:\n    users: [U1, alice]\n",
			`approvals.approvers.users[1] (line 5): "alice" is not a Slack user id: the bot needs the id, like U0123456789 (or W… in an Enterprise Grid org), not a name; open the person's profile in Slack, choose ⋮ (More), then "Copy member ID"`},
		{"user by handle", conn + "approvals:\n  channel: C1\n  approvers:\n    users:\n      - U1\n      - \"@bob\"\n",
			`approvals.approvers.users[1] (line 7): "@bob" is not a Slack user id: the bot needs the id, like U0123456789 (or W… in an Enterprise Grid org), not a name`},
		{"user group by handle", conn + "approvals:\n  channel: C1\n  approvers: {usergroups: [dbas]}\n",
			`approvals.approvers.usergroups[0] (line 4): "dbas" is not a Slack user group id: the bot needs the id, like S0123456789, not a name; Slack's usergroups.list API method gives each group's id, next to its handle`},
		{"rule approvers", conn + "approvals:\n  channel: C1\n  approvers: {users: [U1]}\n  rules:\n    - approvers: {users: [carol], usergroups: [S1]}\n",
			`approvals.rules[0].approvers.users[0] (line 6): "carol" is not a Slack user id`},
		{"rule user groups", conn + "approvals:\n  channel: C1\n  approvers: {users: [U1]}\n  rules:\n    - approvers: {users: [U2], usergroups: [\"@dbas\"]}\n",
			`approvals.rules[0].approvers.usergroups[0] (line 6): "@dbas" is not a Slack user group id`},
		{"access users", conn + "approvals: {channel: C1, approvers: {users: [U1]}}\naccess:\n  users: [dave]\n", `access.users[0] (line 4): "dave" is not a Slack user id`},
		{"access user groups", conn + "approvals: {channel: C1, approvers: {users: [U1]}}\naccess:\n  usergroups: [U1]\n", `access.usergroups[0] (line 4): "U1" is not a Slack user group id`},
		{"schedules channel", conn + "approvals: {channel: C1, approvers: {users: [U1]}}\nschedules:\n  channel: \"#ops\"\n", `schedules.channel (line 4): "#ops" is not a Slack channel id`},
		{"a channel's name without #", conn + "approvals: {channel: C1, approvers: {users: [U1]}}\nschedules:\n  channel: general\n",
			`schedules.channel (line 4): "general" is not a Slack channel id: the bot needs the id, like C0123456789 (or G… for an older private channel), not a name`},
		{"empty user", conn + "approvals: {channel: C1, approvers: {users: [\"\"]}}\n", "approvals.approvers.users[0] (line 2) is empty: give a Slack user id"},
		{"from the environment", conn + "approvals: {channel: C1, approvers: {users: [\"${APPROVER}\"]}}\n", "approvals.approvers.users[0] (line 2): the value of ${APPROVER} is not a Slack user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(map[string]string{"APPROVER": "alice"}))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Parse:\n%s\n= %v\nwant %q", tt.yaml, err, tt.says)
			}
		})
	}
	// The shapes in use: the README's, the tests', the console demo's, and Enterprise Grid users.
	ok := conn + "approvals:\n  channel: G0PRIVATE1\n  approvers: {users: [U0ALICE, W012A3CDE, U1], usergroups: [S0DBAS, S0614TZR7]}\naccess: {users: [U0BOB], usergroups: [S0ENG]}\nschedules: {channel: C0123456789}\n"
	if _, err := Parse([]byte(ok), env(nil)); err != nil {
		t.Errorf("good ids: %v", err)
	}
}

// TestDemoConfigLoads: the console demo's config (cmd/bot/demo.yaml) follows every check.
func TestDemoConfigLoads(t *testing.T) {
	if _, err := Load(filepath.Join("..", "cmd", "bot", "demo.yaml"), env(map[string]string{"DEMO_MONGO_URI": "mongodb://127.0.0.1:1/"})); err != nil {
		t.Fatal(err)
	}
}

// TestDurationBounds: a duration outside what makes sense for its field is refused with
// the field's range in a sentence, not as "not a duration".
func TestDurationBounds(t *testing.T) {
	const head = "connectors: [{name: a, connection_string: x}]\napprovals:\n  channel: C1\n  approvers: {users: [U1]}\n"
	tests := []struct{ name, yaml, says string }{
		{"zero expiry", head + "  expire_after: 0s\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not 0s"},
		{"zero days", head + "  expire_after: 0d\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not 0d"},
		{"negative", head + "  expire_after: -5m\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not -5m"},
		{"too short", head + "  expire_after: 30s\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not 30s"},
		{"too long", head + "  expire_after: 31d\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not 31d"},
		{"longer than any span", head + "  expire_after: 99999999999d\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not 99999999999d"},
		{"rule expiry", head + "  rules:\n    - expire_after: 0s\n", "approvals.rules[0].expire_after (line 6) must be at least 1m and at most 30d, not 0s"},
		{"reveal ttl", head + "reveal_ttl: 8d\n", "reveal_ttl (line 5) must be at least 1m and at most 7d, not 8d"},
		{"missed run window", head + "schedules: {missed_run_window: 10s}\n", "schedules.missed_run_window (line 5) must be at least 1m and at most 30d, not 10s"},
		{"retry delay", head + "schedules: {retry_delay: 2d}\n", "schedules.retry_delay (line 5) must be at least 10s and at most 1d, not 2d"},
		{"short retention", head + "retention: {keep: 29d}\n", "retention.keep (line 5) must be at least 30d and at most 3650d, not 29d"},
		{"long retention", head + "retention: {keep: 3651d}\n", "retention.keep (line 5) must be at least 30d and at most 3650d, not 3651d"},
		{"short idle", head + "connector_idle_timeout: 30s\n", "connector_idle_timeout (line 5) must be at least 1m and at most 1d, not 30s"},
		{"long idle", head + "connector_idle_timeout: 2d\n", "connector_idle_timeout (line 5) must be at least 1m and at most 1d, not 2d"},
		{"a year is not a wait", head + "reveal_ttl: 400d\n", "reveal_ttl (line 5) must be at least 1m and at most 7d, not 400d"},
		{"not a duration", head + "  expire_after: soon\n", `approvals.expire_after (line 5): "soon" is not a duration: write 30m, 4h or 2d`},
		{"from the environment", head + "  expire_after: ${TTL}\n", "approvals.expire_after (line 5) must be at least 1m and at most 30d, not the value of ${TTL}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(map[string]string{"TTL": "0s"}))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Parse:\n%s\n= %v\nwant %q", tt.yaml, err, tt.says)
			}
		})
	}
	// The ends of each range are in it.
	ok := head + "  expire_after: 30d\n  rules: [{expire_after: 1m}]\nreveal_ttl: 7d\nschedules: {missed_run_window: 1m, retry_delay: 10s}\nconnector_idle_timeout: 1m\n"
	if _, err := Parse([]byte(ok), env(nil)); err != nil {
		t.Errorf("bounds: %v", err)
	}
	for _, keep := range []string{"30d", "3650d"} {
		c, err := Parse([]byte(head+"retention: {keep: "+keep+"}\n"), env(nil))
		if err != nil || commands.FormatDuration(time.Duration(c.Retention.Keep)) != keep {
			t.Errorf("retention %s: %v, %v", keep, c, err)
		}
	}
}

// TestEveryDurationHasBounds: a new duration field gets a range of its own, chosen for it.
func TestEveryDurationHasBounds(t *testing.T) {
	var paths []string
	var visit func(t reflect.Type, path string)
	visit = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				path += "[]"
			}
			t = t.Elem()
		}
		if t == reflect.TypeFor[Duration]() {
			paths = append(paths, path)
			return
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for k, ft := range fieldsOf(t) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			visit(ft, p)
		}
	}
	visit(reflect.TypeFor[fileYAML](), "")
	if len(paths) < 5 {
		t.Fatalf("found only %v", paths)
	}
	for _, p := range paths {
		if _, ok := durationBounds[p]; !ok {
			t.Errorf("%s has no entry in durationBounds", p)
		}
	}
}

func TestFormatSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", 90 * time.Second: "1m30s", time.Minute: "1m",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 7 * 24 * time.Hour: "7d", 36 * time.Hour: "36h"} {
		if got := commands.FormatDuration(d); got != want {
			t.Errorf("commands.FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestRuleRisk: approvals.rules[].risk reaches the policy, and only "high" is taken.
func TestRuleRisk(t *testing.T) {
	const head = "connectors: [{name: prod, connection_string: x}]\napprovals:\n  channel: C1\n  approvers: {users: [U1, U2]}\n  rules:\n"
	c, err := Parse([]byte(head+"    - {risk: high, quorum: 2}\n    - {actions: [drop-user], quorum: 1}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy()
	tests := []struct {
		action string
		risk   approvals.Risk
		quorum int
	}{
		{"rotate-password", approvals.RiskNormal, 1},
		{"rotate-password", approvals.RiskHigh, 2},
		{"drop-user", approvals.RiskHigh, 1}, // the later rule, with no risk, applies to all
	}
	for _, tt := range tests {
		if e := p.ForRisk(tt.action, "prod", tt.risk); e.Quorum != tt.quorum {
			t.Errorf("ForRisk(%s, prod, %q).Quorum = %d, want %d", tt.action, tt.risk, e.Quorum, tt.quorum)
		}
	}
	if e := p.For("rotate-password", "prod"); e.Quorum != 1 {
		t.Errorf("For ignores high-risk rules: %+v", e)
	}
	for _, bad := range []struct{ yaml, says string }{
		{"    - {risk: medium}\n", `approvals.rules[0].risk (line 6): "medium" is not a risk a rule may name: the risks are high`},
		{"    - {risk: High}\n", `approvals.rules[0].risk (line 6): "High" is not a risk`},
		{"    - {risk: [high]}\n", "approvals.rules[0].risk (line 6): expected text, got a list"},
		{"    - {rsik: high}\n", `approvals.rules[0].rsik (line 6): unknown key; did you mean "risk"?`},
		{"    - {risk: high, quorum: 3}\n", "approvals.rules[0] (line 6): quorum is 3 but only 2 approver(s) are listed, so high-risk rotate-password"},
	} {
		if _, err := Parse([]byte(head+bad.yaml), env(nil)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.says)
		}
	}
}

// TestEveryMistakeAtOnce: a file with several mistakes gets them all in one go, in the order
// of the file, so that one start-up says everything to fix.
func TestEveryMistakeAtOnce(t *testing.T) {
	yaml := `connectors:
  - name: prod
    connection_string: x
approvals:
  channel: "#approvals"
  approvers: {users: [U1, "@bob"]}
  expire_after: 0s
  rules:
    - {risk: medium}
reveal_ttl: soon
`
	_, err := Parse([]byte(yaml), env(nil))
	want := []string{
		`approvals.channel (line 5): "#approvals" is not a Slack channel id`,
		`approvals.approvers.users[1] (line 6): "@bob" is not a Slack user id`,
		"approvals.expire_after (line 7) must be at least 1m and at most 30d, not 0s",
		`approvals.rules[0].risk (line 9): "medium" is not a risk`,
		`reveal_ttl (line 10): "soon" is not a duration`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	at := -1
	for _, w := range want {
		i := strings.Index(err.Error(), w)
		if i <= at {
			t.Errorf("%q missing or out of order in:\n%v", w, err)
		}
		at = i
	}
	// A wrong shape stops the checks of meaning, which would only echo it, but not the
	// reports of other wrong values.
	_, err = Parse([]byte("connectors: [{name: a, connection_string: x}]\napprovals:\n  channel: C1\n  approver: {users: [U1]}\n  expire_after: 0s\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), `approvals.approver (line 4): unknown key; did you mean "approvers"?; approvals.expire_after (line 5) must be at least 1m`) || strings.Contains(err.Error(), "lists nobody") {
		t.Errorf("shape mistakes: %v", err)
	}
}

// An unset ${VAR} is one mistake among the others, not a stop that hides them.
func TestUnsetVariableHidesNothing(t *testing.T) {
	_, err := Parse([]byte("connectors: [{name: a, connection_string: '${NOPE}'}]\napprovals: {channel: general, approvers: {users: [alice]}}\n"), env(nil))
	var ms Mistakes
	if !errors.As(err, &ms) || len(ms) != 3 || !strings.Contains(ms[0], "NOPE is not set") || strings.Contains(err.Error(), "is empty") {
		t.Fatalf("Parse = %v", err)
	}
}

func TestDeliveries(t *testing.T) {
	dir := t.TempDir()
	idFile := filepath.Join(dir, "role-id")
	if err := os.WriteFile(idFile, []byte("r"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `connectors: [{name: prod, connection_string: 'mongodb://x'}]
approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}
deliveries:
  - connector: prod
    strategy: alternating
    users: [orders_a, orders_b]
    reveal: owner
    targets:
      - vault_kv:
          address: https://vault.example:8200
          path: apps/orders
          timeout: 20s
          auth:
            approle: {role_id_file: ` + idFile + `, secret_id: "${SECRET_ID}"}
      - kubernetes_secret: {namespace: orders, name: orders-mongo, kubeconfig: ` + idFile + `}
      - exec: {command: [/usr/local/bin/reload-orders, --now], timeout: 1m, env: {REGION: eu}}
  - connector: prod
    user: reports
    db: reporting
    targets:
      - vault_kv: {address: http://127.0.0.1:8200, path: apps/reports, auth: {token: "${VAULT_TOKEN}"}}
`
	env := func(k string) (string, bool) {
		return map[string]string{"SECRET_ID": "secret-id-value", "VAULT_TOKEN": "hvs.token-value"}[k], true
	}
	c, err := Parse([]byte(good), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Deliveries) != 2 || c.Deliveries[0].Names()[1] != "orders_b" || c.Deliveries[1].Names()[0] != "reports" {
		t.Fatalf("deliveries: %+v", c.Deliveries)
	}
	v := c.Deliveries[0].Targets[0].VaultKV
	if v.Auth.AppRole.SecretID.Reveal() != "secret-id-value" || time.Duration(v.Timeout) != 20*time.Second {
		t.Fatalf("vault_kv: %+v", v)
	}
	if s := fmt.Sprintf("%v %+v %#v", v.Auth, v.Auth, c.Deliveries[1].Targets[0].VaultKV.Auth); strings.Contains(s, "secret-id-value") || strings.Contains(s, "hvs.token-value") {
		t.Fatalf("a credential prints: %s", s)
	}

	bad := `connectors: [{name: prod, connection_string: 'mongodb://x'}]
approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}
deliveries:
  - connector: prd
    user: x
    users: [y]
    targets:
      - vault_kv: {address: vault, path: "", auth: {token: literal-token, token_file: /nonexistent/token}}
      - kubernetes_secret: {namespace: a}
      - {}
      - exec: {command: [reload.sh], timeout: 0s}
  - connector: prod
    strategy: alternating
    users: [a, a]
    reveal: everyone
    targets: []
  - connector: prod
    user: a
    targets: [{exec: {command: [/bin/true]}}]
`
	_, err = Parse([]byte(bad), nil)
	var ms Mistakes
	if !errors.As(err, &ms) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`deliveries[0].connector (line 4) "prd" is not a connector of this file; did you mean "prod"?`,
		`deliveries[0].users (line 6) is for strategy: alternating; a single user is given as user`,
		`deliveries[0].targets[0].vault_kv.address (line 8) "vault" must be a URL like https://vault.example.com:8200`,
		`deliveries[0].targets[0].vault_kv.path (line 8) is empty`,
		`deliveries[0].targets[0].vault_kv.auth (line 8): give token or token_file, not both`,
		`deliveries[0].targets[0].vault_kv.auth.token_file (line 8) "/nonexistent/token" cannot be read: no such file or directory`,
		`deliveries[0].targets[0].vault_kv.auth.token (line 8) is written in the file: give it as ${VAR}`,
		`deliveries[0].targets[1].kubernetes_secret.name is empty`,
		`deliveries[0].targets[2] (line 10) must have exactly one of vault_kv, kubernetes_secret, exec`,
		`deliveries[0].targets[3].exec.timeout (line 11) must be at least 1s`,
		`deliveries[0].targets[3].exec.command[0] (line 11) "reload.sh" must be an absolute path`,
		`deliveries[1].users (line 14) must name two different users`,
		`deliveries[1].reveal (line 15) "everyone" is not none or owner`,
		`deliveries[1].targets (line 16) is empty`,
		`deliveries[2] (line 17): a@admin on prod is already delivered by deliveries[1]: one delivery per user`,
	}
	all := ms.Error()
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing mistake %q\nin:\n%s", w, strings.Join(ms, "\n"))
		}
	}
}

// An Atlas connector: its credential from the environment, never in an error; the mistakes
// that would leave it unusable each said.
func TestAtlasConnector(t *testing.T) {
	head := "approvals: {channel: C1, approvers: {users: [U1]}}\nconnectors:\n"
	c, err := Parse([]byte(head+"  - {name: prod-atlas, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: cluster0, client_id: mdb_sa_id_1, client_secret: '${ATLAS_SECRET}'}\n"),
		env(map[string]string{"ATLAS_SECRET": "mdb_sa_sk_from-the-environment"}))
	if err != nil {
		t.Fatal(err)
	}
	cn := c.Connectors[0]
	if cn.Type != "atlas" || cn.ClientSecret.Reveal() != "mdb_sa_sk_from-the-environment" || !slices.Equal(cn.Clusters, []string{"cluster0"}) || strings.Contains(fmt.Sprintf("%v %+v", cn, cn), "mdb_sa_sk") {
		t.Fatalf("parsed %+v", cn)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"  - {name: a, type: atlas, project_id: nope, cluster: c, public_key: k, private_key: '${K}'}\n", "is not an Atlas project id"},
		{"  - {name: a, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: c}\n", "type atlas needs a credential"},
		{"  - {name: a, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: c, client_id: i, public_key: k, private_key: '${K}'}\n", "not both"},
		{"  - {name: a, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, public_key: k, private_key: '${K}'}\n", "needs cluster"},
		{"  - {name: a, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: c, public_key: k}\n", "an API key needs public_key and private_key"},
		{"  - {name: a, type: cosmos, connection_string: x}\n", `"cosmos" is not mongodb or atlas`},
		{"  - {name: a, connection_string: x, project_id: 5f0c0ffee0ddba11de7ec7ed}\n", "are for type: atlas"},
	} {
		_, err := Parse([]byte(head+tt.yaml), env(map[string]string{"K": "private-key-secret-value"}))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "private-key-secret-value") {
			t.Errorf("%s: %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

// The store on etcd: its password from the environment, never printed; the defaults; each
// mistake said with its field.
func TestStoreOnEtcd(t *testing.T) {
	head := "approvals: {channel: C1, approvers: {users: [U1]}}\nconnectors:\n  - {name: prod, connection_string: 'mongodb://h'}\n"
	c, err := Parse([]byte(head+"store:\n  etcd:\n    endpoints: [https://etcd-0:2379, https://etcd-1:2379]\n    username: mongobot\n    password: '${ETCD_PW}'\n    tls: {ca_file: /etc/etcd/ca.pem}\n"),
		env(map[string]string{"ETCD_PW": "etcd-pw-from-the-environment"}))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Store.Etcd
	if e == nil || e.Prefix != DefaultEtcdPrefix || time.Duration(e.SessionTTL) != 10*time.Second || e.MaxTxnOps != 128 ||
		e.Password.Reveal() != "etcd-pw-from-the-environment" || strings.Contains(fmt.Sprintf("%v %+v %s", e, e, e), "etcd-pw") {
		t.Fatalf("parsed %+v", e)
	}
	if c, err := Parse([]byte(head), env(nil)); err != nil || c.Store.Etcd != nil {
		t.Fatalf("without store: %+v %v", c.Store, err)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"store: {etcd: {}}\n", "store.etcd.endpoints: at least one"},
		{"store: {etcd: {endpoints: ['etcd-0:2379']}}\n", "is not a URL like https://etcd-0:2379"},
		{"store: {etcd: {endpoints: ['http://etcd-0:2379'], username: u, password: p}}\n", "in clear"},
		{"store: {etcd: {endpoints: ['https://u:p@etcd-0:2379']}}\n", "not in the URL"},
		{"store: {etcd: {endpoints: ['http://etcd-0:2379'], tls: {ca_file: ca.pem}}}\n", "use https://"},
		{"store: {etcd: {endpoints: ['https://etcd-0:2379'], prefix: mongobot}}\n", "must begin and end with /"},
		{"store: {etcd: {endpoints: ['https://etcd-0:2379'], username: u}}\n", "username and password go together"},
		{"store: {etcd: {endpoints: ['https://etcd-0:2379'], tls: {cert_file: c.pem}}}\n", "cert_file and key_file go together"},
		{"store: {etcd: {endpoints: ['https://etcd-0:2379'], session_ttl: 1s}}\n", "session_ttl"},
		{"store: {etcd: {endpoints: ['https://etcd-0:2379'], max_txn_ops: 4}}\n", "4 is too few for the journal"},
		{"store: {etcd: {endpoint: ['https://etcd-0:2379']}}\n", "endpoint"},
	} {
		_, err := Parse([]byte(head+tt.yaml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", strings.TrimSpace(tt.yaml), err, tt.want)
		}
	}
}
