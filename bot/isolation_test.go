package bot_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
)

// TestDeadConnectorSlowsNoOneElse black-holes prod (behind a proxy) with approved actions on
// it: they wait on prod's own executor (2 at once, 3 queued, the rest refused as busy), while
// stage answers; once prod is marked down, its queued actions and new requests for it are
// refused at once, saying why; when it answers again, it takes requests again.
func TestDeadConnectorSlowsNoOneElse(t *testing.T) {
	e := newEnv(t, envOptions{proxy: true, commandTimeout: 8 * time.Second, actionTimeout: 30 * time.Second,
		limits: map[string]bot.Limits{"prod": {Concurrency: 2, Queue: 3}}})
	const n = 7
	var cards []slacktest.Message
	for i := range n {
		name := fmt.Sprintf("app%d", i)
		e.createUser(name)
		e.command(dev, "rotate-password prod "+name)
		cards = append(cards, e.card("rotate-password", name))
	}

	e.proxy.BlackHole()
	for _, c := range cards {
		e.click(alice, c, bot.TextApprove)
	}
	// Two run (and hang), three wait their turn, two are refused at once.
	e.private(dev, "is approved: running it now")
	e.private(dev, "is approved, and queued: connector prod is busy (4 actions ahead of it)")
	e.private(dev, "failed: connector prod is busy: 2 actions are running on it and 3 more are waiting, the most it queues; it was not run and nothing was changed")
	refused := func() (n int) {
		for _, m := range e.slack.Messages() {
			if m.Channel == "D"+dev && strings.Contains(m.All(), "the most it queues") {
				n++
			}
		}
		return n
	}
	if err := e.slack.Wait(wait, "two refusals", func(*slacktest.Server) bool { return refused() >= 2 }); err != nil || refused() != 2 {
		t.Fatalf("%d requests refused as busy, want 2\n%s", refused(), e.dump())
	}

	// Meanwhile another connector answers, before prod's stuck actions even time out.
	e.command(dev, "users stage")
	e.private(dev, "Users on stage")
	if _, ok := e.slack.Find(slacktest.Containing("did not answer in time")); ok {
		t.Fatalf("prod's actions ended before stage answered: the test proves nothing\n%s", e.dump())
	}

	// The hung actions time out; prod is marked down; the queued ones fail without waiting.
	e.private(dev, "Connector prod is not answering", "Nothing was changed; ask again once it answers")
	e.command(dev, "rotate-password prod app0")
	e.private(dev, "Connector prod is not answering", "Nothing was requested")
	e.command(dev, "connectors")
	e.private(dev, "Connectors (3: 1 answering, 2 not)", "*prod*: down", "*stage*: ")

	e.proxy.Restore()
	deadline := time.Now().Add(wait)
	for e.conns["prod"].Health().Down {
		if time.Now().After(deadline) {
			t.Fatalf("prod still down after it answers again: %+v", e.conns["prod"].Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.command(dev, "rotate-password prod app6")
	e.card("rotate-password", "app6", "#8")
}

// TestConnectorsAsksInParallel: 40 connectors behind a black hole each take a whole server
// selection timeout (1 s) to fail; one at a time they would outlast the command's 30 s and
// be listed as not asked. Asked 16 at a time, every one is answered for, and the one that
// answers is listed after those in trouble.
func TestConnectorsAsksInParallel(t *testing.T) {
	e := newEnv(t, envOptions{proxy: true, dead: 40})
	e.proxy.BlackHole()
	e.command(dev, "connectors")
	m := e.private(dev, "Connectors (43: 1 answering, 42 not)")
	if strings.Contains(m.All(), "not asked") {
		t.Fatalf("some connectors were not asked in time:\n%s", m.All())
	}
	if strings.Count(m.All(), ": unhealthy: ") != 42 {
		t.Fatalf("want 42 unhealthy lines:\n%s", m.All())
	}
	all := m.All()
	if strings.Index(all, "*stage*") < strings.LastIndex(all, "unhealthy") {
		t.Fatalf("the connector that answers is not listed after those in trouble:\n%s", all)
	}
}
