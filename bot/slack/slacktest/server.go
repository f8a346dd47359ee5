package slacktest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	upstream "github.com/slack-go/slack/slacktest"
)

// Call is one Web API call the stand-in served.
type Call struct {
	Method string
	Args   url.Values
	At     time.Time
	// Error is the error the stand-in answered with, "" when ok.
	Error string
}

// Message is a message as the stand-in holds it: its latest text and blocks.
type Message struct {
	Channel, TS, Thread, Text string
	// Ephemeral messages are shown to User only.
	Ephemeral bool
	User      string
	Blocks    []map[string]any
	Updates   int
}

// Buttons are the message's buttons as action id → value, in order.
func (m Message) Buttons() []Button {
	var out []Button
	for _, b := range m.Blocks {
		if b["type"] != "actions" {
			continue
		}
		els, _ := b["elements"].([]any)
		for _, e := range els {
			el, _ := e.(map[string]any)
			t, _ := el["text"].(map[string]any)
			out = append(out, Button{ActionID: str(el["action_id"]), Value: str(el["value"]), Text: str(t["text"])})
		}
	}
	return out
}

// Button is a button on a message.
type Button struct{ ActionID, Value, Text string }

// Find returns the button with that text.
func (m Message) Find(text string) (Button, bool) {
	for _, b := range m.Buttons() {
		if b.Text == text {
			return b, true
		}
	}
	return Button{}, false
}

// All is every text of the message (its text and its blocks' texts), to search in.
func (m Message) All() string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m.Blocks)
	return m.Text + "\n" + b.String()
}

func str(v any) string { s, _ := v.(string); return s }

// The workspace and app the stand-in is: auth.test answers with Team, each socket's hello
// names App, and the envelopes it sends carry both unless a test forges others.
const (
	Team = "T0STANDIN"
	App  = "A0STANDIN"
)

// Server is the stand-in.
type Server struct {
	up *upstream.Server
	// BotToken and AppToken are the tokens it accepts.
	BotToken, AppToken string

	mu        sync.Mutex
	calls     []Call
	messages  map[string]*Message // channel/ts
	order     []string
	ts        int64
	acks      map[string]time.Time
	sent      map[string]time.Time
	envelopes map[string][]byte
	open      []*socketConn // oldest first
	conns     int
	sockets   int                // how many may be open at once (SetSockets)
	pick      func(open int) int // which gets the next envelope (SetSockets)
	turn      int                // in turn, when pick is nil
	tokens    map[string]string  // app-level token -> label (AppTokenFor)
	routes    map[string]string  // envelope id -> label of the socket it went to
	groups    map[string][]string
	groupErr  map[string]string        // user group -> error code its lookups answer
	holds     map[string]chan struct{} // user group -> closed when its lookups may answer
	closing   chan struct{}
	closeOnce sync.Once
	limited   map[string]int
	missing   map[string]bool
	changed   chan struct{}
	seq       int
	// Views (views.go): modals by view id, home tabs by user, trigger ids by id, and the
	// payloads of acks that answered.
	views    map[string]*View
	homes    map[string]*View
	triggers map[string]trigger
	answers  map[string][]byte
	// What check asks about (check.go): the bot token's scopes, the channels the bot is
	// not in, and the user groups that are disabled.
	scopes   []string
	outside  map[string]bool
	disabled map[string]bool
	// legacy are the users' legacy user names (SetUserName); absent: the user's id.
	legacy map[string]string
}

// SetUserName makes Slack's legacy user_name (and username, name) of user say name in the
// payloads it sends from now on: a field its owner can change, so the bot must not trust it.
func (s *Server) SetUserName(user, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.legacy == nil {
		s.legacy = map[string]string{}
	}
	s.legacy[user] = name
}

// userName is what the payloads say in user's legacy name fields.
func (s *Server) userName(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cmp.Or(s.legacy[user], user)
}

