package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"mongobot/config"
	"mongobot/ha"
	"mongobot/store"
)

// rekey re-encrypts the sealed passwords with a new key; on etcd it is rekeyShared. With the
// key in the key file, a new key is made and the file replaced; with BOT_ENCRYPTION_KEY, the
// new key must be given in BOT_NEW_ENCRYPTION_KEY and then set as BOT_ENCRYPTION_KEY for the
// bot. It is destructive (the old key stops opening the secrets), so it says what it will do
// and goes ahead only with --yes or a "yes" typed at a terminal; until then nothing is written.
func rekey(args []string, env func(string) (string, bool), stdin io.Reader, w io.Writer) error {
	fs := flags("rekey")
	yes := fs.Bool("yes", false, "go ahead without asking")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if cfg := sharedConfig(env); cfg != nil {
		return rekeyShared(cfg, *yes, env, stdin, w)
	}
	fromEnv := getenv(env, "BOT_ENCRYPTION_KEY", "") != ""
	next := getenv(env, "BOT_NEW_ENCRYPTION_KEY", "")
	if fromEnv && next == "" {
		return usageError{"the key comes from BOT_ENCRYPTION_KEY: give the new one in BOT_NEW_ENCRYPTION_KEY (64 hex digits, e.g. from openssl rand -hex 32)"}
	}
	given := next != ""
	if next == "" {
		next = store.NewKey()
	}
	key, err := store.ParseKey(next)
	if err != nil {
		return usageError{fmt.Sprintf("BOT_NEW_ENCRYPTION_KEY: %v", err)}
	}
	// Look first, read-only: what there is to re-key, and whether a bot holds the file.
	ro, err := openJournal(env, "change the key")
	if err != nil {
		return err
	}
	n, err := ro.SecretCount()
	path, keyFile := ro.Path(), ro.KeyFile()
	ro.Close()
	if err != nil {
		return err
	}
	if !fromEnv && keyFile == "" && n > 0 {
		// The passwords were sealed with a key from the environment, which is not set now:
		// a new key file would open none of them.
		return usageError{fmt.Sprintf("%s has %d sealed password(s) but no key file and BOT_ENCRYPTION_KEY is not set: they were sealed with a key from the environment; set BOT_ENCRYPTION_KEY to it and the new key in BOT_NEW_ENCRYPTION_KEY; nothing was changed", path, n)}
	}
	switch {
	case fromEnv:
		fmt.Fprintf(w, "rekey will re-encrypt the %d sealed password(s) in %s with the key in BOT_NEW_ENCRYPTION_KEY;\n"+
			"the key in BOT_ENCRYPTION_KEY will no longer open them, so start the bot with BOT_ENCRYPTION_KEY set to the new key.\n", n, path)
	case given:
		fmt.Fprintf(w, "rekey will re-encrypt the %d sealed password(s) in %s with the key in BOT_NEW_ENCRYPTION_KEY\n"+
			"and write that key over the key file %s; the old key will no longer open them.\n", n, path, keyFile)
	default:
		fmt.Fprintf(w, "rekey will re-encrypt the %d sealed password(s) in %s with a new random key\n"+
			"and write it over the key file %s; the old key will no longer open them.\n", n, path, keyFile)
	}
	if err := confirm(stdin, w, *yes, "rekey", "changes the encryption key"); err != nil {
		return err
	}
	st, err := openStore(env, dataDir(env), store.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%v: stop the bot to change the key", err)
		}
		return err
	}
	defer st.Close()
	if err := st.Rekey(key); err != nil {
		return err
	}
	if fromEnv {
		fmt.Fprintln(w, "sealed passwords re-encrypted: set BOT_ENCRYPTION_KEY to the value of BOT_NEW_ENCRYPTION_KEY before starting the bot")
	} else {
		fmt.Fprintln(w, "sealed passwords re-encrypted with a new key; the key file is replaced")
	}
	return nil
}

