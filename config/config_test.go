package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if c.SlashCommand != "/mongo" || time.Duration(c.RevealTTL) != time.Hour {
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
		{base + "slash_command: mongo\n", `slash_command: "mongo" must be one word starting with /`},
		{"approvals: {channel: C1, approvers: {users: [U1]}}\n", "connectors: at least one connector"},
		{"connectors: [{name: a, connection_string: '${NOPE}'}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", "connectors[0].connection_string: the environment variable NOPE is not set"},
		{"connectors: [{name: a, connection_string: x}, {name: a, connection_string: y}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", `connectors[1].name "a" is used twice`},
		{"connectors: [{name: a}]\napprovals: {channel: C1, approvers: {users: [U1]}}\n", "connectors[0].connection_string is empty"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {approvers: {users: [U1]}}\n", "approvals.channel is empty"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1}\n", "approvers lists nobody"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, quorum: 2}\n", "quorum is 2 but only 1 approver"},
		{base + "approvals_typo: 1\n", "field approvals_typo not found"},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, expire_after: soon}\n", `"soon" is not a duration`},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, require: [drop-table]}\n", `"drop-table" is not an action`},
		{"connectors: [{name: a, connection_string: x}]\napprovals: {channel: C1, approvers: {users: [U1]}, rules: [{connectors: [b]}]}\n", `"b" is not a configured connector`},
		{base + "log: {level: loud}\n", `log.level "loud"`},
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
