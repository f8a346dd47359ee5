package store

import bolt "go.etcd.io/bbolt"

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
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		sc, err = get[Schedule](tx, bucketSchedules, id)
		return err
	})
	return sc, err
}

// Schedules returns the active schedules, oldest first, for registering at start-up.
func (s *Store) Schedules() ([]Schedule, error) {
	all, _, err := list(s, bucketSchedules, 0, 1<<30, func(sc *Schedule) bool { return sc.State == ScheduleActive })
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
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