// New starts a stand-in.
func New() *Server {
	s := &Server{BotToken: "xoxb-standin", AppToken: "xapp-standin", messages: map[string]*Message{},
		acks: map[string]time.Time{}, sent: map[string]time.Time{}, envelopes: map[string][]byte{}, tokens: map[string]string{}, routes: map[string]string{},
		groups: map[string][]string{}, groupErr: map[string]string{}, holds: map[string]chan struct{}{}, closing: make(chan struct{}),
		limited: map[string]int{}, missing: map[string]bool{}, changed: make(chan struct{}),
		views: map[string]*View{}, homes: map[string]*View{}, triggers: map[string]trigger{}, answers: map[string][]byte{},
		scopes: slices.Clone(ManifestScopes), outside: map[string]bool{}, disabled: map[string]bool{}}
	s.up = upstream.NewTestServer(func(c upstream.Customize) {
		c.Handle("/auth.test", s.web("auth.test", s.authTest))
		c.Handle("/apps.connections.open", s.connectionsOpen)
		c.Handle("/socket", s.socket)
		c.Handle("/chat.postMessage", s.web("chat.postMessage", s.postMessage))
		c.Handle("/chat.update", s.web("chat.update", s.update))
		c.Handle("/chat.postEphemeral", s.web("chat.postEphemeral", s.postEphemeral))
		c.Handle("/conversations.open", s.web("conversations.open", s.conversationsOpen))
		c.Handle("/usergroups.users.list", s.held(s.web("usergroups.users.list", s.usergroupMembers)))
		c.Handle("/usergroups.list", s.web("usergroups.list", s.usergroupsList))
		c.Handle("/conversations.info", s.web("conversations.info", s.conversationsInfo))
		c.Handle("/views.open", s.webJSON("views.open", s.viewsOpen))
		c.Handle("/views.update", s.webJSON("views.update", s.viewsUpdate))
		c.Handle("/views.publish", s.webJSON("views.publish", s.viewsPublish))
	})
	s.up.Start()
	return s
}

// URL is the Web API base URL to give the bot (SLACK_API_URL).
func (s *Server) URL() string { return s.up.GetAPIURL() }

// Close stops the stand-in; lookups HoldGroup holds answer first.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.Drop()
	s.up.Stop()
}

// SetGroup sets the members of a user group.
func (s *Server) SetGroup(group string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = users
}

// FailGroup makes lookups of group's members (usergroups.users.list) answer with the
// error code, as Slack does when it has trouble; "" makes them answer normally again.
func (s *Server) FailGroup(group, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(s.groupErr, group)
		return
	}
	s.groupErr[group] = code
}

// HoldGroup makes lookups of group's members wait, as a slow Slack does, until release is
// called (or the caller gives up, or the stand-in closes). They are recorded in Calls when
// they answer.
func (s *Server) HoldGroup(group string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.holds[group] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.holds[group] == ch {
				delete(s.holds, group)
			}
			s.mu.Unlock()
			close(ch)
		})
	}
}

// held delays next while the user group asked for is held by HoldGroup.
func (s *Server) held(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		hold := s.holds[r.Form.Get("usergroup")]
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
			case <-s.closing:
			}
		}
		next(w, r)
	}
}

// RateLimit makes the next n calls of method answer 429 with Retry-After: 1.
func (s *Server) RateLimit(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited[method] = n
}

// Missing makes posts to channel fail with channel_not_found.
func (s *Server) Missing(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing[channel] = true
}

// Found undoes Missing: channel exists again.
func (s *Server) Found(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.missing, channel)
}

// notify wakes waiters; call with s.mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(code string) map[string]any { return map[string]any{"ok": false, "error": code} }

func token(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.FormValue("token")
}

// web wraps a Web API method: token check, rate limiting, recording.
func (s *Server) web(method string, h func(url.Values) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		call := Call{Method: method, Args: r.Form, At: time.Now()}
		if s.limited[method] > 0 {
			s.limited[method]--
			call.Error = "ratelimited"
			s.calls = append(s.calls, call)
			s.notify()
			s.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			reply(w, fail("ratelimited"))
			return
		}
		var out map[string]any
		if token(r) != s.BotToken {
			out = fail("invalid_auth")
		} else {
			// Slack names the token's scopes on every answer to it.
			w.Header().Set("X-OAuth-Scopes", strings.Join(s.scopes, ","))
			out = h(r.Form)
		}
		s.record(call, out)
		s.mu.Unlock()
		reply(w, out)
	}
}

// record keeps call, answered with out. Call it with s.mu held.
func (s *Server) record(call Call, out map[string]any) {
	if ok, _ := out["ok"].(bool); !ok {
		call.Error = str(out["error"])
	}
	s.calls = append(s.calls, call)
	s.notify()
}

func (s *Server) authTest(url.Values) map[string]any {
	return map[string]any{"ok": true, "url": "https://standin.slack.test/", "team": "Stand-in", "user": "mongobot",
		"team_id": Team, "user_id": "U0BOT", "bot_id": "B0BOT", "is_enterprise_install": false}
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	label, ok := s.tokens[token(r)]
	s.mu.Unlock()
	switch {
	case ok || token(r) == s.AppToken:
	case token(r) == s.BotToken || strings.HasPrefix(token(r), "xoxb-"):
		// Slack's answer to a bot token given where an app-level one belongs.
		reply(w, fail("not_allowed_token_type"))
		return
	default:
		reply(w, fail("invalid_auth"))
		return
	}
	reply(w, map[string]any{"ok": true, "url": "ws://" + s.up.ServerAddr + "/socket?as=" + url.QueryEscape(label)})
}

