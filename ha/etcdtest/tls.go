package etcdtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// pki is the CA of a cluster started with Options.TLS, and the members' certificate.
type pki struct {
	dir                   string
	caCert                *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	serverCert, serverKey string

	mu     sync.Mutex
	issued int64 // serial numbers
}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcdtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, caKey: key, issued: 1}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	if err := writePEM(p.CAFile(), "CERTIFICATE", der); err != nil {
		return nil, err
	}
	// The members' certificate names the loopback address the clients dial. A member's
	// certificate that also allows client use lets the embedded server's own gateway dial
	// it; etcd ignores that certificate's CN for authentication.
	p.serverCert, p.serverKey, err = p.issue("etcdtest member", "member", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	return p, err
}

// CAFile is where the CA's certificate is, in PEM.
func (p *pki) CAFile() string { return filepath.Join(p.dir, "ca.pem") }

func (p *pki) serverTLS() transport.TLSInfo {
	return transport.TLSInfo{CertFile: p.serverCert, KeyFile: p.serverKey, TrustedCAFile: p.CAFile(), ClientCertAuth: true}
}

// issue signs a certificate for cn and writes it and its key as file.pem and file-key.pem.
func (p *pki) issue(cn, file string, usage []x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	p.mu.Lock()
	p.issued++
	serial := p.issued
	p.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(p.dir, file+".pem"), filepath.Join(p.dir, file+"-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writePEM(keyFile, "EC PRIVATE KEY", kder)
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

var errNoTLS = errors.New("etcdtest: the cluster was not started with Options.TLS")

// CAFile is the PEM file of the CA that signed the members' certificates (Options.TLS).
func (c *Cluster) CAFile() string {
	if c.pki == nil {
		return ""
	}
	return c.pki.CAFile()
}

// ClientCert issues a client certificate whose common name is cn (Options.TLS), and returns
// the PEM files of the certificate and its key. With auth enabled, etcd takes the common name
// as the user of a request that carries no password.
func (c *Cluster) ClientCert(cn string) (certFile, keyFile string, err error) {
	if c.pki == nil {
		return "", "", errNoTLS
	}
	return c.pki.issue(cn, "client-"+cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

// EnableAuth turns etcd's authentication on as an operator first does: a user root with
// rootPassword, holding the role root, then auth enable. From then on every request needs
// a user (by password, or with Options.TLS by a client certificate's common name).
func (c *Cluster) EnableAuth(rootPassword string) error {
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.pki != nil {
		cert, key, err := c.pki.issue("etcdtest admin", "admin", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		if err != nil {
			return err
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AddCert(c.pki.caCert)
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}}
	}
	cl, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user root", func() error { _, err := cl.UserAdd(ctx, "root", rootPassword); return err }},
		{"add role root", func() error { _, err := cl.RoleAdd(ctx, "root"); return err }},
		{"grant root to root", func() error { _, err := cl.UserGrantRole(ctx, "root", "root"); return err }},
		{"auth enable", func() error { _, err := cl.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("etcdtest: %s: %w", s.what, err)
		}
	}
	return nil
}
