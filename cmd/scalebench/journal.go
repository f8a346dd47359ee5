package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mongobot/bot/slacktest"
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

// journalFigures are the measurements of one bot process on one journal.
type journalFigures struct {
	startup                  time.Duration
	ackP99                   time.Duration
	requestsP50, requestsP99 time.Duration
	peak                     int64
}

// measureJournal starts the bot on journal dir and measures it. sl is the journal's own
// stand-in across rounds: a new one would hand out the trigger ids of the last round again,
// which the bot, rightly, ignores as deliveries it has seen.
func measureJournal(bin, dir string, sl *slacktest.Server, emu *mongotest.Server, acksN, repliesN int) (journalFigures, error) {
	var f journalFigures
	p, err := startBot(bin, dir, "connectors: [{name: prod, connection_string: '${MONGO_URI}'}]\n"+
		"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}\n", []string{"MONGO_URI=" + emu.URI()}, sl)
	if err != nil {
		return f, err
	}
	defer p.stop()
	f.startup = p.startup
	lat, err := acks(sl, acksN, 20, func(i int) string { return fmt.Sprintf("U0ACK%d", i%20) }, "help", "requests")
	if err != nil {
		return f, err
	}
	f.ackP99 = quantile(lat, 0.99)
	var rs []time.Duration
	for i := range repliesN {
		d, err := reply(sl, fmt.Sprintf("U0REQ%d", i), "requests")
		if err != nil {
			return f, err
		}
		rs = append(rs, d)
	}
	f.requestsP50, f.requestsP99 = quantile(rs, 0.5), quantile(rs, 0.99)
	_, f.peak = p.rss()
	return f, nil
}

// benchJournal is figures 1 to 3: the bot on a journal of n entries (and n/10 requests)
// beside the bot on a journal with only the same live set, alternately, rounds times.
func benchJournal(tmp, bin string, n, rounds int, out *table) error {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	empty, big := filepath.Join(tmp, "empty", "data"), filepath.Join(tmp, "big", "data")
	fmt.Printf("writing a journal of %d entries and %d requests through the store's API\n", n, n/10)
	start := time.Now()
	if err := writeJournal(empty, 0); err != nil {
		return err
	}
	if err := writeJournal(big, n); err != nil {
		return err
	}
	size := fileSize(filepath.Join(big, store.FileName))
	fmt.Printf("  written in %s; the file is %s\n", time.Since(start).Round(time.Second), mib(size))
	var fe, fb []journalFigures
	sls := map[string]*slacktest.Server{"empty": slacktest.New(), "big": slacktest.New()}
	for _, sl := range sls {
		defer sl.Close()
	}
	for r := range rounds {
		for _, which := range []string{"empty", "big"} {
			dir := map[string]string{"empty": empty, "big": big}[which]
			f, err := measureJournal(bin, dir, sls[which], emu, 2000, 300)
			if err != nil {
				return fmt.Errorf("%s journal: %w", which, err)
			}
			fmt.Printf("  round %d, %-5s journal: start-up %s, ack p99 %s, requests p50 %s p99 %s, peak RSS %s\n",
				r+1, which, ms(f.startup), ms(f.ackP99), ms(f.requestsP50), ms(f.requestsP99), mib(f.peak))
			if which == "empty" {
				fe = append(fe, f)
			} else {
				fb = append(fb, f)
			}
		}
	}
	med := func(fs []journalFigures, get func(journalFigures) time.Duration) time.Duration {
		var ds []time.Duration
		for _, f := range fs {
			ds = append(ds, get(f))
		}
		return quantile(ds, 0.5)
	}
	ratio := func(get func(journalFigures) time.Duration) (float64, time.Duration, time.Duration) {
		e, b := med(fe, get), med(fb, get)
		return float64(b) / float64(e), e, b
	}
	r1, e1, b1 := ratio(func(f journalFigures) time.Duration { return f.ackP99 })
	out.add(fmt.Sprintf("ack p99, %d entries / %d requests vs empty", n, n/10), fmt.Sprintf("%.2f× (%s vs %s)", r1, ms(b1), ms(e1)), "≤ 1.1×", r1 <= 1.1)
	r2, e2, b2 := ratio(func(f journalFigures) time.Duration { return f.requestsP50 })
	out.add("`requests` reply p50, same journals", fmt.Sprintf("%.2f× (%s vs %s)", r2, ms(b2), ms(e2)), "≤ 1.1×", r2 <= 1.1)
	r3, e3, b3 := ratio(func(f journalFigures) time.Duration { return f.requestsP99 })
	out.add("`requests` reply p99, same journals", fmt.Sprintf("%.2f× (%s vs %s)", r3, ms(b3), ms(e3)), "≤ 1.1×", r3 <= 1.1)
	su := med(fb, func(f journalFigures) time.Duration { return f.startup })
	sue := med(fe, func(f journalFigures) time.Duration { return f.startup })
	out.add("start-up (exec to socket open), big journal", fmt.Sprintf("%s (empty: %s)", ms(su), ms(sue)), "≤ 1 s", su <= time.Second)
	var peak int64
	for _, f := range fb {
		peak = max(peak, f.peak)
	}
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
