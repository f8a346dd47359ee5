package kubesecret

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/delivery"
)

func TestNew(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // as outside a pod, wherever the tests run
	good := Config{Namespace: "orders", Name: "orders-mongo", Kubeconfig: srv.Kubeconfig}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // in the error; empty for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no namespace", func(c *Config) { c.Namespace = "" }, "namespace is empty"},
		{"bad namespace", func(c *Config) { c.Namespace = "Orders" }, `namespace "Orders"`},
		{"no name", func(c *Config) { c.Name = "" }, "name is empty"},
		{"bad name", func(c *Config) { c.Name = "orders_mongo" }, `Secret name "orders_mongo"`},
		{"bad key", func(c *Config) { c.PasswordKey = "pass word" }, `key "pass word"`},
		{"same keys", func(c *Config) { c.UsernameKey, c.PasswordKey = "k", "k" }, `both be written to key "k"`},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "negative"},
		{"context without kubeconfig", func(c *Config) { c.Kubeconfig = ""; c.Context = "x" }, `context "x" is set without a kubeconfig`},
		{"no such context", func(c *Config) { c.Context = "elsewhere" }, "elsewhere"},
		{"no such file", func(c *Config) { c.Kubeconfig = filepath.Join(t.TempDir(), "none") }, "no such file"},
		{"not in a pod", func(c *Config) { c.Kubeconfig = "" }, "not running in a pod"},
		{"the context", func(c *Config) { c.Context = "kubetest-admin" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			tg, err := New(c)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New = %v, want an error saying %q", err, tc.want)
			}
			if err == nil && (tg.cfg.UsernameKey != "username" || tg.cfg.PasswordKey != "password" || tg.cfg.Timeout != DefaultTimeout) {
				t.Errorf("defaults not applied: %+v", tg.cfg)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tg := target(t, "orders", "orders-mongo")
	if got := tg.Describe(); got != "Kubernetes Secret orders/orders-mongo" {
		t.Errorf("Describe = %q", got)
	}
	tg = target(t, "orders", "orders-mongo", func(c *Config) { c.Context = "kubetest-admin" })
	if got := tg.Describe(); got != "Kubernetes Secret orders/orders-mongo via kubeconfig context kubetest-admin" {
		t.Errorf("Describe = %q", got)
	}
}

// Every failure the tests can provoke, with one credential; none of their texts, nor anything
// client-go logged meanwhile, holds the password (clear or base64) or a bearer token.
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	c := credential("orders", 100)
	reader, err := srv.UserKubeconfig("reader", ns, []string{"get"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(reader)
	readerToken := tokenIn(string(b))
	const bogus = "bogus-token-6b1f0a8e42c7d3"
	if err := srv.PutSecret(ns, "s", map[string]string{"password": "x"}); err != nil {
		t.Fatal(err)
	}

	var errs []error
	tg := target(t, ns, "s")
	tg.beforeWrite = func() { srv.PutSecret(ns, "s", map[string]string{"other": "y"}) }
	_, err = tg.Deliver(ctx, c) // conflict
	errs = append(errs, err)
	tg.beforeWrite = nil
	version, err := tg.Deliver(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	srv.PutSecret(ns, "s", map[string]string{"password": "changed"})
	_, err = tg.Verify(ctx, c, version) // mismatch
	errs = append(errs, err)
	for _, name := range []string{"s", "new"} { // update and create refused
		_, err = target(t, ns, name, func(cf *Config) { cf.Kubeconfig = reader }).Deliver(ctx, c)
		errs = append(errs, err)
	}
	_, err = target(t, ns, "s", func(cf *Config) { cf.Kubeconfig = writeKubeconfigWithToken(t, bogus) }).Deliver(ctx, c)
	errs = append(errs, err) // unauthorized
	_, err = target(t, ns+"-none", "s").Deliver(ctx, c)
	errs = append(errs, err) // no namespace

	for _, err := range errs {
		if err == nil {
			t.Fatal("a forced failure did not fail")
		}
		kinds := 0
		for _, k := range []error{delivery.ErrConflict, delivery.ErrRejected, delivery.ErrMismatch} {
			if errors.Is(err, k) {
				kinds++
			}
		}
		if kinds != 1 {
			t.Errorf("%v: wraps %d delivery kinds, want 1", err, kinds)
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			noSecret(t, text, c.Password.Reveal(), srv.AdminToken(), readerToken, bogus)
		}
	}
	logged := klogOut.String()
	noSecret(t, logged, c.Password.Reveal(), srv.AdminToken(), readerToken, bogus)
	t.Logf("client-go logged %d bytes so far in this test binary", len(logged))
	if readerToken == "" {
		t.Error("no token found in the reader's kubeconfig")
	}
}

func tokenIn(kubeconfig string) string {
	_, after, ok := strings.Cut(kubeconfig, `"token": "`)
	if !ok {
		return ""
	}
	tok, _, _ := strings.Cut(after, `"`)
	return tok
}
