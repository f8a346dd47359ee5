package store

import (
	"errors"
	"testing"
	"time"
)

// BeginRun claims each cron slot once: a second claim of the same or an earlier slot is
// refused, a retry is allowed only after the slot's run failed, and a removed schedule runs
// nothing.
func TestBeginRunClaimsEachSlotOnce(t *testing.T) {
	s := open(t, t.TempDir(), newClock())
	sc, err := s.CreateSchedule(Schedule{Connector: "prod", User: "svc", DB: "admin", Spec: "@hourly", Owner: "U1"}, "U1")
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	e, err := s.BeginRun(sc.ID, slot, false, Entry{Action: "rotate-password"}, "schedule")
	if err != nil {
		t.Fatal(err)
	}
	if e.State != EntryExecuting || !e.Slot.Equal(slot) || e.ScheduleID != sc.ID || e.Token == "" {
		t.Fatalf("the claim: %+v", e)
	}
	if got, _ := s.Schedule(sc.ID); !got.Slot.Equal(slot) || got.SlotEntry != e.ID {
		t.Fatalf("the schedule does not record the claim: %+v", got)
	}
	for _, at := range []time.Time{slot, slot.Add(-time.Hour)} {
		if _, err := s.BeginRun(sc.ID, at, false, Entry{Action: "rotate-password"}, "schedule"); !errors.Is(err, ErrSlotTaken) {
			t.Fatalf("slot %s claimed again: %v", at, err)
		}
	}
	// A retry while the first run is executing, or after it was done, is refused.
	if _, err := s.BeginRun(sc.ID, slot, true, Entry{Action: "rotate-password"}, "schedule"); !errors.Is(err, ErrSlotTaken) {
		t.Fatalf("retry beside a running claim: %v", err)
	}
	if _, err := s.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryFailed}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := s.BeginRun(sc.ID, slot, true, Entry{Action: "rotate-password"}, "schedule")
	if err != nil {
		t.Fatalf("retry after a failed run: %v", err)
	}
	if _, err := s.TransitionEntry(r.ID, []string{EntryExecuting}, Step{State: EntryDone}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginRun(sc.ID, slot, true, Entry{Action: "rotate-password"}, "schedule"); !errors.Is(err, ErrSlotTaken) {
		t.Fatalf("retry after a done run: %v", err)
	}
	// The next slot is free; a removed schedule claims nothing.
	if _, err := s.BeginRun(sc.ID, slot.Add(time.Hour), false, Entry{Action: "rotate-password"}, "schedule"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionSchedule(sc.ID, []string{ScheduleActive}, Step{State: ScheduleRemoved}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginRun(sc.ID, slot.Add(2*time.Hour), false, Entry{Action: "rotate-password"}, "schedule"); !errors.Is(err, ErrConflict) {
		t.Fatalf("a removed schedule ran: %v", err)
	}
}
