package slacktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// View is a modal or a home tab as the stand-in holds it: what the bot sent (its blocks),
// and what the person typed or chose in it so far (Values, by block id: the bot's forms use
// one element per input block).
type View struct {
	ID, Hash, Type, User    string
	CallbackID, PrivateMeta string
	Title                   string
	Blocks                  []map[string]any
	// Values are the person's input, by block id: a selected option's value, a text, or
	// "true" for a checked box.
	Values map[string]string
	// Updates counts views.update (modals) or views.publish (home tabs) after the first.
	Updates int
}

// All is every text of the view, to search in.
func (v View) All() string {
	return Message{Text: v.Title, Blocks: v.Blocks}.All()
}

// Buttons are the view's buttons, in order.
func (v View) Buttons() []Button { return Message{Blocks: v.Blocks}.Buttons() }

// Find returns the n-th button (from 0) with that text.
func (v View) Find(text string, n int) (Button, bool) {
	for _, b := range v.Buttons() {
		if b.Text == text {
			if n == 0 {
				return b, true
			}
			n--
		}
	}
	return Button{}, false
}

// Field is one input block of a modal: its block id and its element.
func (v View) Field(id string) (map[string]any, bool) {
	for _, b := range v.Blocks {
		if b["type"] == "input" && b["block_id"] == id {
			el, _ := b["element"].(map[string]any)
			return el, true
		}
	}
	return nil, false
}

// Options are the static options of field id, as values.
func (v View) Options(id string) []string {
	el, _ := v.Field(id)
	var out []string
	opts, _ := el["options"].([]any)
	for _, o := range opts {
		m, _ := o.(map[string]any)
		out = append(out, str(m["value"]))
	}
	return out
}

// trigger is a trigger id the stand-in gave in an envelope: usable once, for 3 seconds, by
// the bot answering that person (Slack's rule for views.open).
type trigger struct {
	user   string
	issued time.Time
	used   bool
}

// triggerLife is how long a trigger id opens a modal.
const triggerLife = 3 * time.Second

func (s *Server) newTrigger(user string) string {
	id := s.nextID("trigger-")
	s.mu.Lock()
	s.triggers[id] = trigger{user: user, issued: time.Now()}
	s.mu.Unlock()
	return id
}

// webJSON wraps a Web API method that takes a JSON body (the views.* methods): token check,
// recording. The body is recorded as the call's "json" argument.
func (s *Server) webJSON(method string, h func(body map[string]any) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		call := Call{Method: method, Args: url.Values{"json": {string(raw)}}, At: time.Now()}
		var out map[string]any
		var body map[string]any
		switch {
		case token(r) != s.BotToken:
			out = fail("invalid_auth")
		case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
			out = fail("invalid_arguments")
		case json.Unmarshal(raw, &body) != nil:
			out = fail("invalid_json")
		default:
			out = h(body)
		}
		s.record(call, out)
		s.mu.Unlock()
		reply(w, out)
	}
}

