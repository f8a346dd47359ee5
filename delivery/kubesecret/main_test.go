package kubesecret

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/klog/v2"

	"mongobot/delivery"
	"mongobot/delivery/kubesecret/kubetest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
)

// srv is the one real API server the tests share: starting one takes seconds.
var srv *kubetest.Server

// klogOut collects everything client-go logs, so a test can check that no secret reached it.
var klogOut syncbuf.Buffer

func TestMain(m *testing.M) {
	klog.LogToStderr(false)
	klog.SetOutput(&klogOut)
	dir, err := os.MkdirTemp("", "kubesecret-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = kubetest.Start(dir)
	if err != nil {
		// Not finding or not building the server is a failure, not a skip: a green run must
		// mean the adapter was tested against a real API server.
		fmt.Fprintf(os.Stderr, "FAIL: the kubesecret tests need a real kube-apiserver: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Printf("kubernetes: %s (ready in %s)\n", srv, srv.Startup.Round(1e7))
	code := m.Run()
	if code != 0 {
		fmt.Fprint(os.Stderr, srv.Logs())
	}
	srv.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var nsCount atomic.Int32

// namespace creates a namespace of the test's own, named after it.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	name = fmt.Sprintf("%.50s-%d", strings.Trim(name, "-"), nsCount.Add(1))
	if err := srv.Namespace(name); err != nil {
		t.Fatal(err)
	}
	return name
}

// target makes a Target for ns/name as the admin, with changes to the Config applied.
func target(t *testing.T, ns, name string, change ...func(*Config)) *Target {
	t.Helper()
	c := Config{Namespace: ns, Name: name, Kubeconfig: srv.Kubeconfig}
	for _, f := range change {
		f(&c)
	}
	tg, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func password() secret.String {
	b := make([]byte, 18)
	rand.Read(b)
	return secret.New("pw-" + base64.RawURLEncoding.EncodeToString(b))
}

func credential(user string, entry uint64) delivery.Credential {
	return delivery.Credential{Connector: "prod", User: user, Database: "admin", Password: password(), Entry: entry}
}

// noSecret fails the test if text holds any of the values, or a password's base64 form (the
// form the API server sends Secret data in).
func noSecret(t *testing.T, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		if v == "" {
			continue
		}
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(text, form) {
				t.Errorf("a secret leaked into %q", text)
			}
		}
	}
}
