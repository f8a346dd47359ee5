package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// benchIsolation is figure 4: the full reply latency (command sent to answer posted) of
// requests on a healthy connector, first with nothing else going on, then right after stuck
// actions were approved on another connector whose server was black-holed. Both connectors
// reach the same emulator; the dead one through a proxy that stops answering.
func benchIsolation(tmp, bin string, stuck, replies int, out *table) error {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	proxy, err := mongotest.NewProxy(emu.Addr())
	if err != nil {
		return err
	}
	defer proxy.Close()
	admin, err := connector.New(connector.Config{Name: "setup", URI: secret.New(emu.URI()), SkipVerifyLogin: true})
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	fmt.Printf("creating %d users on the emulator\n", stuck+5)
	for i := range stuck + 5 {
		u := connector.UserRef{User: fmt.Sprint("app", i), DB: "admin"}
		if i >= stuck {
			u.DB = "apps" // what the measured reply lists
		}
		if _, _, err := admin.CreateUser(context.Background(), "create-user", u, nil); err != nil {
			return err
		}
	}
	sl := slacktest.New()
	defer sl.Close()
	p, err := startBot(bin, filepath.Join(tmp, "isolation", "data"),
		"connectors:\n  - {name: healthy, connection_string: '${MONGO_URI}'}\n  - {name: dead, connection_string: '${DEAD_URI}'}\n"+
			"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}\n",
		[]string{"MONGO_URI=" + emu.URI(), "DEAD_URI=" + proxy.URI(emu.URI())}, sl)
	if err != nil {
		return err
	}
	defer p.stop()

	// The stuck actions: requested while the server answers, so their previews pass.
	for i := range stuck {
		if _, err := reply(sl, fmt.Sprint("U0DEAD", i), fmt.Sprintf("rotate-password dead app%d", i)); err != nil {
			return err
		}
	}
	var cards []slacktest.Message
	for _, m := range sl.Messages() {
		if m.Channel == "C0APPROVALS" && strings.Contains(m.Text, "on dead") {
			cards = append(cards, m)
		}
	}
	if len(cards) != stuck {
		return fmt.Errorf("%d cards for the dead connector, want %d", len(cards), stuck)
	}
	// The measured reply: a read on healthy that leaves nothing behind (a request would stay
	// pending, and each pending request makes the next one's duplicate check longer), so
	// every round asks the same question of the same state.
	measure := func(from int) ([]time.Duration, error) {
		var ds []time.Duration
		for i := range replies {
			d, err := reply(sl, fmt.Sprint("U0LIVE", from+i), "users healthy --auth-db apps")
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	calm, err := measure(0)
	if err != nil {
		return err
	}
	again, err := measure(replies)
	if err != nil {
		return err
	}
	fmt.Printf("  control: calm p50 %s, again p50 %s\n", ms(quantile(calm, 0.5)), ms(quantile(again, 0.5)))

	proxy.BlackHole()
	for _, c := range cards {
		b, ok := c.Find("Approve")
		if !ok {
			return fmt.Errorf("no Approve button on %q", c.Text)
		}
		if _, err := sl.Click("U0ALICE", c, b); err != nil {
			return err
		}
	}
	// Wait until the dead connector's executor is full: the approvals have all been taken.
	if err := sl.Wait(30*time.Second, "every approval answered", func(s *slacktest.Server) bool {
		n := 0
		for _, m := range s.Messages() {
			if strings.HasPrefix(m.Channel, "DU0DEAD") && (strings.Contains(m.Text, "is approved") || strings.Contains(m.Text, "busy")) {
				n++
			}
		}
		return n >= stuck
	}); err != nil {
		return err
	}
	waiting, _ := p.gauge("mongobot_actions_waiting")
	started := time.Now()
	busy, err := measure(2 * replies)
	if err != nil {
		return err
	}
	took := time.Since(started)
	waitingAfter, _ := p.gauge("mongobot_actions_waiting")
	down, _ := p.gauge("mongobot_connectors_down")
	c50, c99, b50, b99 := quantile(calm, 0.5), quantile(calm, 0.99), quantile(busy, 0.5), quantile(busy, 0.99)
	fmt.Printf("  calm:  reply p50 %s, p99 %s (%d times `users healthy --auth-db apps`)\n", ms(c50), ms(c99), replies)
	fmt.Printf("  stuck: reply p50 %s, p99 %s; dead had %v actions waiting when it began and %v after %s; dead marked down: %v\n",
		ms(b50), ms(b99), waiting, waitingAfter, took.Round(time.Millisecond), down == 1)
	r50, r99 := float64(b50)/float64(c50), float64(b99)/float64(c99)
	out.add(fmt.Sprintf("reply p50 on a healthy connector, %d actions stuck on a black-holed one", stuck),
		fmt.Sprintf("%.2f× (%s vs %s)", r50, ms(b50), ms(c50)), "≤ 1.2×", r50 <= 1.2)
	out.add("reply p99, same", fmt.Sprintf("%.2f× (%s vs %s)", r99, ms(b99), ms(c99)), "≤ 1.2×", r99 <= 1.2)
	return nil
}