func (s *Server) nextTS() string {
	s.ts++
	return fmt.Sprintf("1764230400.%06d", s.ts)
}

func (s *Server) store(m *Message) {
	key := m.Channel + "/" + m.TS
	if _, ok := s.messages[key]; !ok {
		s.order = append(s.order, key)
	}
	s.messages[key] = m
}

func (s *Server) postMessage(v url.Values) map[string]any {
	ch := v.Get("channel")
	if ch == "" || s.missing[ch] {
		return fail("channel_not_found")
	}
	blocks, err := checkBlocks(v.Get("blocks"))
	if err != "" {
		return fail(err)
	}
	m := &Message{Channel: ch, TS: s.nextTS(), Thread: v.Get("thread_ts"), Text: v.Get("text"), Blocks: blocks}
	s.store(m)
	return map[string]any{"ok": true, "channel": ch, "ts": m.TS}
}

func (s *Server) update(v url.Values) map[string]any {
	key := v.Get("channel") + "/" + v.Get("ts")
	m, ok := s.messages[key]
	if !ok || m.Ephemeral {
		return fail("message_not_found")
	}
	blocks, err := checkBlocks(v.Get("blocks"))
	if err != "" {
		return fail(err)
	}
	cp := *m
	cp.Text, cp.Blocks, cp.Updates = v.Get("text"), blocks, m.Updates+1
	s.messages[key] = &cp
	return map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": cp.Text}
}

func (s *Server) postEphemeral(v url.Values) map[string]any {
	ch := v.Get("channel")
	if ch == "" || s.missing[ch] {
		return fail("channel_not_found")
	}
	blocks, err := checkBlocks(v.Get("blocks"))
	if err != "" {
		return fail(err)
	}
	m := &Message{Channel: ch, TS: s.nextTS(), Text: v.Get("text"), Blocks: blocks, Ephemeral: true, User: v.Get("user")}
	s.store(m)
	return map[string]any{"ok": true, "message_ts": m.TS}
}

func (s *Server) conversationsOpen(v url.Values) map[string]any {
	users := v.Get("users")
	if users == "" || strings.Contains(users, ",") {
		return fail("invalid_arguments")
	}
	return map[string]any{"ok": true, "channel": map[string]any{"id": "D" + users}}
}

func (s *Server) usergroupMembers(v url.Values) map[string]any {
	if code := s.groupErr[v.Get("usergroup")]; code != "" {
		return fail(code)
	}
	members, ok := s.groups[v.Get("usergroup")]
	if !ok {
		return fail("no_such_subteam")
	}
	return map[string]any{"ok": true, "users": members}
}

// checkBlocks decodes blocks and enforces Slack's limits; it returns Slack's error code.
func checkBlocks(raw string) ([]map[string]any, string) {
	if raw == "" {
		return nil, ""
	}
	var bs []map[string]any
	if err := json.Unmarshal([]byte(raw), &bs); err != nil {
		return nil, "invalid_blocks_format"
	}
	return bs, checkList(bs, 50)
}

// checkList enforces the limits of blocks, at most max of them (50 in a message, 100 in a
// view); it returns Slack's error code, "" when they are within them.
func checkList(bs []map[string]any, max int) string {
	if len(bs) > max {
		return "invalid_blocks"
	}
	runes := func(v any) int {
		t, _ := v.(map[string]any)
		return len([]rune(str(t["text"])))
	}
	for _, b := range bs {
		switch b["type"] {
		case "section":
			if runes(b["text"]) > 3000 {
				return "invalid_blocks"
			}
			fs, _ := b["fields"].([]any)
			if len(fs) > 10 {
				return "invalid_blocks"
			}
			for _, f := range fs {
				if runes(f) > 2000 {
					return "invalid_blocks"
				}
			}
			if b["text"] == nil && len(fs) == 0 {
				return "invalid_blocks"
			}
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 25 {
				return "invalid_blocks"
			}
			for _, e := range els {
				el, _ := e.(map[string]any)
				if runes(el["text"]) > 75 || len(str(el["value"])) > 2000 || len(str(el["action_id"])) > 255 {
					return "invalid_blocks"
				}
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				return "invalid_blocks"
			}
		}
	}
	return ""
}
