package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"mongobot/bot"
	"mongobot/config"
	"mongobot/ha"
	"mongobot/store"
)

// shared is this replica's part in a group sharing one journal on etcd: its session, the
// journal, and, while it leads, the journal fenced by its term.
type shared struct {
	cfg     *config.Etcd
	replica *ha.Replica
	kv      *ha.KV
	close   func()
	fenced  atomic.Pointer[store.Store]
}

// joinShared connects to etcd and starts this replica's session.
func joinShared(ctx context.Context, cfg *config.Etcd, log *slog.Logger) (*shared, error) {
	c, err := ha.Dial(ha.ClientConfig{Endpoints: cfg.Endpoints, Username: cfg.Username, Password: cfg.Password,
		CAFile: cfg.TLS.CAFile, CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile})
	if err != nil {
		return nil, err
	}
	name := cfg.Replica
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			c.Close()
			return nil, errors.New("store.etcd.replica is not set and the host has no name: name this replica")
		}
	}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	r, err := ha.Join(jctx, ha.Config{Client: c, Prefix: cfg.Prefix + "ha/", Name: name, TTL: time.Duration(cfg.SessionTTL), Log: log})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s did not start a session within 20s (are the endpoints, TLS and credentials right?): %w", cfg, err)
	}
	kv := ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{MaxOps: cfg.MaxTxnOps, Session: r})
	return &shared{cfg: cfg, replica: r, kv: kv, close: func() { r.Close(); c.Close() }}, nil
}

// open opens the shared journal, sealing with the same key as every replica.
func (s *shared) open(dir string, opts store.Options) (*store.Store, error) {
	return store.OpenShared(s.kv, dir, s.cfg.String(), opts)
}

// timerJournal is the bot's Config.TimerJournal: the journal fenced by this replica's term.
func (s *shared) timerJournal() (*store.Store, error) {
	if st := s.fenced.Load(); st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("replica %s: %w", s.replica.Name(), ha.ErrNotLeader)
}

// lead campaigns for as long as ctx and the session last. In each term won, this replica
// runs what exactly one replica must: the settling of entries left executing, the timers
// (schedules, temporary ends, deliveries), their refresh from the shared journal, expiries
// and housekeeping. They stop with the term, before another replica can begin one.
// It returns ha.ErrSessionLost when the session ended: the replica can no longer claim
// anything, and must start again.
func (s *shared) lead(ctx context.Context, b *bot.Bot, st *store.Store, log *slog.Logger) error {
	return s.replica.Lead(ctx, func(term ha.Term) {
		s.fenced.Store(st.Fenced(s.kv.Fenced(term)))
		defer s.fenced.Store(nil)
		log.Info("leading: this replica runs the timers", "replica", s.replica.Name())
		b.Reconcile(term.Ctx)
		if err := b.LoadTimers(term.Ctx); err != nil {
			log.Error("schedules", "err", err)
		}
		go every(term.Ctx, 5*time.Second, func() {
			if err := b.RefreshTimers(); err != nil {
				log.Error("refresh the timers from the shared journal", "err", err)
			}
		})
		go housekeeping(term.Ctx, b, st, log)
		b.RunTimers(term.Ctx, time.Second)
		log.Info("no longer leading: timers stopped", "replica", s.replica.Name())
	})
}

// leading is 1 while this replica leads (the mongobot_leader gauge).
func (s *shared) leading() float64 {
	if s.replica.Leading() {
		return 1
	}
	return 0
}