// checkView enforces Slack's limits on a view (reference: expectations.md, Slack's view and
// Block Kit references): 100 blocks, private_metadata of 3,000 characters, callback_id of
// 255, a modal's title, submit and close of 24, unique block ids, input labels and hints of
// 2,000, select options 100 per list, 75 characters of text and 150 of value each.
func checkView(view map[string]any, modal bool) string {
	var bs []map[string]any
	raw, _ := json.Marshal(view["blocks"])
	if json.Unmarshal(raw, &bs) != nil {
		return "invalid_arguments"
	}
	if code := checkList(bs, 100); code != "" {
		return code
	}
	if len([]rune(str(view["private_metadata"]))) > 3000 || len(str(view["callback_id"])) > 255 {
		return "invalid_arguments"
	}
	text := func(v any) string { t, _ := v.(map[string]any); return str(t["text"]) }
	if modal {
		if t := text(view["title"]); t == "" || len([]rune(t)) > 24 {
			return "invalid_arguments"
		}
		for _, k := range []string{"submit", "close"} {
			if len([]rune(text(view[k]))) > 24 {
				return "invalid_arguments"
			}
		}
	}
	ids := map[string]bool{}
	for _, b := range bs {
		if id := str(b["block_id"]); id != "" {
			if ids[id] || len(id) > 255 {
				return "invalid_arguments"
			}
			ids[id] = true
		}
		if b["type"] != "input" {
			continue
		}
		if !modal {
			return "invalid_arguments" // a home tab has no inputs
		}
		if l := text(b["label"]); l == "" || len([]rune(l)) > 2000 || len([]rune(text(b["hint"]))) > 2000 {
			return "invalid_arguments"
		}
		el, _ := b["element"].(map[string]any)
		if len(str(el["action_id"])) > 255 {
			return "invalid_arguments"
		}
		opts, _ := el["options"].([]any)
		if el["type"] == "static_select" && (len(opts) == 0 || len(opts) > 100) {
			return "invalid_arguments"
		}
		if el["type"] == "checkboxes" && (len(opts) == 0 || len(opts) > 10) {
			return "invalid_arguments"
		}
		for _, o := range opts {
			if !option(o) {
				return "invalid_arguments"
			}
		}
	}
	return ""
}

// option checks one option object: a plain text of at most 75 characters and a value of at
// most 150.
func option(o any) bool {
	m, _ := o.(map[string]any)
	t, _ := m["text"].(map[string]any)
	return t != nil && str(t["text"]) != "" && len([]rune(str(t["text"]))) <= 75 && str(m["value"]) != "" && len(str(m["value"])) <= 150
}

func (s *Server) newView(typ, user string, view map[string]any) *View {
	s.seq++
	v := &View{ID: fmt.Sprintf("V%06d", s.seq), Type: typ, User: user, Values: map[string]string{}}
	s.fillView(v, view)
	return v
}

// fillView sets v's content from the view object the bot sent, and gives it a new hash.
func (s *Server) fillView(v *View, view map[string]any) {
	s.seq++
	v.Hash = fmt.Sprintf("%d.hash%06d", time.Now().Unix(), s.seq)
	raw, _ := json.Marshal(view["blocks"])
	v.Blocks = nil
	_ = json.Unmarshal(raw, &v.Blocks)
	v.CallbackID, v.PrivateMeta = str(view["callback_id"]), str(view["private_metadata"])
	t, _ := view["title"].(map[string]any)
	v.Title = str(t["text"])
	// An input block's initial value stands for what the person has until they change it.
	for _, b := range v.Blocks {
		el, _ := b["element"].(map[string]any)
		id := str(b["block_id"])
		if el == nil || id == "" {
			continue
		}
		if o, ok := el["initial_option"].(map[string]any); ok {
			v.Values[id] = str(o["value"])
		}
		if iv := str(el["initial_value"]); iv != "" {
			v.Values[id] = iv
		}
		if os, ok := el["initial_options"].([]any); ok && len(os) > 0 {
			v.Values[id] = "true"
		}
	}
}

func viewJSON(v *View) map[string]any {
	return map[string]any{"id": v.ID, "hash": v.Hash, "type": v.Type, "callback_id": v.CallbackID,
		"private_metadata": v.PrivateMeta, "team_id": Team, "app_id": App, "bot_id": "B0BOT"}
}

func (s *Server) viewsOpen(body map[string]any) map[string]any {
	tid := str(body["trigger_id"])
	t, ok := s.triggers[tid]
	switch {
	case !ok:
		return fail("invalid_trigger_id")
	case t.used || time.Since(t.issued) > triggerLife:
		return fail("expired_trigger_id")
	}
	view, _ := body["view"].(map[string]any)
	if view["type"] != "modal" {
		return fail("invalid_arguments")
	}
	if code := checkView(view, true); code != "" {
		return fail(code)
	}
	t.used = true
	s.triggers[tid] = t
	v := s.newView("modal", t.user, view)
	s.views[v.ID] = v
	return map[string]any{"ok": true, "view": viewJSON(v)}
}

