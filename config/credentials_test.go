package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const credHead = "approvals: {channel: C1, approvers: {users: [U1]}}\n"

// credVars are the environment of these tests: every value is a credential the messages
// must never show.
var credVars = map[string]string{
	"MONGO_URI": "mongodb://bot:uri-pw-from-env@db:27017/",
	"MONGO_PW":  "pw-from-env",
	"CREDS":     "bot:creds-from-env",
	"HOST":      "db.example.com:27017",
	"SCHEME":    "mongodb",
	"SECRET":    "secret-from-env",
	"CERT":      "-----BEGIN PRIVATE KEY-----\ncert-from-env\n-----END PRIVATE KEY-----\n",
	"ETCD_PW":   "etcd-pw-from-env",
	"TOKEN":     "hvs.token-from-env",
}

// A password inside a connection string written in the file is refused, as the other
// credentials are; one that a ${VAR} supplies (the whole string, or the password) is not,
// nor a string without a password (X.509 names a user alone).
func TestConnectionStringPassword(t *testing.T) {
	const want = "connectors[0].connection_string (line 4) holds a password written in the file: give the password (or the whole string) as ${VAR} so the file holds no credential"
	for _, tt := range []struct {
		uri     string
		refused bool
	}{
		{"mongodb://bot:hunter2@db:27017/", true},
		{"mongodb+srv://bot:hunter2@cluster0.example.net/?retryWrites=true", true},
		{"mongodb://bot:p%40ss@db1:27017,db2:27017/shop?authSource=admin", true},
		{"mongodb://bot:hunter2@${HOST}/", true},
		{"${SCHEME}://bot:hunter2@db/", true},
		{"${MONGO_URI}", false},
		{"mongodb://bot:${MONGO_PW}@db:27017/?authSource=admin", false},
		{"mongodb://${CREDS}@db:27017/", false},
		{"mongodb://CN=bot,OU=ops@db:27017/?authMechanism=MONGODB-X509&tls=true", false},
		{"mongodb://bot@db:27017/", false},
		{"mongodb://db:27017/?appName=a:b@c", false},
		{"mongodb://db:27017/", false},
	} {
		raw := credHead + "connectors:\n  - name: prod\n    connection_string: '" + tt.uri + "'\n"
		c, err := Parse([]byte(raw), env(credVars))
		if !tt.refused {
			if err != nil {
				t.Errorf("%s: refused: %v", tt.uri, err)
			} else if got := c.Connectors[0].ConnectionString.Reveal(); strings.Contains(got, "${") {
				t.Errorf("%s: not expanded: %d characters", tt.uri, len(got))
			}
			continue
		}
		m, ok := err.(Mistakes)
		if !ok || !slices.Contains(m, want) {
			t.Errorf("%s: %v; want %q", tt.uri, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the message shows the password", tt.uri)
		}
	}
}

// Every credential field says the same sentence when it is written in the file, and
// nothing when it comes from ${VAR}; all are reported at once, on their lines.
func TestCredentialsWrittenInFile(t *testing.T) {
	const literal = credHead + `connectors:
  - name: prod
    connection_string: 'mongodb://bot@db:27017/'
    tls_certificate_key_pem: |
      -----BEGIN PRIVATE KEY-----
      literal-key
      -----END PRIVATE KEY-----
  - {name: cloud, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: c0, client_id: i, client_secret: literal-secret}
  - {name: keyed, type: atlas, project_id: 5f0c0ffee0ddba11de7ec7ed, cluster: c0, public_key: k, private_key: literal-private}
store:
  etcd: {endpoints: ['https://etcd-0:2379'], username: mongobot, password: literal-etcd}
deliveries:
  - connector: prod
    user: app
    targets: [{vault_kv: {address: 'https://vault:8200', path: apps/app, auth: {token: hvs.literal-token}}}]
`
	_, err := Parse([]byte(literal), env(credVars))
	m, ok := err.(Mistakes)
	if !ok {
		t.Fatalf("a file full of credentials: %v", err)
	}
	const tail = " is written in the file: give it as ${VAR}"
	const end = " so the file holds no credential"
	for _, w := range []string{
		"connectors[0].tls_certificate_key_pem (line 5)" + tail + " (or use the _file form)" + end,
		"connectors[1].client_secret (line 9)" + tail + end,
		"connectors[2].private_key (line 10)" + tail + end,
		"store.etcd.password (line 12)" + tail + end,
		"deliveries[0].targets[0].vault_kv.auth.token (line 16)" + tail + " (or use the _file form)" + end,
	} {
		if !slices.Contains(m, w) {
			t.Errorf("missing %q", w)
		}
	}
	if len(m) != 5 {
		t.Errorf("%d mistakes, want the 5 credentials: %q", len(m), m)
	}
	if s := err.Error(); strings.Contains(s, "literal-") {
		t.Errorf("a message shows a credential")
	}

	fromEnv := strings.NewReplacer(
		"|\n      -----BEGIN PRIVATE KEY-----\n      literal-key\n      -----END PRIVATE KEY-----", "${CERT}",
		"literal-secret", "'${SECRET}'", "literal-private", "'${SECRET}'",
		"literal-etcd", "'${ETCD_PW}'", "hvs.literal-token", "'${TOKEN}'",
	).Replace(literal)
	c, err := Parse([]byte(fromEnv), env(credVars))
	if err != nil {
		t.Fatalf("the same credentials from the environment: %v", err)
	}
	if c.Connectors[1].ClientSecret.Reveal() != credVars["SECRET"] || c.Store.Etcd.Password.Reveal() != credVars["ETCD_PW"] ||
		c.Connectors[0].TLSCertificateKeyPEM.Reveal() != credVars["CERT"] {
		t.Errorf("credentials not read from the environment")
	}
	if s := fmt.Sprintf("%v %+v", c.Connectors, c.Store.Etcd); strings.Contains(s, "from-env") {
		t.Errorf("a parsed credential prints in the clear")
	}
}
