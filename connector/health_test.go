package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// TestBreaker black-holes the emulator behind a proxy: the connector is marked down after two
// unanswered operations, refuses the next ones without sending anything, and is up again once
// its probe gets an answer.
func TestBreaker(t *testing.T) {
	s, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := mongotest.NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, err := connector.New(connector.Config{Name: "flaky", URI: secret.New(p.URI(s.URI())),
		ServerSelectionTimeout: 300 * time.Millisecond, CommandTimeout: 500 * time.Millisecond, ProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx := context.Background()
	u := connector.UserRef{User: "nobody", DB: "admin"}
	if _, err := m.State(ctx, u); err != nil {
		t.Fatal(err)
	}

	p.BlackHole()
	for i := range 2 {
		_, err := m.State(ctx, u)
		if !errors.Is(err, connector.ErrUnavailable) && !errors.Is(err, connector.ErrTimeout) {
			t.Fatalf("operation %d on a black hole: %v, want unavailable or timeout", i+1, err)
		}
		if errors.Is(err, connector.ErrNotSent) {
			t.Fatalf("operation %d was refused before the breaker tripped: %v", i+1, err)
		}
	}
	h := m.Health()
	if !h.Down || h.Failures < 2 {
		t.Fatalf("after two unanswered operations: %+v, want down", h)
	}
	// A caller that gives up says nothing of the server, and is not counted.
	seq := s.AppliedSeq()
	_, err = m.State(ctx, u)
	if !errors.Is(err, connector.ErrNotSent) || !errors.Is(err, connector.ErrUnavailable) || !strings.Contains(err.Error(), "flaky is not answering") {
		t.Fatalf("while down: %v, want a refusal that sent nothing", err)
	}
	if _, _, err := m.RotatePassword(ctx, connector.RotateOptions{User: u}); !errors.Is(err, connector.ErrNotSent) {
		t.Fatalf("a rotation while down: %v, want a refusal that sent nothing", err)
	}
	if err := m.Login(ctx, u, secret.New("x")); !errors.Is(err, connector.ErrNotSent) {
		t.Fatalf("a login while down: %v, want a refusal that sent nothing", err)
	}
	if s.AppliedSeq() != seq {
		t.Fatal("the server applied something while the connector was down")
	}
	t.Logf("refused while down: %v", err)

	p.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for m.Health().Down {
		if time.Now().After(deadline) {
			t.Fatalf("still down 20s after the server answers again: %+v", m.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := m.State(ctx, u); err != nil {
		t.Fatalf("after the probe got an answer: %v", err)
	}
}

// TestBreakerIgnoresCallersThatGiveUp: operations whose caller cancelled them do not count.
func TestBreakerIgnoresCallersThatGiveUp(t *testing.T) {
	s, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := connector.New(connector.Config{Name: "fine", URI: secret.New(s.URI())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		_, _ = m.State(ctx, connector.UserRef{User: "x", DB: "admin"})
	}
	if h := m.Health(); h.Down || h.Failures != 0 {
		t.Fatalf("cancelled operations counted: %+v", h)
	}
}
