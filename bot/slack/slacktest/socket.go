package slacktest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	upstream "github.com/slack-go/slack/slacktest"
)

// socket serves the Socket Mode websocket: hello, pings, envelopes out, acks in. A socket
// opened with a labelled token replaces the one open with it (a replica reconnecting); a
// connection beyond the sockets allowed (SetSockets; one unless set) closes the oldest, as an
// app with one socket reconnecting replaces its old one.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	label := r.URL.Query().Get("as")
	upstream.Websocket(func(c *websocket.Conn) {
		sc := &socketConn{c: c, label: label}
		s.mu.Lock()
		if label != "" {
			s.open = slices.DeleteFunc(s.open, func(o *socketConn) bool {
				if o.label == label {
					o.c.Close()
					return true
				}
				return false
			})
		}
		s.open = append(s.open, sc)
		for len(s.open) > max(s.sockets, 1) {
			s.open[0].c.Close()
			s.open = s.open[1:]
		}
		s.conns++
		n := len(s.open)
		s.notify()
		s.mu.Unlock()
		sc.write(map[string]any{"type": "hello", "num_connections": n,
			"connection_info": map[string]any{"app_id": App}, "debug_info": map[string]any{"host": "standin"}})
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					sc.mu.Lock()
					err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
					sc.mu.Unlock()
					if err != nil {
						return
					}
				}
			}
		}()
		for {
			var ack struct {
				EnvelopeID string          `json:"envelope_id"`
				Payload    json.RawMessage `json:"payload"`
			}
			if err := c.ReadJSON(&ack); err != nil {
				s.mu.Lock()
				s.open = slices.DeleteFunc(s.open, func(o *socketConn) bool { return o == sc })
				s.notify()
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			if _, seen := s.acks[ack.EnvelopeID]; !seen {
				s.acks[ack.EnvelopeID] = time.Now()
				if len(ack.Payload) > 0 {
					s.answers[ack.EnvelopeID] = ack.Payload
				}
			}
			s.notify()
			s.mu.Unlock()
		}
	})(w, r)
}

// socketConn is one open socket, and whose it is: the label of the app-level token it was
// opened with ("" for the stand-in's own AppToken).
type socketConn struct {
	c     *websocket.Conn
	label string
	mu    sync.Mutex // one writer at a time on this socket; others write on theirs meanwhile
}

func (sc *socketConn) write(v any) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.c.WriteJSON(v)
}

