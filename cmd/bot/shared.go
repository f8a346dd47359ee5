package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// dial makes a client of the etcd cluster of store.etcd.
func dial(cfg *config.Etcd) (*ha.Client, error) {
	return ha.Dial(ha.ClientConfig{Endpoints: cfg.Endpoints, Username: cfg.Username, Password: cfg.Password,
		CAFile: cfg.TLS.CAFile, CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile})
}

// joinShared connects to etcd and starts this replica's session.
func joinShared(ctx context.Context, cfg *config.Etcd, log *slog.Logger) (*shared, error) {
	c, err := dial(cfg)
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
	// Long enough for a replica restarted under its name to find it free again.
	jctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.SessionTTL)+20*time.Second)
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
		// Requests a replica that died left approved, or begun without an entry.
		go every(term.Ctx, time.Minute, func() { b.ReconcileRequests(term.Ctx) })
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

// checkShared reports, for bot check, the shared journal's etcd cluster: each member and which
// leads the cluster, and which replica leads the bot. It joins no group and writes nothing.
func checkShared(cfg *config.Etcd, w io.Writer, problem func(string, ...any)) {
	c, err := dial(cfg)
	if err != nil {
		problem("store: %v", err)
		return
	}
	defer c.Close()
	members, err := ha.Members(c, 5*time.Second)
	if err != nil {
		problem("store: %s: %v", cfg, err)
		return
	}
	fmt.Fprintf(w, "store: %s: %d member(s)\n", cfg, len(members))
	for _, m := range members {
		switch {
		case m.Err != nil:
			problem("  member %s at %s does not answer: %v", m.Name, m.Endpoint, m.Err)
		case m.Leader:
			fmt.Fprintf(w, "  member %s at %s (leads the cluster)\n", m.Name, m.Endpoint)
		default:
			fmt.Fprintf(w, "  member %s at %s\n", m.Name, m.Endpoint)
		}
	}
	// In clear, the password and every record cross the network readable.
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(strings.ToLower(ep), "http://") {
			problem("  endpoint %s is plain http: the bot's etcd password and its journal cross the network in clear. Serve etcd over TLS and use https:// with store.etcd.tls.ca_file (and a client certificate)", ep)
		}
	}
	// Off, etcd lets anyone who reaches it rewrite the journal: forge a request, a vote.
	switch on, err := ha.AuthEnabled(c, 5*time.Second); {
	case err != nil:
		problem("  etcd auth: cannot tell whether it is on: %v", err)
	case !on:
		problem("  etcd auth is OFF: whoever reaches the cluster can read and rewrite the bot's journal (forge requests and votes). Turn it on and give the bot a user limited to %s (deploy/etcd/setup.sh does both), then set store.etcd.username and its password, or a client certificate", cfg.Prefix)
	default:
		fmt.Fprintln(w, "  etcd auth: on")
	}
	switch leader, err := ha.LeaderOf(c, cfg.Prefix+"ha/", 5*time.Second); {
	case err != nil:
		problem("  bot leader: %v", err)
	case leader == "":
		fmt.Fprintln(w, "  bot leader: none (no replica is running, or one is being elected): timers wait for one")
	default:
		fmt.Fprintf(w, "  bot leader: replica %s runs the timers\n", leader)
	}
}

// refuseShared is the answer of the commands that write the bbolt file in the data folder
// when the config keeps the journal on etcd: they would change a journal the replicas do
// not use, or make one.
func refuseShared(env func(string) (string, bool)) error {
	cfg := sharedConfig(env)
	if cfg == nil {
		return nil
	}
	return usageError{fmt.Sprintf("%s keeps the journal on %s (store.etcd): this command works on the bbolt file in the data folder, which the replicas do not use. mongobot check reports the shared store; mongobot journal list, show and export read it",
		getenv(env, "BOT_CONFIG", "bot.yaml"), cfg)}
}

// sharedConfig is the config's store.etcd, or nil: no config here, or one without it (the
// data folder's file is the journal then).
func sharedConfig(env func(string) (string, bool)) *config.Etcd {
	cfg, err := loadConfig(env)
	if err != nil {
		return nil
	}
	return cfg.Store.Etcd
}

// openReader opens the journal for reading: the shared one on etcd when the config has
// store.etcd (joining no group, writing nothing), else the data folder's file, or, while a
// bot serves it, a snapshot of it the bot hands out (saying so on notice).
func openReader(env func(string) (string, bool), notice io.Writer) (*store.Store, func(), error) {
	cfg := sharedConfig(env)
	if cfg == nil {
		// A bot that answers on the socket holds the file: ask it at once rather than wait
		// out the lock. A socket nobody answers on is a crashed bot's: read the file.
		if _, err := os.Lstat(filepath.Join(dataDir(env), SocketName)); err == nil {
			snap, closeSnap, err := openSnapshot(env, dataDir(env), notice)
			if err == nil {
				return snap, closeSnap, nil
			}
			if !errors.Is(err, errNoSnapshot) {
				return nil, nil, err
			}
		}
		st, err := openJournal(env, "read the journal, or use history in Slack")
		if errors.Is(err, store.ErrLocked) {
			snap, closeSnap, serr := openSnapshot(env, dataDir(env), notice)
			if serr == nil {
				return snap, closeSnap, nil
			}
			if !errors.Is(serr, errNoSnapshot) {
				return nil, nil, serr
			}
			return nil, nil, fmt.Errorf("%v (%v)", err, serr)
		}
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	c, err := dial(cfg)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStoreWith(env, dataDir(env), store.Options{ReadOnly: true}, func(dir string, opts store.Options) (*store.Store, error) {
		// One read transaction is one revision, however long it takes: a backup of a large
		// journal reads for longer than a command's usual 10s.
		return store.OpenShared(ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{Timeout: snapshotTimeout}), dir, cfg.String(), opts)
	})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); c.Close() }, nil
}
