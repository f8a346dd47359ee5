package connector

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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
		// $external (authentication_commands.cpp, _authenticateX509). The name the server
		// reports at the first discovery (connectionStatus) replaces this one.
		m.account = UserRef{User: rfc2253(leaf.RawSubject), DB: ExternalDB}
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

// shortNames are the attribute names MongoDB writes in a subject (ssl_manager.cpp's OID table);
// others are written as the dotted OID.
var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
	"2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
	"2.5.4.42": "GN", "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1": "emailAddress",
}

// rfc2253 writes a DER subject as RFC 2253 does: the last RDN first, multi-valued RDNs joined
// by "+", special characters escaped. Go's pkix.Name.String reorders the attributes and
// writes DC and emailAddress as OIDs, so it cannot name an x.509 user.
func rfc2253(raw []byte) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return ""
	}
	var rdns []string
	for i := len(seq) - 1; i >= 0; i-- {
		var parts []string
		for _, atv := range seq[i] {
			name, ok := shortNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			parts = append(parts, name+"="+escapeDN(fmt.Sprint(atv.Value)))
		}
		rdns = append(rdns, strings.Join(parts, "+"))
	}
	return strings.Join(rdns, ",")
}

func escapeDN(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r), r == '#' && i == 0, r == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
