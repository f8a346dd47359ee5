package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"mongobot/ha"
	"mongobot/store"
)

// journalVerify checks that every record of the journal is one a bot wrote (store.Verify),
// and lists those that are not. It only reads, works while the bot runs, and fails (exit 1)
// when it finds any, so a cron job or a check can alert on it.
func journalVerify(args []string, env func(string) (string, bool), w, stderr io.Writer) error {
	fs := flags("journal verify")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	st, closeJournal, err := openReader(env, stderr)
	if err != nil {
		return err
	}
	defer closeJournal()
	v, err := st.Verify()
	if errors.Is(err, store.ErrBadKey) {
		return fmt.Errorf("%v: verify needs the key the bot authenticates its records with; give it in BOT_ENCRYPTION_KEY", err)
	}
	if err != nil {
		return err
	}
	where := journalName(env, st)
	if v.Unadopted {
		fmt.Fprintf(w, "the journal on %s was written by a version that did not authenticate its records: the bot acts on none of its %d records until they are adopted.\n"+
			"Look at them (mongobot journal list, mongobot journal export), then run mongobot journal adopt.\n", where, v.Checked)
		return errors.New("the journal awaits adoption")
	}
	if len(v.Suspects) == 0 {
		fmt.Fprintf(w, "checked %d records on %s: every one was written by the bot\n", v.Checked, where)
		return nil
	}
	fmt.Fprintf(w, "%d of the %d records on %s fail their authentication: they were written or changed outside the bot, which will not act on them.\n", len(v.Suspects), v.Checked, where)
	for _, s := range v.Suspects {
		fmt.Fprintf(w, "  %-8s %-8s %s\n", s.Kind, s.Key, s.Why)
	}
	fmt.Fprintln(w, "Find who could write the journal's storage and close that access; then restore a backup taken before the change (mongobot journal restore), or leave them: they stay refused.")
	return fmt.Errorf("%d record(s) fail their authentication", len(v.Suspects))
}

// journalName is where the journal is, for people: the file, or the etcd prefix.
func journalName(env func(string) (string, bool), st *store.Store) string {
	if sharedConfig(env) == nil {
		return dataDir(env) + "/" + store.FileName
	}
	return st.Path()
}

// journalAdopt authenticates the records of a journal an older version wrote (store.Adopt),
// once a person has looked at them; it asks first. On bbolt the bot must be stopped; on etcd,
// every replica of the older version must be, or its later writes are refused in turn.
func journalAdopt(args []string, env func(string) (string, bool), stdin io.Reader, w io.Writer) error {
	fs := flags("journal adopt")
	yes := fs.Bool("yes", false, "go ahead without asking")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	var opts store.Options
	if err := withKey(env, &opts); err != nil {
		return err
	}
	var open func(ro bool) (*store.Store, error)
	if cfg := sharedConfig(env); cfg != nil {
		if opts.Key == nil {
			return usageError{"journal adopt on etcd needs the replicas' key in BOT_ENCRYPTION_KEY; nothing was changed"}
		}
		c, err := dial(cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		kv := ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{MaxOps: cfg.MaxTxnOps})
		open = func(ro bool) (*store.Store, error) {
			o := opts
			o.ReadOnly = ro
			return store.OpenShared(kv, dataDir(env), cfg.String(), o)
		}
	} else {
		open = func(ro bool) (*store.Store, error) {
			if ro {
				return openJournal(env, "adopt the journal")
			}
			o := opts
			o.LockTimeout = 2 * time.Second
			st, err := store.Open(dataDir(env), o)
			if errors.Is(err, store.ErrLocked) {
				return nil, fmt.Errorf("%v: stop the bot to adopt the journal", err)
			}
			return st, err
		}
	}
	// Look first, read-only: a journal with nothing to adopt asks nothing.
	ro, err := open(true)
	if err != nil {
		return err
	}
	v, verr := ro.Verify()
	where := journalName(env, ro)
	ro.Close()
	if verr == nil && !v.Unadopted {
		if len(v.Suspects) > 0 {
			return fmt.Errorf("the journal on %s is authenticated, and %d of its records fail: adopt never vouches for those (run mongobot journal verify); nothing was changed", where, len(v.Suspects))
		}
		fmt.Fprintf(w, "every record of the journal on %s is authenticated already: nothing to adopt\n", where)
		return nil
	}
	fmt.Fprintf(w, "journal adopt will authenticate, as the bot's own, these %d records of the journal on %s, which an older version wrote, and record the adoption in the audit trail:\n", len(v.Suspects), where)
	for _, s := range v.Suspects {
		fmt.Fprintf(w, "  %s %s\n", s.Kind, s.Key)
	}
	fmt.Fprintln(w, "The bot will then act on them (pending requests, temporary grants to end, schedules): look at them first with mongobot journal list, show <id> and export.")
	if err := confirm(stdin, w, *yes, "journal adopt", "vouches for every record of the journal"); err != nil {
		return err
	}
	st, err := open(false)
	if err != nil {
		return err
	}
	defer st.Close()
	who := "cli"
	if u, ok := env("USER"); ok && u != "" {
		who = "cli:" + u
	}
	ad, err := st.Adopt(who)
	if errors.Is(err, store.ErrNothingToAdopt) {
		fmt.Fprintf(w, "every record of the journal on %s is authenticated already: nothing to adopt\n", where)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "adopted the journal on %s: %d record(s) authenticated; the adoption is in the audit trail (by %s)\n", where, ad.Tagged, who)
	return nil
}
