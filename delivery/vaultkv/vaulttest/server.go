package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"mongobot/internal/syncbuf"
	"mongobot/internal/toolbuild"
)

// Server is a running `vault server -dev`.
type Server struct {
	Addr      string // http://127.0.0.1:PORT, or https:// from StartTLS
	RootToken string
	Version   string // as `vault version` says it, e.g. "v1.21.4"
	CAFile    string // StartTLS only: the PEM CA that signed the server's certificate

	bin, dir, listen string
	http             *http.Client

	mu        sync.Mutex // guards the fields below
	cmd       *exec.Cmd
	done      chan struct{}
	log       *syncbuf.Buffer
	unsealKey string
	approle   bool // the approle auth method is enabled
	trusted   bool // http trusts CAFile

	authMu sync.Mutex // keeps two AppRole calls from both enabling the method
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the vault binary: $VAULT_BIN, or the one tools/vault.sh builds from the Go
// module proxy (cached after the first build, which takes about 20 minutes).
func Binary() (string, error) {
	binOnce.Do(func() {
		if b := os.Getenv("VAULT_BIN"); b != "" {
			binPath = b
			return
		}
		binPath, binErr = toolbuild.Run("tools/vault.sh")
	})
	return binPath, binErr
}

// Start starts `vault server -dev` on a free loopback port with dir as its HOME, and waits
// until it is unsealed and active.
func Start(dir string) (*Server, error) { return start(dir, false) }

// StartTLS is Start with `-dev-tls`: Vault serves HTTPS with a certificate for 127.0.0.1
// signed by a CA it makes, in dir/tls/vault-ca.pem (CAFile).
func StartTLS(dir string) (*Server, error) { return start(dir, true) }

func start(dir string, useTLS bool) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %v", bin, err)
	}
	fields := strings.Fields(strings.ReplaceAll(string(out), ",", " ")) // Vault v1.21.4, built …
	if len(fields) < 2 || fields[0] != "Vault" {
		return nil, fmt.Errorf("%s version says %q, not Vault's version", bin, out)
	}
	// freePorts closes the ports it found before Vault binds them, and go test runs packages
	// in parallel, several starting servers: another process can take one in between. Vault
	// then exits saying so, and it starts again on fresh ports.
	for attempt := 1; ; attempt++ {
		listen, err := freePorts()
		if err != nil {
			return nil, err
		}
		s := &Server{
			Addr:      "http://" + listen,
			RootToken: "root-" + random(12),
			Version:   fields[1],
			bin:       bin,
			dir:       dir,
			listen:    listen,
			http:      &http.Client{Timeout: 10 * time.Second},
		}
		if useTLS {
			s.Addr = "https://" + listen
			s.CAFile = filepath.Join(dir, "tls", "vault-ca.pem")
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
}

// freePorts finds a loopback port p with p+1 free as well: dev mode listens on both (the API
// and the cluster port).
func freePorts() (string, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		ln.Close()
		if err == nil {
			next.Close()
			return ln.Addr().String(), nil
		}
	}
	return "", errors.New("vaulttest: found no two adjacent free loopback ports")
}

var unsealLine = regexp.MustCompile(`Unseal Key: ([A-Za-z0-9+/=]+)`)

func (s *Server) start() error {
	s.mu.Lock()
	log := &syncbuf.Buffer{}
	args := []string{"server", "-dev",
		"-dev-listen-address=" + s.listen,
		"-dev-root-token-id=" + s.RootToken,
		"-dev-no-store-token",
		"-log-level=warn"}
	if s.CAFile != "" {
		// A fresh CA and certificate at each start; the old files would not match.
		certs := filepath.Dir(s.CAFile)
		os.RemoveAll(certs)
		if err := os.MkdirAll(certs, 0o700); err != nil {
			s.mu.Unlock()
			return err
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+filepath.Dir(s.CAFile))
	}
	cmd := exec.Command(s.bin, args...)
	// HOME: belt and braces with -dev-no-store-token, so nothing lands in ~/.vault-token.
	// VAULT_* from the caller's shell could point the dev server elsewhere.
	env := []string{"HOME=" + s.dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log, s.approle, s.trusted = cmd, done, log, false, false
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.waitReady(ctx, done); err != nil {
		s.Stop()
		return err
	}
	m := unsealLine.FindStringSubmatch(log.String())
	if m == nil {
		s.Stop()
		return fmt.Errorf("vault server -dev did not print its unseal key:\n%s", s.Log())
	}
	s.mu.Lock()
	s.unsealKey = m[1]
	s.mu.Unlock()
	return nil
}

// waitReady polls sys/health until Vault answers 200: initialised, unsealed and active.
func (s *Server) waitReady(ctx context.Context, done <-chan struct{}) error {
	for {
		if err := s.trustCA(); err != nil {
			return err
		}
		resp, err := s.client().Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			// The unseal key is printed after the server is ready; wait for it too.
			if resp.StatusCode == http.StatusOK && unsealLine.MatchString(s.rawLog()) {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("vault server -dev exited:\n%s", s.Log())
		case <-ctx.Done():
			return fmt.Errorf("vault server -dev was not ready within 30s:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// trustCA makes the helpers' client trust the CA of a -dev-tls server, once Vault has
// written it.
func (s *Server) trustCA() error {
	s.mu.Lock()
	trusted := s.trusted
	s.mu.Unlock()
	if s.CAFile == "" || trusted {
		return nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not written yet
	} else if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil // half written
	}
	s.mu.Lock()
	s.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s.trusted = true
	s.mu.Unlock()
	return nil
}

func (s *Server) client() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.http
}

// Stop kills the server. Its data, in memory, is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server and starts a new, empty one on the same address with the same
// root token: Vault unreachable, then back. The port is free while it is down, so another
// process could take it in between; tests on loopback can live with that.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Log is the server's output so far, for a failing test to show. The root token and the
// unseal key are blanked.
func (s *Server) Log() string {
	s.mu.Lock()
	key := s.unsealKey
	s.mu.Unlock()
	out := strings.ReplaceAll(s.rawLog(), s.RootToken, "REDACTED")
	if key != "" {
		out = strings.ReplaceAll(out, key, "REDACTED")
	}
	return out
}

func (s *Server) rawLog() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// String says what runs where, for a test's log: a real server, not a stand-in.
func (s *Server) String() string {
	return fmt.Sprintf("real Vault %s (`vault server -dev`) at %s", s.Version, strings.TrimPrefix(s.Addr, "http://"))
}

// Seal seals Vault: every call is answered 503 "Vault is sealed" until Unseal.
func (s *Server) Seal() error {
	_, err := s.Call(http.MethodPut, "sys/seal", nil)
	return err
}

// Unseal unseals Vault with the key dev mode printed, and waits until it is active again.
func (s *Server) Unseal() error {
	s.mu.Lock()
	key, done := s.unsealKey, s.done
	s.mu.Unlock()
	out, err := s.Call(http.MethodPut, "sys/unseal", map[string]any{"key": key})
	if err != nil {
		return err
	}
	if sealed, _ := out["sealed"].(bool); sealed {
		return errors.New("vault is still sealed after sys/unseal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.waitReady(ctx, done)
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
