package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// clientCertificate loads the bot's client certificate, when configured, into its TLS config
// (TLS on, trusting the system roots unless a CA is given), and decides whether the bot logs in
// with it: when the connection string names neither a user nor a mechanism. Errors never quote
// the key.
func (m *Mongo) clientCertificate(cfg Config) error {
	if cfg.TLSCertificateKeyFile != "" && !cfg.TLSCertificateKeyPEM.Empty() {
		return errors.New("give tls_certificate_key_file or tls_certificate_key_pem, not both")
	}
	pem := []byte(cfg.TLSCertificateKeyPEM.Reveal())
	if cfg.TLSCertificateKeyFile != "" {
		var err error
		if pem, err = os.ReadFile(cfg.TLSCertificateKeyFile); err != nil {
			return fmt.Errorf("tls_certificate_key_file: %v", err)
		}
	}
	if len(pem) == 0 {
		return nil
	}
	// The certificate and its key are one PEM text, as mongod's --tlsCertificateKeyFile and
	// the driver's tlsCertificateKeyFile take them.
	cert, err := tls.X509KeyPair(pem, pem)
	if err != nil {
		return errors.New("the TLS client certificate does not load: it must be PEM holding the certificate and its private key (unencrypted)")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return errors.New("the TLS client certificate does not parse")
	}
	m.cert = &cert
	if m.account.User == "" && !hasAuthMechanism(cfg.URI.Reveal()) {
		m.x509 = true
		// MongoDB names an x.509 user by the certificate's subject in RFC 2253 form, in
		// $external (authentication_commands.cpp, _authenticateX509).
		m.account = UserRef{User: leaf.Subject.String(), DB: ExternalDB}
	}
	return nil
}

// hasAuthMechanism reports whether a connection string sets authMechanism.
func hasAuthMechanism(uri string) bool {
	_, query, _ := strings.Cut(uri, "?")
	q, _ := url.ParseQuery(query)
	for k := range q {
		if strings.EqualFold(k, "authMechanism") {
			return true
		}
	}
	return false
}