// rekeyShared rotates the key of the shared journal on etcd while the replicas serve (see
// store.Store.Rekey): BOT_ENCRYPTION_KEY is the key the journal seals with now and
// BOT_NEW_ENCRYPTION_KEY the one it moves to, the same two every replica must hold by then.
// Run again, it finishes a rotation a crash interrupted. It joins no group.
func rekeyShared(cfg *config.Etcd, yes bool, env func(string) (string, bool), stdin io.Reader, w io.Writer) error {
	cur, next := getenv(env, "BOT_ENCRYPTION_KEY", ""), getenv(env, "BOT_NEW_ENCRYPTION_KEY", "")
	if cur == "" || next == "" {
		return usageError{fmt.Sprintf("%s keeps the journal on %s: rekey needs the key the replicas seal with now in BOT_ENCRYPTION_KEY and the new one in BOT_NEW_ENCRYPTION_KEY (64 hex digits, e.g. from openssl rand -hex 32), the new one given to every replica first; nothing was changed",
			getenv(env, "BOT_CONFIG", "bot.yaml"), cfg)}
	}
	var opts store.Options
	if err := withKey(env, &opts); err != nil {
		return err
	}
	newKey, oldID := opts.OldKeys[0], store.Fingerprint(opts.Key)
	newID := store.Fingerprint(newKey)
	if newID == oldID {
		return usageError{"BOT_NEW_ENCRYPTION_KEY is the same key as BOT_ENCRYPTION_KEY: give a new one (openssl rand -hex 32); nothing was changed"}
	}
	c, err := dial(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	journal := ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{MaxOps: cfg.MaxTxnOps})
	// Look first, read-only: a prefix no replica set up is reported, not created.
	ro := opts
	ro.ReadOnly = true
	st, err := store.OpenShared(journal, dataDir(env), cfg.String(), ro)
	if err != nil {
		return err
	}
	rot, err := st.Rotation()
	st.Close()
	if err != nil {
		return err
	}
	switch {
	case rot.Sealing == newID && rot.From == "":
		fmt.Fprintf(w, "the journal on %s already seals with key %s (BOT_NEW_ENCRYPTION_KEY), and all %d sealed password(s) with it: nothing to do.\n", cfg, newID, rot.Secrets)
		retireHint(w, oldID)
		return nil
	case rot.Sealing == newID:
		fmt.Fprintf(w, "rekey will finish the rotation of the journal on %s from key %s to key %s that was interrupted: %d of its %d sealed password(s) are still sealed with the old key.\n",
			cfg, rot.From, newID, rot.Behind, rot.Secrets)
	case rot.From != "":
		return fmt.Errorf("the journal on %s is moving from key %s to key %s, not to %s (BOT_NEW_ENCRYPTION_KEY): finish that rotation first, with BOT_NEW_ENCRYPTION_KEY set to the key of fingerprint %s; nothing was changed",
			cfg, rot.From, rot.Sealing, newID, rot.Sealing)
	case rot.Sealing != oldID:
		return fmt.Errorf("the journal on %s seals with key %s, but BOT_ENCRYPTION_KEY is key %s: set it to the key the replicas use now; nothing was changed", cfg, rot.Sealing, oldID)
	default:
		fmt.Fprintf(w, "rekey will re-encrypt the %d sealed password(s) of the journal on %s from key %s (BOT_ENCRYPTION_KEY) to key %s (BOT_NEW_ENCRYPTION_KEY), while the replicas run.\n"+
			"From its first step every replica seals with the new key: each must already hold both keys (BOT_NEW_ENCRYPTION_KEY beside BOT_ENCRYPTION_KEY), or it cannot seal or reveal passwords until it does.\n",
			rot.Secrets, cfg, oldID, newID)
	}
	if err := confirm(stdin, w, yes, "rekey", "changes the encryption key"); err != nil {
		return err
	}
	st, err = store.OpenShared(journal, dataDir(env), cfg.String(), opts)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Rekey(newKey); err != nil {
		return err
	}
	if rot, err = st.Rotation(); err != nil {
		return err
	}
	fmt.Fprintf(w, "the journal on %s seals with key %s: all %d sealed password(s) re-encrypted.\n", cfg, newID, rot.Secrets)
	retireHint(w, oldID)
	return nil
}

