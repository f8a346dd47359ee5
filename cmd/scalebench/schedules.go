package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
	"mongobot/store"
)

// benchSchedules is figure 6: total active schedules over conns connectors (one emulator
// behind conns names), due of them in the same minute, the rest later. It measures how soon
// each due slot is journaled as due, how long the whole burst takes against what the
// per-connector concurrency allows, and that each slot ran exactly once.
func benchSchedules(tmp, bin string, total, conns, due, concurrency int, out *table) error {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return err
	}
	defer emu.Close()
	admin, err := connector.New(connector.Config{Name: "setup", URI: secret.New(emu.URI())})
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	ctx := context.Background()
	fmt.Printf("creating the %d users the due schedules rotate\n", due)
	for i := range due {
		if _, _, err := admin.CreateUser(ctx, "create-user", connector.UserRef{User: fmt.Sprintf("u%05d", i), DB: "admin"}, nil); err != nil {
			return err
		}
	}
	// One rotation alone, as a scheduled run makes it (read, update, log in with the new
	// password): the unit of the bound.
	alone := connector.UserRef{User: "alone", DB: "admin"}
	if _, _, err := admin.CreateUser(ctx, "create-user", alone, nil); err != nil {
		return err
	}
	var single []time.Duration
	for range 7 {
		t := time.Now()
		if _, err := admin.State(ctx, alone); err != nil {
			return err
		}
		if _, _, err := admin.RotatePassword(ctx, connector.RotateOptions{User: alone}); err != nil {
			return err
		}
		single = append(single, time.Since(t))
	}
	unit := quantile(single, 0.5)

	// The slot: the start of a minute far enough ahead for the bot to start.
	slot := time.Now().UTC().Truncate(time.Minute).Add(2 * time.Minute)
	if time.Until(slot) < 80*time.Second {
		slot = slot.Add(time.Minute)
	}
	data := filepath.Join(tmp, "schedules", "data")
	st, err := store.Open(data, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	for i := range total {
		sc := store.Schedule{Connector: fmt.Sprintf("s%03d", i%conns), User: fmt.Sprintf("u%05d", i), DB: "admin", Owner: "U0OWNER",
			Spec: fmt.Sprintf("%d %d * * *", slot.Minute(), slot.Hour())}
		if i >= due {
			// Later in the day, spread over other minutes: active, not due in this run.
			sc.Spec = fmt.Sprintf("%d %d * * *", (slot.Minute()+1+i%50)%60, (slot.Hour()+12)%24)
		}
		if _, err := st.CreateSchedule(sc, "U0OWNER"); err != nil {
			st.Close()
			return err
		}
	}
	st.Close()
	var cfg strings.Builder
	cfg.WriteString("connectors:\n")
	for i := range conns {
		fmt.Fprintf(&cfg, "  - {name: s%03d, connection_string: '${MONGO_URI}'}\n", i)
	}
	fmt.Fprintf(&cfg, "approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE]}}\nschedules: {concurrency_per_connector: %d}\n", concurrency)
	sl := slacktest.New()
	defer sl.Close()
	p, err := startBot(bin, data, cfg.String(), []string{"MONGO_URI=" + emu.URI()}, sl)
	if err != nil {
		return err
	}
	fmt.Printf("  %d schedules over %d connectors, %d due at %s; bot started in %s, waiting %s\n",
		total, conns, due, slot.Format("15:04:05 UTC"), ms(p.startup), time.Until(slot).Round(time.Second))
	results := func(s *slacktest.Server) int {
		n := 0
		for _, m := range s.Messages() {
			if m.Channel == "C0APPROVALS" && strings.HasPrefix(m.Text, "Journal #") && strings.Contains(m.Text, "rotate-password") {
				n++
			}
		}
		return n
	}
	werr := sl.Wait(time.Until(slot)+15*time.Minute, "every due run's result", func(s *slacktest.Server) bool { return results(s) >= due })
	p.stop()
	if werr != nil {
		return fmt.Errorf("%w (%d of %d results)", werr, results(sl), due)
	}

	st, err = store.Open(data, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	scs, err := st.Schedules()
	if err != nil {
		return err
	}
	var claims []time.Duration
	for _, sc := range scs {
		if sc.DueSlot.Equal(slot) {
			claims = append(claims, sc.DueAt.Sub(slot))
		}
	}
	runs := map[uint64]int{}
	var last time.Time
	var under []time.Duration
	failed := 0
	for before := uint64(0); ; {
		es, next, err := st.History(before, 1000)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.ScheduleID == 0 {
				continue
			}
			if !e.Slot.Equal(slot) {
				return fmt.Errorf("journal #%d ran schedule %d for slot %s, not the due one", e.ID, e.ScheduleID, e.Slot)
			}
			runs[e.ScheduleID]++
			if e.State != store.EntryDone {
				failed++
			}
			end := e.History[len(e.History)-1].At
			last = maxTime(last, end)
			under = append(under, end.Sub(e.CreatedAt))
		}
		if next == 0 {
			break
		}
		before = next
	}
	once := len(runs) == due
	for _, n := range runs {
		once = once && n == 1
	}
	waves := (due/conns + concurrency - 1) / concurrency
	bound := time.Duration(waves) * unit
	// What the machine allows at best: every rotation's work spread over every CPU (the
	// emulator, the bot and this process share them).
	floor := time.Duration(due) * unit / time.Duration(runtime.NumCPU())
	makespan := last.Sub(slot)
	c99 := quantile(claims, 0.99)
	fmt.Printf("  journaled as due: %d, after the slot p50 %s, p99 %s, max %s\n", len(claims), ms(quantile(claims, 0.5)), ms(c99), ms(quantile(claims, 1)))
	fmt.Printf("  runs: %d schedules ran, %d journal entries, %d not done; all finished %s after the slot\n", len(runs), len(under), failed, makespan.Round(time.Millisecond))
	fmt.Printf("  one rotation alone: %s; under the burst (claim to result) p50 %s; bound %d waves x %s = %s\n",
		ms(unit), ms(quantile(under, 0.5)), waves, ms(unit), ms(bound))
	out.add(fmt.Sprintf("%d schedules / %d connectors, %d due in one minute: journaled as due, p99 after the slot", total, conns, due),
		ms(c99), "≤ 1 s", c99 <= time.Second && len(claims) == due)
	fmt.Printf("  the machine's floor: %d rotations x %s / %d CPUs = %s\n", due, ms(unit), runtime.NumCPU(), ms(floor))
	out.add(fmt.Sprintf("all %d finished, vs the per-connector bound (concurrency %d)", due, concurrency),
		fmt.Sprintf("%.1f× (%s vs %s)", float64(makespan)/float64(bound), makespan.Round(time.Millisecond), bound.Round(time.Millisecond)), "(ratio reported)", true)
	out.add("same, vs the machine's floor (every rotation's time over the CPUs)",
		fmt.Sprintf("%.1f× (vs %s)", float64(makespan)/float64(floor), floor.Round(time.Millisecond)), "(ratio reported)", true)
	out.add("each due rotation journaled once", fmt.Sprintf("%d of %d, %d not done", len(runs), due, failed), "all, once", once && failed == 0)
	if !once || len(claims) != due {
		return fmt.Errorf("not every due slot was journaled as due and run exactly once: %d journaled as due, %d schedules ran, of %d", len(claims), len(runs), due)
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
