package slack

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/internal/syncbuf"
)

const slackTestWait = 10 * time.Second

// slackClock is the injected time the group cache ages by.
type slackClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *slackClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *slackClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestSlack is an adapter on a fresh stand-in, watching groups, on clock.
func newTestSlack(t *testing.T, clock *slackClock, groups ...string) (*Adapter, *slacktest.Server, *syncbuf.Buffer) {
	t.Helper()
	srv := slacktest.New()
	t.Cleanup(srv.Close)
	logs := &syncbuf.Buffer{}
	s := New(Config{AppToken: srv.AppToken, BotToken: srv.BotToken, APIURL: srv.URL(), Slash: "/mongo",
		Usergroups: groups, GroupsTTL: 10 * time.Minute, Now: clock.Now,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return s, srv, logs
}

func newSlackClock() *slackClock {
	return &slackClock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
}

// waitFor polls cond until it holds or the deadline passes; for state outside the stand-in.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(slackTestWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", slackTestWait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idle reports whether no lookup of g is under way.
func (s *Adapter) idle(g string) bool {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	return s.groups[g].flight == nil
}

func wantGroups(t *testing.T, s *Adapter, user string, want ...string) {
	t.Helper()
	got, err := s.Groups(context.Background(), user)
	if err != nil {
		t.Fatalf("Groups(%s): %v", user, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Groups(%s) = %v, want %v", user, got, want)
	}
}

func wantLookups(t *testing.T, srv *slacktest.Server, group string, n int) {
	t.Helper()
	if got := srv.GroupLookups(group); got != n {
		t.Fatalf("%d lookups of %s, want %d", got, group, n)
	}
}

func TestGroupsFailClosedWhenNeverKnown(t *testing.T) {
	s, srv, _ := newTestSlack(t, newSlackClock(), "S0DBAS")
	srv.SetGroup("S0DBAS", "U0CAROL")
	srv.FailGroup("S0DBAS", "fatal_error")
	got, err := s.Groups(context.Background(), "U0CAROL")
	if err == nil || got != nil {
		t.Fatalf("Groups = %v, %v; want no groups and an error", got, err)
	}
	if !strings.Contains(err.Error(), "S0DBAS") || !strings.Contains(err.Error(), "fatal_error") {
		t.Fatalf("the error does not say which group and why: %v", err)
	}
	wantLookups(t, srv, "S0DBAS", 1)
	srv.FailGroup("S0DBAS", "")
	wantGroups(t, s, "U0CAROL", "S0DBAS")
	wantLookups(t, srv, "S0DBAS", 2) // a failure is not cached
}

func TestGroupsTTLExpiryRefreshes(t *testing.T) {
	clock := newSlackClock()
	s, srv, _ := newTestSlack(t, clock, "S0DBAS")
	srv.SetGroup("S0DBAS", "U0CAROL")
	wantGroups(t, s, "U0CAROL", "S0DBAS")
	srv.SetGroup("S0DBAS", "U0DAVE")
	clock.Add(s.groupsTTL / 4)
	wantGroups(t, s, "U0CAROL", "S0DBAS") // young enough: no lookup
	wantLookups(t, srv, "S0DBAS", 1)
	clock.Add(s.groupsTTL) // now past the TTL: the call waits for a new list
	wantGroups(t, s, "U0CAROL")
	wantGroups(t, s, "U0DAVE", "S0DBAS")
	wantLookups(t, srv, "S0DBAS", 2)
}

func TestGroupsCachedWithinTTLWhenRefreshFails(t *testing.T) {
	clock := newSlackClock()
	s, srv, logs := newTestSlack(t, clock, "S0DBAS")
	srv.SetGroup("S0DBAS", "U0CAROL")
	wantGroups(t, s, "U0CAROL", "S0DBAS")

	srv.FailGroup("S0DBAS", "fatal_error")
	clock.Add(s.groupsTTL * 6 / 10) // old enough to refresh, young enough to use
	wantGroups(t, s, "U0CAROL", "S0DBAS")
	if err := srv.Wait(slackTestWait, "the refresh", func(srv *slacktest.Server) bool { return srv.GroupLookups("S0DBAS") == 2 }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refresh to end", func() bool { return s.idle("S0DBAS") })
	if !strings.Contains(logs.String(), "user group lookup failed") {
		t.Errorf("the failed refresh is not logged:\n%s", logs)
	}
	wantGroups(t, s, "U0CAROL", "S0DBAS") // the refresh failed; the list is still within its TTL

	clock.Add(s.groupsTTL / 2) // past the TTL of the last good list
	before := srv.GroupLookups("S0DBAS")
	if got, err := s.Groups(context.Background(), "U0CAROL"); err == nil {
		t.Fatalf("Groups = %v past the TTL with Slack failing; want an error", got)
	}
	// One call, at most one lookup (none if the previous refresh was still joined).
	if n := srv.GroupLookups("S0DBAS") - before; n > 1 {
		t.Fatalf("one call made %d lookups", n)
	}
}

func TestGroupsRateLimitedNotRetriedBeforeRetryAfter(t *testing.T) {
	clock := newSlackClock()
	s, srv, _ := newTestSlack(t, clock, "S0DBAS")
	s.lookupTimeout = 300 * time.Millisecond // shorter than the stand-in's Retry-After: 1
	srv.SetGroup("S0DBAS", "U0CAROL")
	srv.RateLimit("usergroups.users.list", 1)
	start := time.Now()
	if _, err := s.Groups(context.Background(), "U0CAROL"); err == nil {
		t.Fatal("no error while rate-limited")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a rate-limited lookup held the call %s", d)
	}
	_, err := s.Groups(context.Background(), "U0CAROL")
	if err == nil || !strings.Contains(err.Error(), "rate-limiting") {
		t.Fatalf("second call: %v, want a rate-limit error without asking Slack", err)
	}
	wantLookups(t, srv, "S0DBAS", 1)
	clock.Add(2 * time.Second)
	wantGroups(t, s, "U0CAROL", "S0DBAS")
	wantLookups(t, srv, "S0DBAS", 2)
}

func TestGroupsSlowGroupDoesNotBlockAnother(t *testing.T) {
	clock := newSlackClock()
	s, srv, _ := newTestSlack(t, clock, "S0SLOW", "S0FAST")
	srv.SetGroup("S0SLOW", "U0CAROL")
	srv.SetGroup("S0FAST", "U0CAROL")
	release := srv.HoldGroup("S0SLOW")
	defer release()

	type result struct {
		groups []string
		err    error
	}
	first := make(chan result, 1)
	go func() {
		g, err := s.Groups(context.Background(), "U0CAROL")
		first <- result{g, err}
	}()
	// The fast group is answered while the slow one is still held.
	if err := srv.Wait(slackTestWait, "the fast group's lookup", func(srv *slacktest.Server) bool { return srv.GroupLookups("S0FAST") == 1 }); err != nil {
		t.Fatal(err)
	}
	wantLookups(t, srv, "S0SLOW", 0)

	// A caller that cannot wait gets an error when its context ends, not a partial list.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := s.Groups(ctx, "U0CAROL")
	if err == nil || got != nil {
		t.Fatalf("Groups = %v, %v with S0SLOW unknown; want an error", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the call waited %s beyond its context", d)
	}

	release()
	select {
	case r := <-first:
		if r.err != nil || !slices.Equal(r.groups, []string{"S0SLOW", "S0FAST"}) {
			t.Fatalf("first call: %v, %v", r.groups, r.err)
		}
	case <-time.After(slackTestWait):
		t.Fatal("the first call did not return after the slow group answered")
	}
	wantLookups(t, srv, "S0SLOW", 1) // the second caller waited for the first's lookup
	wantLookups(t, srv, "S0FAST", 1)

	// A failing group fails the call, and does not cost the other group a lookup.
	clock.Add(s.groupsTTL) // both lists are stale now
	srv.FailGroup("S0SLOW", "fatal_error")
	if _, err := s.Groups(context.Background(), "U0CAROL"); err == nil || !strings.Contains(err.Error(), "S0SLOW") {
		t.Fatalf("Groups with S0SLOW failing: %v", err)
	}
	wantLookups(t, srv, "S0SLOW", 2)
	wantLookups(t, srv, "S0FAST", 2)
}

func TestGroupsConcurrentCallersShareOneLookup(t *testing.T) {
	groups := []string{"S0ONE", "S0TWO"}
	s, srv, _ := newTestSlack(t, newSlackClock(), groups...)
	srv.SetGroup("S0ONE", "U0CAROL", "U0DAVE")
	srv.SetGroup("S0TWO", "U0DAVE")
	var releases []func()
	for _, g := range groups {
		r := srv.HoldGroup(g)
		defer r()
		releases = append(releases, r)
	}
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		user, want := "U0CAROL", []string{"S0ONE"}
		if i%2 == 1 {
			user, want = "U0DAVE", groups
		}
		go func() {
			got, err := s.Groups(context.Background(), user)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("Groups(%s) = %v, want %v", user, got, want)
			}
			errs <- err
		}()
	}
	// Every caller is waiting on the one lookup of each group before Slack answers.
	waitFor(t, "all callers to wait", func() bool {
		s.groupsMu.Lock()
		defer s.groupsMu.Unlock()
		for _, g := range groups {
			if f := s.groups[g].flight; f == nil || f.joined != n {
				return false
			}
		}
		return true
	})
	for _, r := range releases {
		r()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(slackTestWait):
			t.Fatal("a caller did not return")
		}
	}
	for _, g := range groups {
		wantLookups(t, srv, g, 1)
	}
}

// replier answers every command and click it is handed with an ephemeral message, as the
// bot would, so that the test sees which envelopes reached it.
type replier struct{ s *Adapter }

func (r replier) HandleCommand(ctx context.Context, in bot.Invocation) {
	_ = r.s.Ephemeral(ctx, in.Channel, in.User, bot.Message{Text: "command: " + in.Text})
}

func (r replier) HandleClick(ctx context.Context, c bot.Click) {
	_ = r.s.Ephemeral(ctx, c.Channel, c.User, bot.Message{Text: "click: " + c.Value})
}

func TestForeignEnvelopesIgnored(t *testing.T) {
	s, srv, logs := newTestSlack(t, newSlackClock())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, replier{s}) }() // no Check: Run learns the team itself
	defer func() {
		cancel()
		<-done
	}()
	if err := srv.Wait(slackTestWait, "the bot to connect", func(srv *slacktest.Server) bool { return srv.Connected() }); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(srv.Calls(), func(c slacktest.Call) bool { return c.Method == "auth.test" }) {
		t.Fatal("Run did not call auth.test")
	}

	var forged []string
	for _, f := range []struct{ team, app, text string }{
		{"T0FORGED", "", "from another workspace"},
		{"", "A0FORGED", "for another app"},
	} {
		id, err := srv.SlashCommandFrom(f.team, f.app, "U0EVE", "C0OPS", "/mongo", f.text)
		if err != nil {
			t.Fatal(err)
		}
		forged = append(forged, id)
	}
	card := slacktest.Message{Channel: "C0OPS", TS: "1764230400.000001"}
	id, err := srv.ClickFrom("T0FORGED", "", "U0EVE", card, slacktest.Button{ActionID: "approve", Value: "forged click", Text: "Approve"})
	if err != nil {
		t.Fatal(err)
	}
	forged = append(forged, id)
	// The stand-in's own envelopes go after the forged ones, and envelopes are dispatched
	// in order: once these are answered, the forged ones have been judged.
	if _, err := srv.SlashCommand("U0DEV", "C0OPS", "/mongo", "genuine"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Click("U0DEV", card, slacktest.Button{ActionID: "approve", Value: "genuine click", Text: "Approve"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"command: genuine", "click: genuine click"} {
		if _, err := srv.WaitMessage(slackTestWait, want, slacktest.Containing(want)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range forged {
		if _, err := srv.WaitAck(id, slackTestWait); err != nil {
			t.Errorf("a foreign envelope must still be acknowledged: %v", err)
		}
	}
	for _, m := range srv.Messages() {
		if strings.Contains(m.Text, "forged") || strings.Contains(m.Text, "another") {
			t.Errorf("a foreign envelope was answered: %q", m.Text)
		}
	}
	for _, c := range srv.Calls() {
		if c.Method != "auth.test" && c.Method != "chat.postEphemeral" {
			t.Errorf("unexpected Web API call %s", c.Method)
		}
	}
	if n := strings.Count(logs.String(), "ignored an envelope for another workspace or app"); n != len(forged) {
		t.Errorf("%d warnings for %d foreign envelopes:\n%s", n, len(forged), logs)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "team=T0FORGED") {
		t.Errorf("the warning does not name the foreign team:\n%s", logs)
	}
}

// TestUnknownIdentityAccepted: before the team and app are known (no Check, no hello) an
// envelope is not judged; once they are, a foreign one is dropped.
func TestUnknownIdentityAccepted(t *testing.T) {
	s := New(Config{Log: slog.New(slog.DiscardHandler)})
	got := make(chan string, 4)
	h := handlerFunc(func(in bot.Invocation) { got <- in.Text })
	foreign := socketmode.Event{Type: socketmode.EventTypeSlashCommand,
		Data: slack.SlashCommand{TeamID: "T0FORGED", APIAppID: "A0FORGED", Command: "/x", Text: "unjudged"}}
	s.dispatch(context.Background(), foreign, h)
	select {
	case text := <-got:
		if text != "unjudged" {
			t.Fatalf("got %q", text)
		}
	case <-time.After(slackTestWait):
		t.Fatal("an envelope was dropped before the identity was known")
	}
	s.dispatch(context.Background(), socketmode.Event{Type: socketmode.EventTypeHello,
		Request: &socketmode.Request{Type: "hello", ConnectionInfo: socketmode.ConnectionInfo{AppID: "A0MINE"}}}, h)
	s.dispatch(context.Background(), foreign, h)
	s.dispatch(context.Background(), socketmode.Event{Type: socketmode.EventTypeSlashCommand,
		Data: slack.SlashCommand{TeamID: "T0ANY", APIAppID: "A0MINE", Command: "/x", Text: "mine"}}, h)
	select {
	case text := <-got:
		if text != "mine" {
			t.Fatalf("got %q; the envelope for another app was not dropped", text)
		}
	case <-time.After(slackTestWait):
		t.Fatal("the envelope for this app was dropped")
	}
}

type handlerFunc func(bot.Invocation)

func (f handlerFunc) HandleCommand(_ context.Context, in bot.Invocation) { f(in) }
func (f handlerFunc) HandleClick(context.Context, bot.Click)             {}