func (s *Server) viewsUpdate(body map[string]any) map[string]any {
	v, ok := s.views[str(body["view_id"])]
	if !ok {
		return fail("not_found")
	}
	if h := str(body["hash"]); h != "" && h != v.Hash {
		return fail("hash_conflict")
	}
	view, _ := body["view"].(map[string]any)
	if code := checkView(view, true); code != "" {
		return fail(code)
	}
	cp := *v
	cp.Values = map[string]string{}
	for k, x := range v.Values {
		cp.Values[k] = x
	}
	s.fillView(&cp, view)
	cp.Updates++
	s.views[v.ID] = &cp
	return map[string]any{"ok": true, "view": viewJSON(&cp)}
}

func (s *Server) viewsPublish(body map[string]any) map[string]any {
	user := str(body["user_id"])
	view, _ := body["view"].(map[string]any)
	if user == "" || view["type"] != "home" {
		return fail("invalid_arguments")
	}
	if code := checkView(view, false); code != "" {
		return fail(code)
	}
	if old, ok := s.homes[user]; ok {
		cp := *old
		cp.Values = map[string]string{}
		s.fillView(&cp, view)
		cp.Updates++
		s.homes[user] = &cp
	} else {
		v := s.newView("home", user, view)
		s.homes[user] = v
	}
	return map[string]any{"ok": true, "view": viewJSON(s.homes[user])}
}

// Modal is user's most recently opened modal, as it is now.
func (s *Server) Modal(user string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *View
	for _, v := range s.views {
		if v.User == user && (best == nil || v.ID > best.ID) {
			best = v
		}
	}
	if best == nil {
		return View{}, false
	}
	return *best, true
}

// Home is user's home tab as last published.
func (s *Server) Home(user string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.homes[user]
	if !ok {
		return View{}, false
	}
	return *v, true
}

// WaitModal waits until user's latest modal satisfies cond.
func (s *Server) WaitModal(wait time.Duration, what, user string, cond func(View) bool) (View, error) {
	var got View
	err := s.Wait(wait, what, func(s *Server) bool {
		v, ok := s.Modal(user)
		got = v
		return ok && cond(v)
	})
	return got, err
}

// WaitHome waits until user's home tab contains every part.
func (s *Server) WaitHome(wait time.Duration, user string, parts ...string) (View, error) {
	var got View
	err := s.Wait(wait, fmt.Sprintf("the home of %s to show %q", user, parts), func(s *Server) bool {
		v, ok := s.Home(user)
		got = v
		if !ok {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(v.All(), p) {
				return false
			}
		}
		return true
	})
	return got, err
}

// Fill sets what the person typed or chose in field id of user's modal v, without telling
// the bot (Slack tells it only of fields with dispatch_action, through ViewAction).
func (s *Server) Fill(v View, id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.views[v.ID]; ok {
		cur.Values[id] = value
	}
}

// state is the view's state object as Slack sends it: values[block_id][action_id] shaped by
// the element's type.
func (s *Server) state(v *View) map[string]any {
	values := map[string]any{}
	for _, b := range v.Blocks {
		el, _ := b["element"].(map[string]any)
		id := str(b["block_id"])
		if el == nil {
			continue
		}
		val, set := v.Values[id]
		typ := str(el["type"])
		st := map[string]any{"type": typ}
		switch typ {
		case "static_select", "external_select":
			if set && val != "" {
				st["selected_option"] = map[string]any{"text": map[string]any{"type": "plain_text", "text": val}, "value": val}
			} else {
				st["selected_option"] = nil
			}
		case "checkboxes":
			opts := []any{}
			if val == "true" {
				if os, _ := el["options"].([]any); len(os) > 0 {
					opts = append(opts, os[0])
				}
			}
			st["selected_options"] = opts
		default:
			if set {
				st["value"] = val
			} else {
				st["value"] = nil
			}
		}
		values[id] = map[string]any{str(el["action_id"]): st}
	}
	return map[string]any{"values": values}
}

