package connector

import (
	"context"
	"testing"
	"time"

	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// waitClosed waits, with a deadline, until m has closed its client for idleness.
func waitClosed(t *testing.T, m *Mongo, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for m.clientOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the client is still open %v after its last use (IdleTimeout %v)", m.Name(), within, m.cfg.IdleTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startIdleEmulator(t *testing.T) *mongotest.Server {
	t.Helper()
	s, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestIdleClose(t *testing.T) {
	s := startIdleEmulator(t)
	m, err := New(Config{Name: "idle", URI: secret.New(s.URI()), IdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if m.clientOpen() {
		t.Fatal("New made a client: it must not touch the network")
	}
	ctx := context.Background()
	if _, err := m.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.clientOpen() {
		t.Fatal("no client after Discover")
	}
	waitClosed(t, m, 10*time.Second)

	// The next use makes a new client.
	m.mu.Lock()
	m.info = nil // Discover again, not from the cache
	m.mu.Unlock()
	info, err := m.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover after the idle close: %v", err)
	}
	if info.Version == "" {
		t.Errorf("Discover after the idle close: no version in %+v", info)
	}
	waitClosed(t, m, 10*time.Second)
}

// TestIdleCloseNotInFlight checks that an operation in flight keeps the client open past the
// idle timeout, and that the countdown starts when it ends.
func TestIdleCloseNotInFlight(t *testing.T) {
	s := startIdleEmulator(t)
	m, err := New(Config{Name: "busy", URI: secret.New(s.URI()), IdleTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	c, release, err := m.acquire()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // four idle timeouts, with an operation in flight
	if !m.clientOpen() {
		t.Fatal("the client was closed while an operation was in flight")
	}
	if err := c.Ping(context.Background(), nil); err != nil {
		t.Fatalf("ping on the in-flight client: %v", err)
	}
	release()
	release() // a second call does nothing
	waitClosed(t, m, 10*time.Second)
}

func TestCloseStopsIdleTimer(t *testing.T) {
	s := startIdleEmulator(t)
	m, err := New(Config{Name: "stop", URI: secret.New(s.URI()), IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.clientOpen() {
		t.Fatal("client open after Close")
	}
	if _, _, err := m.acquire(); err == nil {
		t.Fatal("acquire after Close made a client")
	}
}
