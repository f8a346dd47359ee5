package kubesecret

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mongobot/delivery"
	"mongobot/delivery/kubesecret/kubetest"
)

// An API server that hangs, then one that is gone: both are plain errors (the bot retries),
// neither wraps a delivery kind, and both say what happened. It runs on a server of its own,
// since it stops it.
func TestAPIServerDown(t *testing.T) {
	s, err := kubetest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("a second real kube-apiserver: %v", err)
	}
	defer s.Stop()
	t.Logf("kubernetes: %s (ready in %s)", s, s.Startup.Round(time.Millisecond))
	if err := s.Namespace("orders"); err != nil {
		t.Fatal(err)
	}
	tg, err := New(Config{Namespace: "orders", Name: "orders-mongo", Kubeconfig: s.Kubeconfig, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := credential("orders", 90)
	if _, err := tg.Deliver(ctx, c); err != nil {
		t.Fatalf("Deliver while the server is up: %v", err)
	}
	transient := func(what string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, kind := range []error{delivery.ErrConflict, delivery.ErrRejected, delivery.ErrMismatch} {
			if errors.Is(err, kind) {
				t.Errorf("%s: %v wraps %v; want a plain error, which the bot retries", what, err, kind)
			}
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q does not say %q", what, err, want)
		}
		noSecret(t, err.Error(), c.Password.Reveal(), s.AdminToken())
		t.Logf("%s: %v", what, err)
	}

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = tg.Deliver(ctx, c)
	took := time.Since(start)
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	transient("hung", err, "no answer from the Kubernetes API server at "+s.URL+" within 1s")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung: %v does not wrap context.DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Errorf("hung: Deliver took %s with a 1s timeout", took)
	}

	start = time.Now()
	s.Stop()
	t.Logf("the server stopped in %s", time.Since(start).Round(time.Millisecond))
	_, err = tg.Deliver(ctx, c)
	transient("stopped", err, "cannot reach the Kubernetes API server at "+s.URL+": dial tcp")
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("stopped: %q does not say connection refused", err)
	}
	_, err = tg.Verify(ctx, c, "resourceVersion 1")
	transient("stopped, Verify", err, "cannot reach")
	transient("stopped, Check", tg.Check(ctx), "cannot reach")
}
