package slacktest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// open opens a socket as slack-go does: apps.connections.open with an app-level token, then
// the URL it answers; it returns the socket after reading its hello.
func open(t *testing.T, s *Server, token string) *websocket.Conn {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"apps.connections.open", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OK    bool
		URL   string
		Error string
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.OK {
		t.Fatalf("apps.connections.open: %v %s", err, out.Error)
	}
	c, _, err := websocket.DefaultDialer.Dial(out.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var hello map[string]any
	if err := c.ReadJSON(&hello); err != nil || hello["type"] != "hello" {
		t.Fatalf("hello: %v %v", err, hello)
	}
	return c
}

// envelopeID reads the next envelope on c.
func envelopeID(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var env struct {
		EnvelopeID string `json:"envelope_id"`
	}
	if err := c.ReadJSON(&env); err != nil {
		t.Fatal(err)
	}
	return env.EnvelopeID
}

// With several sockets allowed, each replica's socket stays open, envelopes are spread across
// them, Route says which got each, and dropping one leaves the others serving everything.
func TestSeveralSockets(t *testing.T) {
	s := New()
	defer s.Close()
	s.SetSockets(3, nil)
	a, b := open(t, s, s.AppTokenFor("a")), open(t, s, s.AppTokenFor("b"))
	if !s.ConnectedAs("a") || !s.ConnectedAs("b") {
		t.Fatal("both sockets should be open")
	}
	got := map[string]string{}
	for range 4 {
		id, err := s.SlashCommand("U1", "C1", "/mongo", "help")
		if err != nil {
			t.Fatal(err)
		}
		got[id] = s.Route(id)
	}
	for _, want := range []struct {
		c     *websocket.Conn
		label string
	}{{a, "a"}, {b, "b"}} {
		for range 2 {
			if id := envelopeID(t, want.c); got[id] != want.label {
				t.Fatalf("envelope %s came on socket %s, Route says %q", id, want.label, got[id])
			}
		}
	}
	// A replica reconnecting replaces its own socket, never another's, even at the limit.
	s.SetSockets(2, nil)
	tokA := s.AppTokenFor("a")
	open(t, s, tokA)
	if !s.ConnectedAs("b") {
		t.Fatal("a reconnecting closed b's socket")
	}
	s.DropLabel("a")
	if err := s.Wait(5*time.Second, "a to close", func(s *Server) bool { return !s.ConnectedAs("a") }); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, err := s.SlashCommand("U1", "C1", "/mongo", "help")
		if err != nil || s.Route(id) != "b" {
			t.Fatalf("with a dropped, envelope %s went to %q (%v)", id, s.Route(id), err)
		}
		if envelopeID(t, b) != id {
			t.Fatal("b did not get it")
		}
	}
	// One socket allowed: a new one replaces the old, as before.
	s.SetSockets(1, nil)
	open(t, s, s.AppToken)
	if s.ConnectedAs("b") {
		t.Fatal("with one socket allowed, a new one should close the old")
	}
	if _, err := s.SlashCommand("U1", "C1", "/mongo", "help"); err != nil {
		t.Fatal(err)
	}
}
