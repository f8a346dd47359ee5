package connector_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// Many production clusters allow no password login for admin accounts: the bot logs in with a
// client certificate (MONGODB-X509) when its connection string names no user, as the $external
// user the certificate's subject names.
func TestX509Login(t *testing.T) {
	pki, err := mongotest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	emu := startEmulator(t, mongotest.Options{TLS: pki.Server})
	subject := pkix.Name{CommonName: "mongobot", OrganizationalUnit: []string{"platform"}, Organization: []string{"Example"}}
	certPEM, err := pki.ClientPEM(subject)
	if err != nil {
		t.Fatal(err)
	}
	// The admin (password) account creates the bot's x.509 user, as a DBA would.
	dn := "CN=mongobot,OU=platform,O=Example"
	raw := rawClient(t, emu.URI()+"&tlsInsecure=true")
	if _, err := run(t, raw, "$external", bson.D{{Key: "createUser", Value: dn}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "root"}, {Key: "db", Value: "admin"}}}}}); err != nil {
		t.Fatal(err)
	}

	uri := "mongodb://" + emu.Addr() + "/?tls=true&directConnection=true"
	m := connect(t, server{uri: uri}, func(c *connector.Config) {
		c.TLSCAPEM = string(pki.CAPEM)
		c.TLSCertificateKeyPEM = secret.New(string(certPEM))
	})
	if got := m.Account(); got.User != dn || got.DB != "$external" {
		t.Errorf("Account() = %+v; want %s in $external", got, dn)
	}
	info, err := m.Discover(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Privileges.User != dn+"@$external" {
		t.Errorf("logged in as %q", info.Privileges.User)
	}
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := m.CreateUser(ctx(t), "create-user", u, nil); err != nil {
		t.Fatalf("an action through the x.509 login: %v", err)
	}
	if _, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u}); err != nil {
		t.Fatal(err)
	}

	// The CA given in the connection string (tlsCAFile) is kept beside the certificate.
	caFile := t.TempDir() + "/ca.pem"
	writeFile(t, caFile, pki.CAPEM)
	viaURI := connect(t, server{uri: uri + "&tlsCAFile=" + caFile}, func(c *connector.Config) {
		c.TLSCertificateKeyPEM = secret.New(string(certPEM))
	})
	if _, err := viaURI.Discover(ctx(t)); err != nil {
		t.Fatalf("the connection string's tlsCAFile with a configured client certificate: %v", err)
	}

	// A subject in OpenSSL's order with domain components, as a corporate CA issues them: the
	// account is named as MongoDB spells it (DC, not an OID; the last RDN first), so the bot
	// still refuses to act on its own login.
	oid := func(ids ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(ids) }
	dcPEM, err := pki.ClientPEM(pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: oid(0, 9, 2342, 19200300, 100, 1, 25), Value: "com"},
		{Type: oid(0, 9, 2342, 19200300, 100, 1, 25), Value: "example"},
		{Type: oid(2, 5, 4, 11), Value: "db, platform"},
		{Type: oid(2, 5, 4, 3), Value: "mongobot"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const dcName = `CN=mongobot,OU=db\, platform,DC=example,DC=com`
	if _, err := run(t, raw, "$external", bson.D{{Key: "createUser", Value: dcName}, {Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "root"}, {Key: "db", Value: "admin"}}}}}); err != nil {
		t.Fatal(err)
	}
	dc := connect(t, server{uri: uri}, func(c *connector.Config) {
		c.TLSCAPEM = string(pki.CAPEM)
		c.TLSCertificateKeyPEM = secret.New(string(dcPEM))
	})
	if got := dc.Account(); got.User != dcName {
		t.Errorf("before discovery, Account() = %q; want %q", got.User, dcName)
	}
	if _, err := dc.Discover(ctx(t)); err != nil {
		t.Fatalf("log in as %s: %v", dcName, err)
	}
	if got := dc.Account(); got.User != dcName || got.DB != "$external" {
		t.Errorf("after discovery, Account() = %+v", got)
	}

	// A certificate whose subject has no user: refused, saying so, with no key in the text.
	strangerPEM, _ := pki.ClientPEM(pkix.Name{CommonName: "stranger"})
	s := connect(t, server{uri: uri}, func(c *connector.Config) {
		c.TLSCAPEM = string(pki.CAPEM)
		c.TLSCertificateKeyPEM = secret.New(string(strangerPEM))
	})
	_, err = s.Discover(ctx(t))
	mustKind(t, err, connector.ErrAuthFailed)
	if !strings.Contains(err.Error(), `as "CN=stranger" in $external): no such user`) {
		t.Errorf("unknown subject: %v", err)
	}
	noLeak(t, []string{string(strangerPEM[len(strangerPEM)-120 : len(strangerPEM)-40])}, err)

	// A bad key is a configuration error that never quotes the PEM.
	_, err = connector.New(connector.Config{Name: "bad", URI: secret.New(uri), TLSCertificateKeyPEM: secret.New("-----BEGIN EC PRIVATE KEY-----\nAAAAsecretsecret\n-----END EC PRIVATE KEY-----\n")})
	if err == nil || strings.Contains(err.Error(), "secretsecret") {
		t.Errorf("bad key: %v", err)
	}
}
