package kubetest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"mongobot/internal/toolbuild"
)

// Server is a kube-apiserver and the etcd it stores in, running until Stop.
type Server struct {
	URL         string        // https://127.0.0.1:PORT
	Kubeconfig  string        // a kubeconfig for the admin (system:masters), context "kubetest-admin"
	CAFile      string        // the CA of the API server's self-signed serving certificate
	Dir         string        // where the data, certificates, tokens and logs are
	Version     string        // kube-apiserver's own answer on /version, e.g. "v1.37.2"
	EtcdVersion string        // etcd's own answer on /version, e.g. "3.7.3"
	Startup     time.Duration // from starting etcd to the API server's /readyz answering ok

	adminToken string
	client     *http.Client // trusts CAFile only
	etcd       *proc
	apiserver  *proc
	stopOnce   sync.Once

	mu       sync.Mutex // guards sequence
	sequence int        // numbers the kubeconfig files UserKubeconfig writes
}

// AdminContext is the admin kubeconfig's context, and its current-context.
const AdminContext = "kubetest-admin"

// startTimeout bounds each wait in Start: a cold start on two busy cores takes about 5 s.
const startTimeout = 60 * time.Second

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // the file its stdout and stderr go to
	done chan struct{}
}

func startProc(name, bin, log string, args ...string) (*proc, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	p := &proc{name: name, log: log, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	setProcAttr(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubetest: starting %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM) and kills it if it is still there after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	terminate(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Start runs etcd and kube-apiserver on free loopback ports with everything they write in dir
// (a t.TempDir() or os.MkdirTemp folder; Stop does not remove it), and returns once the API
// server's /readyz says ok, its bootstrap RBAC roles included.
func Start(dir string) (*Server, error) {
	// freePorts closes the ports it found before etcd and the API server bind them, and go
	// test runs packages in parallel, several starting servers: another process can take one
	// in between. The server then exits saying so, and both start again on fresh ports, in a
	// fresh folder.
	for attempt := 1; ; attempt++ {
		d := dir
		if attempt > 1 {
			d = filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt))
		}
		s, err := start(d)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
	}
}

func start(dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	if err := writeServiceAccountKey(filepath.Join(pki, "sa.key"), filepath.Join(pki, "sa.pub")); err != nil {
		return nil, err
	}
	s := &Server{
		URL:        fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		Dir:        dir,
		adminToken: randomHex(16),
	}
	// The token file is read once, at start; other identities are service accounts, whose
	// tokens the TokenRequest API issues while the server runs.
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n", s.adminToken)
	if err := os.WriteFile(filepath.Join(pki, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, err
	}

	t0 := time.Now()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	s.etcd, err = startProc("etcd", filepath.Join(bin, "etcd"), filepath.Join(dir, "etcd.log"),
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		// The data is thrown away after the test: an fsync per write would only slow it.
		"--unsafe-no-fsync")
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	var etcdVersion struct {
		Server string `json:"etcdserver"`
	}
	if err := s.waitFor(s.etcd, "etcd to answer on "+etcdURL, func() bool {
		return getJSON(plain, etcdURL+"/health", nil) == nil && getJSON(plain, etcdURL+"/version", &etcdVersion) == nil
	}); err != nil {
		s.Stop()
		return nil, err
	}
	s.EtcdVersion = etcdVersion.Server

	certs := filepath.Join(dir, "certs")
	s.apiserver, err = startProc("kube-apiserver", filepath.Join(bin, "kube-apiserver"), filepath.Join(dir, "kube-apiserver.log"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort), "--advertise-address=127.0.0.1",
		// No Endpoints for the kubernetes Service: nothing here routes to it, and the
		// reconciler would otherwise keep writing one.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+certs,
		"--token-auth-file="+filepath.Join(pki, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--profiling=false",
	)
	if err != nil {
		s.Stop()
		return nil, err
	}
	// The API server writes its self-signed certificate (and the CA that signed it) before it
	// listens; after that, every request verifies the server against that CA.
	crt := filepath.Join(certs, "apiserver.crt")
	if err := s.waitFor(s.apiserver, "kube-apiserver to write "+crt, func() bool {
		b, err := os.ReadFile(crt)
		return err == nil && bytes.Contains(b, []byte("-----END CERTIFICATE-----"))
	}); err != nil {
		s.Stop()
		return nil, err
	}
	s.CAFile = filepath.Join(dir, "ca.crt")
	pool, err := extractCA(crt, s.CAFile)
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	var lastReady string
	if err := s.waitFor(s.apiserver, "kube-apiserver's /readyz at "+s.URL, func() bool {
		b, code, err := s.raw(s.adminToken, http.MethodGet, "/readyz", nil)
		if err != nil {
			lastReady = err.Error()
			return false
		}
		lastReady = fmt.Sprintf("%d %s", code, b)
		return code == http.StatusOK && strings.TrimSpace(string(b)) == "ok"
	}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\nlast /readyz answer: %s", err, lastReady)
	}
	s.Startup = time.Since(t0)
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := s.Do(http.MethodGet, "/version", nil, &v); err != nil {
		s.Stop()
		return nil, err
	}
	s.Version = v.GitVersion
	s.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := s.writeKubeconfig(s.Kubeconfig, AdminContext, "admin", s.adminToken, "default"); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// String says what is running, for a test's log.
func (s *Server) String() string {
	return fmt.Sprintf("real kube-apiserver %s on etcd v%s at %s", s.Version, s.EtcdVersion, s.URL)
}

// AdminToken is the bearer token of the admin (user "admin", group system:masters).
func (s *Server) AdminToken() string { return s.adminToken }

// Stop ends kube-apiserver, then etcd. It can be called more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.apiserver != nil {
			resume(s.apiserver.cmd.Process) // in case a test left it paused
		}
		s.apiserver.stop(10 * time.Second)
		s.etcd.stop(5 * time.Second)
	})
}