// viewPayload is a view object as interaction payloads carry it: the view's content and
// the person's state.
func (s *Server) viewPayload(v *View) map[string]any {
	p := viewJSON(v)
	p["blocks"] = v.Blocks
	p["state"] = s.state(v)
	p["title"] = map[string]any{"type": "plain_text", "text": v.Title}
	p["root_view_id"] = v.ID
	return p
}

// lookup finds view v as the stand-in holds it now (a modal, or user's home).
func (s *Server) lookup(v View) (*View, error) {
	if v.Type == "home" {
		if h, ok := s.homes[v.User]; ok && h.ID == v.ID {
			return h, nil
		}
		return nil, fmt.Errorf("slacktest: no home view %s for %s", v.ID, v.User)
	}
	cur, ok := s.views[v.ID]
	if !ok {
		return nil, fmt.Errorf("slacktest: no view %s", v.ID)
	}
	return cur, nil
}

// base is the common part of an interactive payload from user. It takes s.mu.
func (s *Server) base(typ, user string) map[string]any {
	name := s.userName(user)
	return map[string]any{"type": typ, "team": map[string]any{"id": Team, "domain": "standin"},
		"user":       map[string]any{"id": user, "username": name, "name": name, "team_id": Team},
		"api_app_id": App, "token": "deprecated-verification-token", "is_enterprise_install": false}
}

func (s *Server) interactive(id string, payload map[string]any) error {
	return s.sendEnvelope(id, map[string]any{"envelope_id": id, "type": "interactive",
		"accepts_response_payload": payload["type"] == "view_submission" || payload["type"] == "block_suggestion",
		"payload":                  payload, "retry_attempt": 0, "retry_reason": ""})
}

// Shortcut delivers a global shortcut: user chose callbackID in the shortcuts menu.
func (s *Server) Shortcut(user, callbackID string) (string, error) {
	id := s.nextID("env-")
	p := s.base("shortcut", user)
	p["callback_id"], p["trigger_id"], p["action_ts"] = callbackID, s.newTrigger(user), fmt.Sprintf("%d.000000", time.Now().Unix())
	return id, s.interactive(id, p)
}

// ViewAction delivers block_actions from a view: user changed field (a modal's input with
// dispatch_action) to value, or pressed button b on their home tab (value is then b's).
func (s *Server) ViewAction(user string, v View, actionID, value string) (string, error) {
	s.mu.Lock()
	cur, err := s.lookup(v)
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	action := map[string]any{"action_id": actionID, "block_id": actionID, "action_ts": fmt.Sprintf("%d.000000", time.Now().Unix())}
	if el, ok := cur.Field(actionID); ok {
		cur.Values[actionID] = value
		action["type"] = el["type"]
		action["selected_option"] = map[string]any{"text": map[string]any{"type": "plain_text", "text": value}, "value": value}
	} else {
		action["type"], action["value"], action["block_id"] = "button", value, "b1"
	}
	payload := s.viewPayload(cur)
	s.mu.Unlock()
	id := s.nextID("env-")
	p := s.base("block_actions", user)
	p["container"] = map[string]any{"type": "view", "view_id": v.ID}
	p["trigger_id"], p["view"], p["actions"] = s.newTrigger(user), payload, []any{action}
	return id, s.interactive(id, p)
}

// Press presses button b of user's home tab v.
func (s *Server) Press(user string, v View, b Button) (string, error) {
	return s.ViewAction(user, v, b.ActionID, b.Value)
}

// ErrLate is what the answering helpers return when the bot answered after Slack's window.
var ErrLate = errors.New("slacktest: the bot answered after Slack's 3-second window")

