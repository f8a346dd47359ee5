package kubetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain finds (or builds, the first time: about 10 minutes) the binaries before the tests,
// outside go test's per-binary timeout.
func TestMain(m *testing.M) {
	if _, err := BinDir(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the kubetest tests need kube-apiserver and etcd: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestServer(t *testing.T) {
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("a real kube-apiserver: %v", err)
	}
	defer s.Stop()
	t.Logf("kubernetes: %s (ready in %s)", s, s.Startup.Round(time.Millisecond))
	if !strings.HasPrefix(s.Version, "v1.37.") || !strings.HasPrefix(s.EtcdVersion, "3.7.") {
		t.Errorf("running kube-apiserver %q on etcd %q, want v1.37 on 3.7", s.Version, s.EtcdVersion)
	}

	t.Run("admin kubeconfig", func(t *testing.T) {
		b, err := os.ReadFile(s.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Current  string `json:"current-context"`
			Clusters []struct {
				Cluster struct {
					Server string `json:"server"`
					CA     string `json:"certificate-authority"`
				} `json:"cluster"`
			} `json:"clusters"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Current != AdminContext || len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster.Server != s.URL || cfg.Clusters[0].Cluster.CA != s.CAFile {
			t.Errorf("kubeconfig: %s", b)
		}
	})

	t.Run("secrets", func(t *testing.T) {
		if err := s.Namespace("apps"); err != nil {
			t.Fatal(err)
		}
		if err := s.Namespace("apps"); err != nil {
			t.Errorf("a second Namespace of the same name: %v", err)
		}
		if _, _, err := s.Secret("apps", "db"); !IsReason(err, "NotFound") {
			t.Errorf("Secret of a missing Secret = %v, want NotFound", err)
		}
		if err := s.PutSecret("apps", "db", map[string]string{"a": "1"}); err != nil {
			t.Fatal(err)
		}
		_, rv1, _ := s.Secret("apps", "db")
		if err := s.PutSecret("apps", "db", map[string]string{"b": "2"}); err != nil {
			t.Fatal(err)
		}
		data, rv2, err := s.Secret("apps", "db")
		if err != nil || data["a"] != "1" || data["b"] != "2" || len(data) != 2 || rv1 == rv2 {
			t.Errorf("after two PutSecrets: %v, resourceVersion %s then %s, %v", data, rv1, rv2, err)
		}
	})

	t.Run("service account token", func(t *testing.T) {
		if err := s.Namespace("vault"); err != nil {
			t.Fatal(err)
		}
		token, err := s.ServiceAccountToken("vault", "app")
		if err != nil {
			t.Fatal(err)
		}
		ok, user, err := s.TokenReview(token)
		if err != nil || !ok || user != "system:serviceaccount:vault:app" {
			t.Errorf("TokenReview of a service account token = %v, %q, %v", ok, user, err)
		}
		if ok, _, err := s.TokenReview(token[:len(token)-4] + "AAAA"); err != nil || ok {
			t.Errorf("TokenReview of a forged token = %v, %v; want not authenticated", ok, err)
		}
	})

	t.Run("user kubeconfig", func(t *testing.T) {
		path, err := s.UserKubeconfig("reader", "apps", []string{"get"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		var cfg struct {
			Users []struct {
				User struct {
					Token string `json:"token"`
				} `json:"user"`
			} `json:"users"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Users) != 1 {
			t.Fatalf("%s: %v", b, err)
		}
		token := cfg.Users[0].User.Token
		var sec map[string]any
		if err := s.do(token, http.MethodGet, "/api/v1/namespaces/apps/secrets/db", nil, &sec); err != nil {
			t.Errorf("get as the reader: %v", err)
		}
		err = s.do(token, http.MethodPut, "/api/v1/namespaces/apps/secrets/db", sec, nil)
		if !IsReason(err, "Forbidden") {
			t.Errorf("update as the reader = %v, want Forbidden", err)
		}
		if err := s.do(token, http.MethodGet, "/api/v1/namespaces/default/secrets", nil, nil); !IsReason(err, "Forbidden") {
			t.Errorf("list in another namespace as the reader = %v, want Forbidden", err)
		}
	})
}
