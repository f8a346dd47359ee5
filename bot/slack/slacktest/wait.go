package slacktest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Connections is how many sockets the bot has opened.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Connected reports whether the bot has a socket open.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open) > 0
}

// ConnectedAs reports whether a socket opened with the token labelled label is open.
func (s *Server) ConnectedAs(label string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.open, func(o *socketConn) bool { return o.label == label })
}

// Calls is every Web API call served so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsSince is the Web API calls served after the first n (Calls()[n:], without copying the
// rest): a load generator watching for its answers reads only the new ones.
func (s *Server) CallsSince(n int) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n >= len(s.calls) {
		return nil
	}
	return append([]Call(nil), s.calls[n:]...)
}

// CallCount is how many Web API calls were served so far.
func (s *Server) CallCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// GroupLookups is how many usergroups.users.list calls for group have been answered
// (rate-limited and failed ones included).
func (s *Server) GroupLookups(group string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Method == "usergroups.users.list" && c.Args.Get("usergroup") == group {
			n++
		}
	}
	return n
}

// Messages is every message posted so far (in its latest state), in posting order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, *s.messages[k])
	}
	return out
}

// AckLatency is the time between sending envelope id and its ack; false when not acked.
func (s *Server) AckLatency(id string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.acks[id]
	if !ok {
		return 0, false
	}
	return at.Sub(s.sent[id]), true
}

// Wait waits until cond holds over the stand-in's state, or fails after timeout with what
// it was waiting for.
func (s *Server) Wait(timeout time.Duration, what string, cond func(s *Server) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
			// State outside the stand-in (the store, the server) may be what cond reads.
		case <-deadline.C:
			return fmt.Errorf("slacktest: waited %s for %s", timeout, what)
		}
	}
}

// Find returns the last message that match accepts.
func (s *Server) Find(match func(Message) bool) (Message, bool) {
	ms := s.Messages()
	for i := len(ms) - 1; i >= 0; i-- {
		if match(ms[i]) {
			return ms[i], true
		}
	}
	return Message{}, false
}

// WaitMessage waits for a message that match accepts and returns the last such.
func (s *Server) WaitMessage(timeout time.Duration, what string, match func(Message) bool) (Message, error) {
	var m Message
	err := s.Wait(timeout, what, func(s *Server) bool {
		var ok bool
		m, ok = s.Find(match)
		return ok
	})
	return m, err
}

// Containing matches messages whose text or blocks contain every one of parts.
func Containing(parts ...string) func(Message) bool {
	return func(m Message) bool {
		all := m.All()
		for _, p := range parts {
			if !strings.Contains(all, p) {
				return false
			}
		}
		return true
	}
}

// WaitAck waits until envelope id is acknowledged, and returns its latency.
func (s *Server) WaitAck(id string, timeout time.Duration) (time.Duration, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		at, ok := s.acks[id]
		sent := s.sent[id]
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return at.Sub(sent), nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return 0, fmt.Errorf("slacktest: envelope %s not acknowledged within %s", id, timeout)
		}
	}
}