// answer waits for the ack of envelope id and returns its payload; later than 3 seconds is
// ErrLate, as Slack would have shown the person an error by then.
func (s *Server) answer(id string) (json.RawMessage, error) {
	if err := s.Wait(10*time.Second, "the answer to "+id, func(s *Server) bool { _, ok := s.AckLatency(id); return ok }); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks[id].Sub(s.sent[id]) > 3*time.Second {
		return nil, ErrLate
	}
	return s.answers[id], nil
}

// Suggest delivers block_suggestion: user typed query in search field actionID of modal v.
// It returns the options the bot answered with (values), checked against Slack's limits.
func (s *Server) Suggest(user string, v View, actionID, query string) ([]string, error) {
	p := s.base("block_suggestion", user) // before s.mu: base takes it
	s.mu.Lock()
	cur, err := s.lookup(v)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	p["container"] = map[string]any{"type": "view", "view_id": v.ID}
	p["action_id"], p["block_id"], p["value"], p["view"] = actionID, actionID, query, s.viewPayload(cur)
	s.mu.Unlock()
	id := s.nextID("env-")
	if err := s.interactive(id, p); err != nil {
		return nil, err
	}
	raw, err := s.answer(id)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Options []any `json:"options"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("slacktest: block_suggestion answered %s: %v", raw, err)
	}
	if len(ans.Options) > 100 {
		return nil, fmt.Errorf("slacktest: %d options; Slack takes 100", len(ans.Options))
	}
	var out []string
	for _, o := range ans.Options {
		if !option(o) {
			return nil, fmt.Errorf("slacktest: option %v is not within Slack's limits", o)
		}
		out = append(out, str(o.(map[string]any)["value"]))
	}
	return out, nil
}

// Submit delivers view_submission of user's modal v, with what was filled in. It returns
// the errors the bot answered, by block id (none: the modal closes), checked as Slack
// checks them: every key must be a block of the view.
func (s *Server) Submit(user string, v View) (map[string]string, error) {
	trig := s.newTrigger(user)
	p := s.base("view_submission", user) // before s.mu: base takes it
	s.mu.Lock()
	cur, err := s.lookup(v)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	view := s.viewPayload(cur)
	p["trigger_id"], p["view"], p["response_urls"] = trig, view, []any{}
	s.mu.Unlock()
	id := s.nextID("env-")
	if err := s.interactive(id, p); err != nil {
		return nil, err
	}
	raw, err := s.answer(id)
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	var ans struct {
		Action string            `json:"response_action"`
		Errors map[string]string `json:"errors"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("slacktest: view_submission answered %s: %v", raw, err)
	}
	if ans.Action != "errors" {
		return nil, fmt.Errorf("slacktest: view_submission answered response_action %q", ans.Action)
	}
	for k := range ans.Errors {
		if _, ok := cur.Field(k); !ok {
			return nil, fmt.Errorf("slacktest: an error for %q, which is not an input block of the view", k)
		}
	}
	return ans.Errors, nil
}

// HomeOpened delivers app_home_opened: user opened the bot's Home tab.
func (s *Server) HomeOpened(user string) (string, error) {
	id := s.nextID("env-")
	now := time.Now().Unix()
	payload := map[string]any{"token": "deprecated-verification-token", "team_id": Team, "api_app_id": App,
		"event": map[string]any{"type": "app_home_opened", "user": user, "channel": "D" + user, "tab": "home",
			"event_ts": fmt.Sprintf("%d.000000", now)},
		"type": "event_callback", "event_id": "Ev" + strings.TrimPrefix(id, "env-"), "event_time": now,
		"authorizations": []any{map[string]any{"team_id": Team, "user_id": "U0BOT", "is_bot": true}}}
	return id, s.sendEnvelope(id, map[string]any{"envelope_id": id, "type": "events_api",
		"accepts_response_payload": false, "payload": payload, "retry_attempt": 0, "retry_reason": ""})
}
