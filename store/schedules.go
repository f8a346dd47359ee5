package store

import (
	"mongobot/kv"

	"errors"
	"fmt"
	"slices"
	"time"
)

// CreateSchedule stores sc as ScheduleActive and returns it with its new id.
func (s *Store) CreateSchedule(sc Schedule, by string) (Schedule, error) {
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = s.now()
	}
	return insert(s, bucketSchedules, &sc, Step{State: ScheduleActive, At: sc.CreatedAt, By: by},
		func(sc *Schedule, id uint64) { sc.ID = id })
}

// Schedule returns schedule id, or ErrNotFound.
func (s *Store) Schedule(id uint64) (Schedule, error) {
	var sc Schedule
	err := s.db.View(func(tx kv.Tx) (err error) {
		sc, err = get[Schedule](s, tx, bucketSchedules, id)
		return err
	})
	return sc, err
}

// Schedules returns the schedules not removed (active or paused), oldest first.
func (s *Store) Schedules() ([]Schedule, error) {
	all, _, err := list(s, bucketSchedules, 0, 1<<30, func(sc *Schedule) bool { return sc.State != ScheduleRemoved })
	slices.Reverse(all)
	return all, err
}

// TransitionSchedule is the compare-and-set for schedules (for example active to removed).
func (s *Store) TransitionSchedule(id uint64, from []string, next Step, mutate func(*Schedule)) (Schedule, error) {
	return transition(s, bucketSchedules, id, from, next, mutate)
}

// UpdateSchedule lets fn change schedule id in one transaction (last run, last result).
func (s *Store) UpdateSchedule(id uint64, fn func(*Schedule) error) (Schedule, error) {
	return update(s, bucketSchedules, id, fn)
}

// MarkDue journals, in one transaction, that each schedule of due fell due for its slot
// (DueSlot, DueAt). Schedules no longer active, or whose slot was already claimed, are left
// alone. It is a record, not a claim: BeginRun still decides which run may go.
func (s *Store) MarkDue(due map[uint64]time.Time) error {
	at := s.now()
	return s.update(func(tx kv.Tx) error {
		for id, slot := range due {
			sc, err := get[Schedule](s, tx, bucketSchedules, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if sc.State != ScheduleActive || !sc.Slot.Before(slot) || !sc.DueSlot.Before(slot) {
				continue
			}
			sc.DueSlot, sc.DueAt = slot.UTC(), at
			if err := put(s, tx, bucketSchedules, id, &sc); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrSlotTaken is returned (wrapped) by BeginRun when the slot was already claimed by a run.
var ErrSlotTaken = fmt.Errorf("%w: schedule slot already run", ErrConflict)

// BeginRun is the write-ahead step of a scheduled run, and its claim on one cron slot: in one
// transaction it checks that the schedule is active and that slot is later than the last
// slot claimed, commits e (ScheduleID and Slot set) in EntryExecuting, and records slot and
// the entry on the schedule. A retry of the same slot is allowed only when the run that
// claimed it failed (nothing was changed): retry must then be true. Whatever instant the
// process dies at, a restart sees the claim and never runs that slot again.
func (s *Store) BeginRun(scheduleID uint64, slot time.Time, retry bool, e Entry, by string) (Entry, error) {
	if e.CreatedAt.IsZero() {
		e.CreatedAt = s.now()
	}
	if e.Token == "" {
		e.Token = newToken()
	}
	e.ScheduleID, e.Slot = scheduleID, slot.UTC()
	base := e
	err := s.update(func(tx kv.Tx) error {
		e = base // a transaction run again starts from the entry as given
		sc, err := get[Schedule](s, tx, bucketSchedules, scheduleID)
		if err != nil {
			return err
		}
		if sc.State != ScheduleActive {
			return &ConflictError{Kind: "schedule", ID: scheduleID, Want: []string{ScheduleActive}, Got: sc.State}
		}
		switch {
		case !retry && !sc.Slot.Before(slot):
			return fmt.Errorf("%w: schedule %d slot %s (last claimed %s)", ErrSlotTaken, scheduleID, slot.UTC().Format(time.RFC3339), sc.Slot.UTC().Format(time.RFC3339))
		case retry:
			if !sc.Slot.Equal(slot) || sc.SlotEntry == 0 {
				return fmt.Errorf("%w: schedule %d retry of slot %s, which is not its last", ErrSlotTaken, scheduleID, slot.UTC().Format(time.RFC3339))
			}
			prev, err := get[Entry](s, tx, bucketEntries, sc.SlotEntry)
			if err != nil {
				return err
			}
			if prev.State != EntryFailed {
				return fmt.Errorf("%w: schedule %d slot %s ran as entry %d, which is %s", ErrSlotTaken, scheduleID, slot.UTC().Format(time.RFC3339), prev.ID, prev.State)
			}
		}
		id, err := tx.Bucket(bucketEntries).NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		e.step(Step{State: EntryExecuting, At: e.CreatedAt, By: by})
		if err := put(s, tx, bucketEntries, id, &e); err != nil {
			return err
		}
		sc.Slot, sc.SlotEntry = slot.UTC(), id
		sc.LastEntry = id
		return put(s, tx, bucketSchedules, scheduleID, &sc)
	})
	return e, err
}
