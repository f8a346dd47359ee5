package bot_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
)

var flagViews = flag.String("write-views", "", "write the request form and a home tab as the bot sent them (Block Kit JSON) to this folder (docs/views)")

// writeView writes the view of the last call to method as the bot sent it, for the README
// (go test ./bot -run 'TestRequestForm|TestAppHome' -write-views ../docs/views).
func (e *env) writeView(method, file string) {
	e.t.Helper()
	if *flagViews == "" {
		return
	}
	var last string
	for _, c := range e.slack.Calls() {
		if c.Method == method && c.Error == "" {
			last = c.Args.Get("json")
		}
	}
	var body struct {
		View json.RawMessage `json:"view"`
	}
	if err := json.Unmarshal([]byte(last), &body); err != nil {
		e.t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body.View, "", "  "); err != nil {
		e.t.Fatal(err)
	}
	out.WriteString("\n")
	if err := os.WriteFile(filepath.Join(*flagViews, file), out.Bytes(), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// modal waits for user's latest modal to satisfy cond.
func (e *env) modal(what, user string, cond func(slacktest.View) bool) slacktest.View {
	e.t.Helper()
	v, err := e.slack.WaitModal(wait, what, user, cond)
	if err != nil {
		e.t.Fatalf("%v\nmessages:\n%s", err, e.dump())
	}
	return v
}

// choose changes field of user's modal v to value, as a person picking from a select with
// dispatch_action, and waits for the form shown again with the fields that choice needs.
func (e *env) choose(user string, v slacktest.View, field, value string, then ...string) slacktest.View {
	e.t.Helper()
	id, err := e.slack.ViewAction(user, v, field, value)
	if err != nil {
		e.t.Fatal(err)
	}
	e.acked(id)
	return e.modal("the form after choosing "+field, user, func(x slacktest.View) bool {
		if x.ID != v.ID || x.Updates <= v.Updates {
			return false
		}
		for _, f := range then {
			if _, ok := x.Field(f); !ok {
				return false
			}
		}
		return true
	})
}

func (e *env) home(user string, parts ...string) slacktest.View {
	e.t.Helper()
	v, err := e.slack.WaitHome(wait, user, parts...)
	if err != nil {
		e.t.Fatalf("%v\nhome now: %s", err, func() string { h, _ := e.slack.Home(user); return h.All() }())
	}
	return v
}

// The request form, through the Slack stand-in with Slack's own payload shapes: /mongo alone
// opens it, fields appear as the action needs them, users and roles come from the server as
// the person types, errors come back on their field, and a good submission is the same
// request a typed command makes.
func TestRequestForm(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.createUser("reporting", connector.Role{Name: "read", DB: "shop"})

	e.command(dev, "")
	v := e.modal("the request form", dev, func(v slacktest.View) bool { _, ok := v.Field("action"); return ok })
	if v.CallbackID == "" || v.Title != "MongoDB request" {
		t.Fatalf("modal %+v", v)
	}
	if got := v.Options("action"); !slices.Contains(got, "access") || !slices.Contains(got, "grant-role") {
		t.Fatalf("actions offered: %v", got)
	}
	if _, ok := v.Field("user"); ok {
		t.Fatal("a user field before any action was chosen")
	}
	v = e.choose(dev, v, "action", "grant-role", "connector", "user", "role", "for", "reason")
	v = e.choose(dev, v, "connector", "prod", "user")

	users, err := e.slack.Suggest(dev, v, "user", "rep")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(users, []string{"reporting@admin"}) {
		t.Fatalf("users offered for %q: %v", "rep", users)
	}
	roles, err := e.slack.Suggest(dev, v, "role", "@shop")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(roles, "read@shop") || !slices.Contains(roles, "readWrite@shop") {
		t.Fatalf("roles offered for @shop: %v", roles)
	}

	// Missing the role: the error is on the role field, and nothing is requested.
	e.slack.Fill(v, "user", "app@admin")
	errs, err := e.slack.Submit(dev, v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs["role"], "needs <role>") {
		t.Fatalf("errors %v, want one on role", errs)
	}
	// A role name MongoDB would refuse: on the role field too.
	e.slack.Fill(v, "role", "read@bad db")
	if errs, _ = e.slack.Submit(dev, v); errs["role"] == "" {
		t.Fatalf("errors %v, want one on role", errs)
	}
	if rs, _, _ := e.st.Requests(0, 10); len(rs) != 0 {
		t.Fatalf("%d requests after refused submissions", len(rs))
	}

	e.writeView("views.update", "request-form.json")
	e.slack.Fill(v, "role", "read@shop")
	e.slack.Fill(v, "for", "4h")
	e.slack.Fill(v, "reason", "OPS-7 <!channel>")
	if errs, err = e.slack.Submit(dev, v); err != nil || errs != nil {
		t.Fatalf("submission refused: %v, %v", errs, err)
	}
	card := e.card("Request #1", "grant-role `app@admin` role `read@shop` on prod for 4h", "OPS-7 &lt;!channel&gt;")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*")
	if !e.state("app").HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Fatal("the form's grant did not happen")
	}

	// Just-in-time access through the form, from the global shortcut: a role the policy does
	// not offer is an error on the roles field; then a good one. Bob's legacy user name,
	// which he can change, says alice: the user is named after his id all the same.
	e.slack.SetUserName(bob, "alice")
	id, err := e.slack.Shortcut(bob, "mongobot_request")
	if err != nil {
		t.Fatal(err)
	}
	e.acked(id)
	a := e.modal("the form from the shortcut", bob, func(v slacktest.View) bool { return v.Title == "MongoDB request" })
	a = e.choose(bob, a, "action", "access", "roles", "for")
	if got := a.Options("connector"); !slices.Equal(got, []string{"prod"}) {
		t.Fatalf("connectors offered for access: %v (only those with a jit policy)", got)
	}
	a = e.choose(bob, a, "connector", "prod", "roles")
	if got := a.Options("for"); slices.Contains(got, "8h") || !slices.Contains(got, "4h") {
		t.Fatalf("durations offered for access: %v (the policy's bound is 4h)", got)
	}
	e.slack.Fill(a, "roles", "root")
	e.slack.Fill(a, "for", "1h")
	if errs, _ = e.slack.Submit(bob, a); !strings.Contains(errs["roles"], "root@admin is not offered") {
		t.Fatalf("errors %v, want one on roles", errs)
	}
	e.slack.Fill(a, "roles", " , ")
	if errs, _ = e.slack.Submit(bob, a); !strings.Contains(errs["roles"], "needs <role>") {
		t.Fatalf("errors %v, want one on roles", errs)
	}
	e.slack.Fill(a, "roles", "read@shop")
	if errs, err = e.slack.Submit(bob, a); err != nil || errs != nil {
		t.Fatalf("submission refused: %v, %v", errs, err)
	}
	e.card("Request #2", "access `jit-u0bob-", "with `read@shop`")

	// Someone who may not use the bot gets a form that says so, and cannot submit it.
	e.command(eve, "")
	ev := e.modal("eve's form", eve, func(v slacktest.View) bool { return true })
	if _, ok := ev.Field("action"); ok || !strings.Contains(ev.All(), "not on the list of people who may use this bot") {
		t.Fatalf("eve's form: %s", ev.All())
	}
	e.checkNoSecrets()
}

// The App Home: each person's own business, refreshed as it changes; its buttons are judged
// as the cards' are.
func TestAppHome(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createUser("app")
	e.command(dev, "grant-role prod app read@shop --for 4h")
	card := e.card("Request #1")
	e.command(dev, "create-readonly-user prod reader shop")
	card2 := e.card("Request #2")

	// alice looks at her home: both wait for her approval; she approves #1 there.
	if _, err := e.slack.HomeOpened(alice); err != nil {
		t.Fatal(err)
	}
	h := e.home(alice, "Waiting for your approval* (2)", "#1 grant-role", "#2 create-readonly-user", "asked by <@U0DEV>")
	id, err := e.slack.Press(alice, h, homeButton(t, h, bot.TextApprove, 1))
	if err != nil {
		t.Fatal(err)
	}
	e.acked(id)
	e.result(card, "*Done*")
	e.home(alice, "Waiting for your approval* (1)")
	e.writeView("views.publish", "home.json")

	// dev's home: the pending request with Cancel, the temporary grant with its time left.
	if _, err := e.slack.HomeOpened(dev); err != nil {
		t.Fatal(err)
	}
	h = e.home(dev, "Your pending requests* (1)", "#2 create-readonly-user", "Your temporary grants and access* (1)", "4h left")
	if _, ok := h.Find(bot.TextApprove, 0); ok {
		t.Fatal("dev's home offers dev an Approve")
	}
	// eve cannot use the bot: her home says so, and has no buttons but New request.
	if _, err := e.slack.HomeOpened(eve); err != nil {
		t.Fatal(err)
	}
	if eh := e.home(eve, "You may not use this bot"); len(eh.Buttons()) != 1 {
		t.Fatalf("eve's home: %s", eh.All())
	}
	// A forged press on dev's home (another request's id, a wrong token) does nothing.
	forged := slacktest.Button{ActionID: bot.ActCancel, Value: "2.not-the-token", Text: "Cancel"}
	id, _ = e.slack.Press(dev, h, forged)
	e.acked(id)
	e.private(dev, "does not belong to a request as the journal knows it")

	// bob approves #2 on its card; dev's home refreshes: a password waits for dev there.
	e.click(bob, card2, bot.TextApprove)
	e.result(card2, "*Done*")
	h = e.home(dev, "Passwords waiting for you* (1)", "prod/reader@admin", "Your pending requests*")
	reveal, ok := h.Find(bot.TextReveal, 0)
	if !ok {
		t.Fatalf("no Reveal on dev's home: %s", h.All())
	}
	id, _ = e.slack.Press(dev, h, reveal)
	e.acked(id)
	m := e.message("the revealed password", func(m slacktest.Message) bool {
		return m.Ephemeral && m.User == dev && m.Channel == "D"+dev && strings.Contains(m.All(), "Your new password")
	})
	pw := passwordBlockOf(t, m)
	e.secrets = append(e.secrets, pw)
	if err := e.login("reader", pw); err != nil {
		t.Fatalf("the password revealed from the home does not log in: %v", err)
	}
	if err := e.slack.Wait(wait, "dev's home without the revealed password", func(s *slacktest.Server) bool {
		h, _ := s.Home(dev)
		return !strings.Contains(h.All(), "prod/reader@admin")
	}); err != nil {
		t.Fatal(err)
	}

	// Cancel from the home.
	e.command(dev, "revoke-role prod app read@shop")
	e.card("Request #3")
	h = e.home(dev, "#3 revoke-role")
	id, _ = e.slack.Press(dev, h, homeButton(t, h, "Cancel", 3))
	e.acked(id)
	e.private(dev, "Request #3 is cancelled")
	e.checkNoSecrets()
}

// homeButton is the button with text for request id on home h.
func homeButton(t *testing.T, h slacktest.View, text string, id int) slacktest.Button {
	t.Helper()
	for _, b := range h.Buttons() {
		if b.Text == text && strings.HasPrefix(b.Value, fmt.Sprintf("%d.", id)) {
			return b
		}
	}
	t.Fatalf("no %s for request #%d on the home: %s", text, id, h.All())
	return slacktest.Button{}
}

func passwordBlockOf(t *testing.T, m slacktest.Message) string {
	t.Helper()
	x := passwordBlock.FindStringSubmatch(m.All())
	if x == nil {
		t.Fatalf("no password in %s", m.All())
	}
	return x[1]
}

// A home with more than it can show stays within Slack's view limits (the stand-in refuses
// more than 100 blocks): each list shows its first entries and says how many there are.
func TestAppHomeFull(t *testing.T) {
	p := testPolicy()
	p.MaxOpen = 12 // each of dev and bob has 12 open
	e := newEnv(t, envOptions{policy: &p})
	for i := 0; i < 12; i++ {
		u := fmt.Sprintf("svc%02d", i)
		e.createUser(u)
		e.command(dev, "grant-role prod "+u+" read@shop")
		e.card(fmt.Sprintf("Request #%d*", 2*i+1))
		e.command(bob, "lock-user prod "+u)
		e.card(fmt.Sprintf("Request #%d*", 2*i+2))
	}
	if _, err := e.slack.HomeOpened(alice); err != nil {
		t.Fatal(err)
	}
	h := e.home(alice, "Waiting for your approval* (24)")
	if n := len(h.Buttons()); n != 1+2*8 {
		t.Fatalf("%d buttons on a full home, want New request and 8 Approve/Deny pairs", n)
	}
	if _, err := e.slack.HomeOpened(dev); err != nil {
		t.Fatal(err)
	}
	e.home(dev, "Your pending requests* (12)")
	for _, c := range e.slack.Calls() {
		if c.Method == "views.publish" && c.Error != "" {
			t.Fatalf("views.publish refused: %s", c.Error)
		}
	}
}