// SetSockets lets the app hold up to n sockets at once (Slack allows 10 per app), and spreads
// envelopes across those open: by pick (given how many are open, the index of the one to
// use, oldest first), or in turn when pick is nil.
func (s *Server) SetSockets(n int, pick func(open int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sockets, s.pick = n, pick
}

// AppTokenFor makes another app-level token of the app, as an admin can generate several:
// sockets opened with it are labelled label, so that a test of several replicas knows
// which replica each envelope went to (Route).
func (s *Server) AppTokenFor(label string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.AppToken + "-" + label
	s.tokens[tok] = label
	return tok
}

// Route is the label of the socket envelope id was last written to ("" for the stand-in's own
// token, or when it was never written).
func (s *Server) Route(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes[id]
}

// choose is the socket the next envelope goes to; s.mu is held.
func (s *Server) choose() *socketConn {
	switch n := len(s.open); {
	case n == 0:
		return nil
	case n == 1 || s.sockets <= 1:
		return s.open[n-1]
	case s.pick != nil:
		return s.open[(s.pick(n)%n+n)%n]
	default:
		s.turn++
		return s.open[s.turn%n]
	}
}

// ErrNotConnected is returned when an envelope is sent while the bot has no socket open.
var ErrNotConnected = errors.New("slacktest: the bot has no socket open")

func (s *Server) sendEnvelope(id string, env map[string]any) error {
	raw, _ := json.Marshal(env)
	s.mu.Lock()
	sc := s.choose()
	s.envelopes[id] = raw
	s.sent[id] = time.Now()
	if sc != nil {
		s.routes[id] = sc.label
	}
	s.mu.Unlock()
	if sc == nil {
		return ErrNotConnected
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.c.WriteMessage(websocket.TextMessage, raw)
}

// StartIDsAt makes the stand-in's next ids (envelopes, triggers, timestamps' counters) count
// from n: two stand-ins playing one Slack for two replicas must not repeat each other's ids,
// which Slack never does and the replicas' shared dedupe would rightly drop.
func (s *Server) StartIDsAt(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = n
}

func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s%06d", prefix, s.seq)
}

// SlashCommand delivers a slash_commands envelope, as Slack does when user types
// "command text" in channel, and returns its envelope id.
func (s *Server) SlashCommand(user, channel, command, text string) (string, error) {
	return s.SlashCommandFrom(Team, App, user, channel, command, text)
}

// SlashCommandFrom is SlashCommand with the envelope saying it comes from workspace team
// for app ("" for the stand-in's own), to test that the bot ignores what is not its own.
func (s *Server) SlashCommandFrom(team, app, user, channel, command, text string) (string, error) {
	team, app = cmp.Or(team, Team), cmp.Or(app, App)
	id := s.nextID("env-")
	payload := map[string]any{
		"token": "deprecated-verification-token", "team_id": team, "team_domain": "standin",
		"channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": s.userName(user),
		"command": command, "text": text, "api_app_id": app, "is_enterprise_install": "false",
		"response_url": "https://hooks.slack.test/commands/" + id, "trigger_id": s.newTrigger(user),
	}
	return id, s.sendEnvelope(id, map[string]any{"envelope_id": id, "type": "slash_commands",
		"accepts_response_payload": true, "payload": payload, "retry_attempt": 0, "retry_reason": ""})
}

// Click delivers an interactive block_actions envelope: user pressed button b on message m.
func (s *Server) Click(user string, m Message, b Button) (string, error) {
	return s.ClickFrom(Team, App, user, m, b)
}

// ClickFrom is Click with the envelope saying it comes from workspace team for app (""
// for the stand-in's own).
func (s *Server) ClickFrom(team, app, user string, m Message, b Button) (string, error) {
	team, app = cmp.Or(team, Team), cmp.Or(app, App)
	id := s.nextID("env-")
	payload := map[string]any{
		"type": "block_actions", "team": map[string]any{"id": team, "domain": "standin"},
		"user":       map[string]any{"id": user, "username": user, "team_id": team},
		"api_app_id": app, "token": "deprecated-verification-token", "trigger_id": s.newTrigger(user),
		"container":    map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": m.Ephemeral},
		"channel":      map[string]any{"id": m.Channel, "name": "ops"},
		"message":      map[string]any{"type": "message", "ts": m.TS, "text": m.Text},
		"response_url": "https://hooks.slack.test/actions/" + id,
		"actions": []map[string]any{{"type": "button", "action_id": b.ActionID, "block_id": "b1", "value": b.Value,
			"text": map[string]any{"type": "plain_text", "text": b.Text}, "action_ts": fmt.Sprintf("%d.000000", time.Now().Unix())}},
	}
	return id, s.sendEnvelope(id, map[string]any{"envelope_id": id, "type": "interactive",
		"accepts_response_payload": false, "payload": payload, "retry_attempt": 0, "retry_reason": ""})
}

// Redeliver sends envelope id again, as Slack does when it thinks the ack was lost:
// the same envelope and payload, with retry_attempt incremented.
func (s *Server) Redeliver(id string, attempt int) error {
	s.mu.Lock()
	raw, ok := s.envelopes[id]
	delete(s.acks, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("slacktest: no envelope %s", id)
	}
	var env map[string]any
	_ = json.Unmarshal(raw, &env)
	env["retry_attempt"] = attempt
	env["retry_reason"] = "timeout"
	return s.sendEnvelope(id, env)
}

// Disconnect asks the bot to reconnect, as Slack does before it recycles a connection (the
// newest socket, when there are several).
func (s *Server) Disconnect(reason string) error {
	s.mu.Lock()
	var sc *socketConn
	if n := len(s.open); n > 0 {
		sc = s.open[n-1]
	}
	s.mu.Unlock()
	if sc == nil {
		return ErrNotConnected
	}
	return sc.write(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "standin"}})
}

// Drop closes every socket without a word, as a network failure does.
func (s *Server) Drop() { s.DropLabel("*") }

// DropLabel closes, without a word, the sockets opened with the token labelled label ("*":
// every socket).
func (s *Server) DropLabel(label string) {
	s.mu.Lock()
	var drop []*socketConn
	s.open = slices.DeleteFunc(s.open, func(o *socketConn) bool {
		if label == "*" || o.label == label {
			drop = append(drop, o)
			return true
		}
		return false
	})
	s.mu.Unlock()
	for _, o := range drop {
		o.c.Close()
	}
}
