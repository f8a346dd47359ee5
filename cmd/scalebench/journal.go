package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
	"mongobot/store"
)

// liveSet is what both journals hold: requests waiting for approval and temporary grants not
// yet ended (the `requests` command lists the first, start-up registers the second).
const (
	livePending   = 20
	liveTemporary = 10
)

// writeJournal creates a journal in dir through the store's API: the live set, and history:
// entries finished entries (rotations, temporary grants ended, locks and unlocks of many
// users) and one decided request for every ten of them. It reports its progress on stdout.
func writeJournal(dir string, entries int) error {
	// No fsync while generating: the benchmark measures the bot on the journal, not how
	// fast this disk writes it. The bot opens it afterwards with its own, syncing, options.
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer s.Close()
	user := func(u string) map[string]string { return map[string]string{"user": u, "authdb": "admin"} }
	done := func(e store.Entry, mutate func(*store.Entry)) (store.Entry, error) {
		e, err := s.BeginEntry(e, "U0DEV")
		if err != nil {
			return e, err
		}
		return s.TransitionEntry(e.ID, []string{store.EntryExecuting}, store.Step{State: store.EntryDone}, mutate)
	}
	for i := range livePending {
		if _, err := s.CreateRequest(store.Request{Action: "grant-role", Connector: "prod", Args: user(fmt.Sprint("live", i)),
			Requester: "U0DEV", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(30 * 24 * time.Hour)}, "pending", "U0DEV"); err != nil {
			return err
		}
	}
	for i := range liveTemporary {
		if _, err := done(store.Entry{Action: "grant-role", Connector: "prod", Args: user(fmt.Sprint("tmp", i))},
			func(e *store.Entry) { e.UndoAt = time.Now().Add(30 * 24 * time.Hour) }); err != nil {
			return err
		}
	}
	start := time.Now()
	for i := range entries {
		u := user(fmt.Sprint("u", i%5000))
		var err error
		switch i % 10 {
		case 0: // a request, decided, and what it ran
			var r store.Request
			r, err = s.CreateRequest(store.Request{Action: "rotate-password", Connector: "prod", Args: u, Requester: "U0DEV"}, "pending", "U0DEV")
			if err == nil {
				_, err = s.TransitionRequest(r.ID, []string{"pending"}, store.Step{State: []string{"done", "denied", "expired"}[i/10%3]}, nil)
			}
			if err == nil {
				_, err = done(store.Entry{Action: "rotate-password", Connector: "prod", Args: u, RequestID: r.ID}, nil)
			}
		case 1: // a temporary grant, ended
			var e store.Entry
			e, err = done(store.Entry{Action: "grant-role", Connector: "prod", Args: u}, func(e *store.Entry) { e.UndoAt = time.Now() })
			if err == nil {
				_, err = s.TransitionEntry(e.ID, []string{store.EntryDone}, store.Step{State: store.EntryRolledBack}, nil)
			}
		case 2, 3: // locks and unlocks of other users
			_, err = done(store.Entry{Action: []string{"lock-user", "unlock-user"}[i%2], Connector: "prod", Args: u}, nil)
		default:
			_, err = done(store.Entry{Action: "rotate-password", Connector: "prod", Args: u}, nil)
		}
		if err != nil {
			return err
		}
		if (i+1)%100000 == 0 {
			fmt.Printf("  %d entries written (%s)\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// journalSide is one bot process on one journal, with its own stand-in, and what was
// measured of it.
type journalSide struct {
	name     string
	sl       *slacktest.Server
	p        *botProc
	startups []time.Duration
	acks     []time.Duration
	replies  []time.Duration
	sent     int // commands sent, for unique users
}

func (j *journalSide) start(bin, dir string, emu *mongotest.Server) error {
	p, err := startBot(bin, dir, "connectors: [{name: prod, connection_string: '${MONGO_URI}'}]\n"+
		"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}\n", []string{"MONGO_URI=" + emu.URI()}, j.sl)
	if err != nil {
		return fmt.Errorf("%s journal: %w", j.name, err)
	}
	j.p = p
	j.startups = append(j.startups, p.startup)
	return nil
}

// batch sends one batch of commands to j's bot: n acked at 20 in flight (help, requests),
// then m `requests` one at a time, each waited for.
func (j *journalSide) batch(n, m int) error {
	lat, err := acks(j.sl, n, 20, func(i int) string { return fmt.Sprintf("U0ACK%d", i%20) }, "help", "requests")
	if err != nil {
		return fmt.Errorf("%s journal: %w", j.name, err)
	}
	j.acks = append(j.acks, lat...)
	for range m {
		j.sent++
		d, err := reply(j.sl, fmt.Sprintf("U0REQ%d", j.sent), "requests")
		if err != nil {
			return fmt.Errorf("%s journal: %w", j.name, err)
		}
		j.replies = append(j.replies, d)
	}
	return nil
}

// benchJournal is figures 1 to 3: a bot on a journal of n entries (and n/10 requests) and a
// bot on a journal holding only the same live set, both running at once, each with its own
// stand-in, measured in small alternating batches so that whatever else the machine does
// falls on both alike. Start-up is measured rounds times for each, alternately.
func benchJournal(tmp, bin string, n, rounds int, out *table) error {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	dirs := map[string]string{"empty": filepath.Join(tmp, "empty", "data"), "big": filepath.Join(tmp, "big", "data")}
	fmt.Printf("writing a journal of %d entries and %d requests through the store's API\n", n, n/10)
	start := time.Now()
	if err := writeJournal(dirs["empty"], 0); err != nil {
		return err
	}
	if err := writeJournal(dirs["big"], n); err != nil {
		return err
	}
	size := fileSize(filepath.Join(dirs["big"], store.FileName))
	fmt.Printf("  written in %s; the file is %s\n", time.Since(start).Round(time.Second), mib(size))
	// One stand-in per journal for the whole run: a new one would hand out the trigger ids of
	// the last process again, which the bot, rightly, ignores as deliveries it has seen.
	sides := []*journalSide{{name: "empty", sl: slacktest.New()}, {name: "big", sl: slacktest.New()}}
	for _, j := range sides {
		defer j.sl.Close()
	}
	for range rounds - 1 {
		for _, j := range sides {
			if err := j.start(bin, dirs[j.name], emu); err != nil {
				return err
			}
			j.p.stop()
		}
	}
	for _, j := range sides {
		if err := j.start(bin, dirs[j.name], emu); err != nil {
			return err
		}
		defer j.p.stop()
	}
	for b := range 10 * rounds {
		order := sides
		if b%2 == 1 { // which one goes first alternates too
			order = []*journalSide{sides[1], sides[0]}
		}
		for _, j := range order {
			if err := j.batch(200, 30); err != nil {
				return err
			}
		}
	}
	e, g := sides[0], sides[1]
	for _, j := range sides {
		_, peak := j.p.rss()
		fmt.Printf("  %-5s journal: start-up %s (median of %d), %d acks p99 %s, %d `requests` p50 %s p99 %s, peak RSS %s\n",
			j.name, ms(quantile(j.startups, 0.5)), len(j.startups), len(j.acks), ms(quantile(j.acks, 0.99)),
			len(j.replies), ms(quantile(j.replies, 0.5)), ms(quantile(j.replies, 0.99)), mib(peak))
	}
	ratio := func(get func(*journalSide) time.Duration) string {
		a, b := get(e), get(g)
		return fmt.Sprintf("%.2f× (%s vs %s)", float64(b)/float64(a), ms(b), ms(a))
	}
	met := func(get func(*journalSide) time.Duration) bool { return float64(get(g)) <= 1.1*float64(get(e)) }
	ack99 := func(j *journalSide) time.Duration { return quantile(j.acks, 0.99) }
	req50 := func(j *journalSide) time.Duration { return quantile(j.replies, 0.5) }
	req99 := func(j *journalSide) time.Duration { return quantile(j.replies, 0.99) }
	out.add(fmt.Sprintf("ack p99, %d entries / %d requests vs the live set alone", n, n/10), ratio(ack99), "≤ 1.1×", met(ack99))
	out.add("`requests` reply p50, same journals", ratio(req50), "≤ 1.1×", met(req50))
	out.add("`requests` reply p99, same journals", ratio(req99), "≤ 1.1×", met(req99))
	su := quantile(g.startups, 0.5)
	out.add("start-up (exec to socket open), big journal", fmt.Sprintf("%s (live set alone: %s)", ms(su), ms(quantile(e.startups, 0.5))), "≤ 1 s", su <= time.Second)
	_, peak := g.p.rss()
	out.add(fmt.Sprintf("peak RSS, big journal (file %s)", mib(size)), mib(peak), "≤ 64 MiB", peak <= 64<<20)
	return nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}
