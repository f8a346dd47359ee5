package connector

import (
	"context"
	"fmt"
	"runtime"
	"sync"
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

// TestThousandConnectors: a thousand connectors (one emulator behind a thousand names) cost
// little to configure, and once each has been used and left idle, nothing of them runs. The
// figures are logged, not bounded by time: a slow machine must not fail it.
func TestThousandConnectors(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a thousand discoveries")
	}
	const n = 1000
	s := startIdleEmulator(t)
	uri := secret.New(s.URI())
	goroutines := runtime.NumGoroutine()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	ms := make([]*Mongo, n)
	for i := range ms {
		m, err := New(Config{Name: fmt.Sprintf("c%04d", i), URI: uri, IdleTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
	}
	made := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("New × %d: %v, heap %+.1f MiB, %d goroutines (%d before)", n, made, float64(heap)/(1<<20), runtime.NumGoroutine(), goroutines)
	if heap > 50<<20 {
		t.Errorf("%d connectors hold %.1f MiB of heap; want under 50 MiB", n, float64(heap)/(1<<20))
	}
	for _, m := range ms {
		if m.clientOpen() {
			t.Fatalf("%s: New made a client", m.Name())
		}
	}
	defer func() {
		for _, m := range ms {
			m.Close(context.Background())
		}
	}()

	// One discovery on each, sixteen at a time; each client closes 200ms after its use.
	start = time.Now()
	peak := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, m := range ms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := m.Discover(ctx); err != nil {
				t.Errorf("%s: %v", m.Name(), err)
			}
			mu.Lock()
			peak = max(peak, runtime.NumGoroutine())
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("Discover × %d, 16 at a time: %v, at most %d goroutines", n, time.Since(start), peak)
	if t.Failed() {
		return
	}
	start = time.Now()
	for _, m := range ms {
		waitClosed(t, m, 30*time.Second)
	}
	// Closed clients' goroutines (monitors, pools, the emulator's side) wind down.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > goroutines+20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	g := runtime.NumGoroutine()
	t.Logf("all %d clients closed %v after the last discovery; %d goroutines (%d before New)", n, time.Since(start), g, goroutines)
	if g > goroutines+20 {
		t.Errorf("%d goroutines after every client closed, %d before: idle connectors still run something", g, goroutines)
	}
}