// retireHint says how to retire the old key once the journal no longer needs it.
func retireHint(w io.Writer, oldID string) {
	fmt.Fprintf(w, "Next, retire the old key %s: restart the replicas one at a time with BOT_ENCRYPTION_KEY set to the new key and BOT_NEW_ENCRYPTION_KEY removed.\n", oldID)
}

// checkRotation reports, for mongobot check, the keys of the shared journal: the one it seals
// with, a rotation left unfinished, and whether the keys given here (BOT_ENCRYPTION_KEY,
// BOT_NEW_ENCRYPTION_KEY) are what a replica started with them needs. Fingerprints only.
func checkRotation(env func(string) (string, bool), cfg *config.Etcd, w io.Writer, problem func(string, ...any)) {
	var opts store.Options
	if err := withKey(env, &opts); err != nil {
		problem("keys: %v", err)
		return
	}
	c, err := dial(cfg)
	if err != nil {
		return // checkShared said so
	}
	defer c.Close()
	opts.ReadOnly = true
	st, err := store.OpenShared(ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{Timeout: 5 * time.Second}), dataDir(env), cfg.String(), opts)
	if errors.Is(err, store.ErrNoJournal) {
		return
	}
	if err != nil {
		problem("keys: %v", err)
		return
	}
	defer st.Close()
	rot, err := st.Rotation()
	if err != nil {
		problem("keys: %v", err)
		return
	}
	if rot.Sealing == "" {
		return // no replica has sealed anything yet
	}
	fmt.Fprintf(w, "keys: the journal seals with key %s; %d sealed password(s)\n", rot.Sealing, rot.Secrets)
	if rot.From != "" {
		problem("keys: the rotation from key %s to key %s is unfinished: %d sealed password(s) still use the old key; finish it with mongobot rekey (BOT_ENCRYPTION_KEY the old key, BOT_NEW_ENCRYPTION_KEY the new one)",
			rot.From, rot.Sealing, rot.Behind)
	}
	if opts.Key == nil {
		return // nothing given here to judge
	}
	given := []string{store.Fingerprint(opts.Key)}
	for _, k := range opts.OldKeys {
		given = append(given, store.Fingerprint(k))
	}
	holds := func(id string) bool { return id == "" || slices.Contains(given, id) }
	switch {
	case !holds(rot.Sealing) || !holds(rot.From):
		problem("keys: the keys given here (%s) lack key %s the journal needs: a replica started with them is refused",
			strings.Join(given, ", "), firstMissing(holds, rot.Sealing, rot.From))
	case len(given) > 1 && given[1] == rot.Sealing && rot.From == "":
		fmt.Fprintf(w, "keys: the rotation to key %s (BOT_NEW_ENCRYPTION_KEY) is done: set BOT_ENCRYPTION_KEY to it and remove BOT_NEW_ENCRYPTION_KEY on every replica\n", rot.Sealing)
	case len(given) > 1 && given[0] == rot.Sealing:
		fmt.Fprintf(w, "keys: ready to rotate to key %s (BOT_NEW_ENCRYPTION_KEY): once every replica holds it, run mongobot rekey\n", given[1])
	}
	for _, id := range rot.Missing {
		if holds(id) {
			continue
		}
		problem("keys: some sealed passwords use key %s, which was not given here", id)
	}
}

// firstMissing is the first of ids that holds says is not held.
func firstMissing(holds func(string) bool, ids ...string) string {
	for _, id := range ids {
		if !holds(id) {
			return id
		}
	}
	return ""
}