// Pause freezes kube-apiserver (SIGSTOP): connections are accepted by the kernel and never
// answered, as with a server that hangs. Resume undoes it.
func (s *Server) Pause() error { return pause(s.apiserver.cmd.Process) }

// Resume undoes Pause.
func (s *Server) Resume() error { return resume(s.apiserver.cmd.Process) }

// Logs returns the end of etcd's and kube-apiserver's logs, for a failing test to print.
func (s *Server) Logs() string {
	var b strings.Builder
	for _, p := range []*proc{s.etcd, s.apiserver} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s (%s), last lines:\n%s\n", p.name, p.log, p.tail(40))
		}
	}
	return b.String()
}

func (s *Server) waitFor(p *proc, what string, ok func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for !ok() {
		if p.exited() {
			return fmt.Errorf("kubetest: %s exited while waiting for %s (%v):\n%s", p.name, what, p.cmd.ProcessState, p.tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: gave up waiting %s for %s:\n%s", startTimeout, what, p.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func getJSON(c *http.Client, url string, out any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// freePorts asks the kernel for n distinct free loopback ports. They are free when this
// returns; a process that grabs one before etcd or the API server does makes Start fail, not
// hang.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// extractCA finds the self-signed CA in the API server's certificate bundle (the serving
// certificate followed by the CA that signed it), writes it to dst, and returns a pool of it.
func extractCA(bundle, dst string) (*x509.CertPool, error) {
	b, err := os.ReadFile(bundle)
	if err != nil {
		return nil, err
	}
	var ca *pem.Block
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("kubetest: %s: %w", bundle, err)
		}
		if c.CheckSignatureFrom(c) == nil {
			ca = block
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("kubetest: no self-signed certificate in %s", bundle)
	}
	out := pem.EncodeToMemory(ca)
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(out)
	return pool, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// BinDir returns the folder holding the etcd and kube-apiserver binaries: $KUBE_BIN_DIR, or the
// one tools/kube-apiserver.sh (found upward from the working directory) builds from the Go
// module proxy and prints (cached after the first build, which takes about 10 minutes).
func BinDir() (string, error) {
	binOnce.Do(func() {
		binDir, binErr = findBinDir()
	})
	return binDir, binErr
}

func findBinDir() (string, error) {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		var err error
		if dir, err = toolbuild.Run("tools/kube-apiserver.sh"); err != nil {
			return "", fmt.Errorf("kubetest: %w", err)
		}
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("kubetest: %w (KUBE_BIN_DIR or tools/kube-apiserver.sh)", err)
		}
	}
	return dir, nil
}
