package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
)

// benchConnectors is figure 5: a bot with n connectors (one emulator behind n names), idle
// for idle; then `connectors`, which opens every client at once, and the idle time after it,
// until the clients close (connector_idle_timeout: 1m, the shortest allowed); not with quick.
func benchConnectors(tmp, bin string, n int, idle time.Duration, quick bool, out *table) error {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	var cfg strings.Builder
	cfg.WriteString("connectors:\n")
	for i := range n {
		fmt.Fprintf(&cfg, "  - {name: c%04d, connection_string: '${MONGO_URI}'}\n", i)
	}
	cfg.WriteString("approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}\nconnector_idle_timeout: 1m\n")
	sl := slacktest.New()
	defer sl.Close()
	p, err := startBot(bin, filepath.Join(tmp, "connectors", "data"), cfg.String(), []string{"MONGO_URI=" + emu.URI()}, sl)
	if err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("  %d connectors: start-up %s; idle for %s\n", n, ms(p.startup), idle)
	c0 := p.cpu()
	time.Sleep(idle)
	cpu := float64(p.cpu()-c0) / float64(idle)
	now, peak := p.rss()
	fmt.Printf("  idle: CPU %.2f%% of one core, RSS %s (peak %s)\n", 100*cpu, mib(now), mib(peak))
	out.add(fmt.Sprintf("%d connectors configured, idle %s: RSS", n, idle), fmt.Sprintf("%s (peak %s)", mib(now), mib(peak)), "≤ 100 MiB", peak <= 100<<20)
	out.add("same: CPU", fmt.Sprintf("%.2f%% of one core", 100*cpu), "≤ 2%", cpu <= 0.02)
	out.add("same: start-up (exec to socket open)", ms(p.startup), "≤ 2 s", p.startup <= 2*time.Second)
	if quick {
		return nil // the rest waits out the shortest idle timeout, a minute and more
	}

	// Every client open at once: what `connectors` costs, and what the open clients cost
	// until the idle timeout closes them.
	d, err := reply(sl, "U0OPS", "connectors")
	if err != nil {
		return err
	}
	msg, _ := sl.Find(func(m slacktest.Message) bool { return m.Ephemeral && m.User == "U0OPS" })
	first, _, _ := strings.Cut(msg.Text, "\n")
	fmt.Printf("  `connectors` answered in %s: %s\n", ms(d), first)
	c1 := p.cpu()
	time.Sleep(time.Minute)
	open := float64(p.cpu()-c1) / float64(time.Minute)
	now1, peak1 := p.rss()
	time.Sleep(20 * time.Second) // the clients close a minute after their last use
	c2 := p.cpu()
	time.Sleep(idle)
	after := float64(p.cpu()-c2) / float64(idle)
	now2, _ := p.rss()
	fmt.Printf("  the minute after (%d clients open, heartbeats every 10 s): CPU %.2f%%, RSS %s (peak %s)\n", n, 100*open, mib(now1), mib(peak1))
	fmt.Printf("  idle again once they closed: CPU %.2f%%, RSS %s\n", 100*after, mib(now2))
	out.add(fmt.Sprintf("`connectors` over %d (16 at once)", n), ms(d), "(reported)", true)
	out.add("the minute after it, every client open: CPU / RSS", fmt.Sprintf("%.2f%% / %s (peak %s)", 100*open, mib(now1), mib(peak1)), "(reported)", true)
	out.add("idle again after connector_idle_timeout: CPU / RSS", fmt.Sprintf("%.2f%% / %s", 100*after, mib(now2)), "≤ 2% / (reported)", after <= 0.02)
	return nil
}
