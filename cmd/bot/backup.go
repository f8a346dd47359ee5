package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mongobot/ha"
	"mongobot/store"
)

// journalBackup writes a backup of the journal (store.Backup) to --out, or stdout with
// --out -. It reads from one transaction: on bbolt the file itself while the bot is stopped,
// or a snapshot the running bot hands out; on etcd one revision, while the replicas run.
// A file is written 0600 beside its final name and renamed into place when whole.
func journalBackup(args []string, env func(string) (string, bool), w, stderr io.Writer) error {
	fs := flags("journal backup")
	out := fs.String("out", "", "the backup file, or - for stdout")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		*out = "mongobot-backup-" + time.Now().UTC().Format("20060102T150405Z") + ".jsonl"
	}
	// The folder is looked at first: a typo there costs no read of the journal.
	if *out != "-" {
		if fi, err := os.Stat(filepath.Dir(*out)); err != nil || !fi.IsDir() {
			return usageError{fmt.Sprintf("journal backup --out %s: the folder %s does not exist; create it or name another", *out, filepath.Dir(*out))}
		}
	}
	st, closeJournal, err := openReader(env, stderr)
	if err != nil {
		return err
	}
	defer closeJournal()
	// On bbolt the store read may be a snapshot in a temporary folder: the backup names
	// the journal it is a copy of.
	source := ""
	if sharedConfig(env) == nil {
		source, _ = filepath.Abs(filepath.Join(dataDir(env), store.FileName))
	}
	var buf bytes.Buffer
	h, err := st.Backup(&buf, source)
	if err != nil {
		return err
	}
	say := w
	if *out == "-" {
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		say = stderr
	} else if err := writeAtomic(*out, buf.Bytes()); err != nil {
		return err
	}
	where := *out
	if where == "-" {
		where = "stdout"
	}
	fmt.Fprintf(say, "backed up %d keys of %s (%s, schema %d) to %s: %s\n", h.Records, h.Source, h.Backend, h.Schema, where, counts(h.Counts))
	fmt.Fprintln(say, "the backup holds the sealed passwords but not their key: keep BOT_ENCRYPTION_KEY (or the key file) to restore it")
	return nil
}

// counts is a backup's record counts, for people: "entries 12, requests 14, ...".
func counts(c map[string]int) string {
	var parts []string
	for _, name := range []string{"entries", "requests", "schedules", "secrets"} {
		parts = append(parts, fmt.Sprintf("%s %d", name, c[name]))
	}
	return strings.Join(parts, ", ")
}

// writeAtomic writes data to path, owner-only: to a temporary file in the same folder, synced,
// then renamed over path, so that path holds a whole backup or what it held before.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write the backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, there is nothing by that name
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write the backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write the backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// journalRestore restores a backup into an empty journal: the data folder in BOT_DATA_DIR
// (no journal.db in it), or, with store.etcd, an empty prefix. It verifies the whole backup
// and that the key opens its sealed passwords before it writes anything, then asks.
func journalRestore(args []string, env func(string) (string, bool), stdin io.Reader, w io.Writer) error {
	fs := flags("journal restore")
	yes := fs.Bool("yes", false, "go ahead without asking")
	// The file may come before --yes, as people type it: flags are parsed on both sides.
	var files []string
	for {
		if err := parse(fs, args, len(args)); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case len(files) == 0:
		return usageError{"journal restore needs the backup file; run mongobot journal restore --help for its usage"}
	case len(files) > 1:
		return usageError{fmt.Sprintf("journal restore takes one backup file, but was given %q; run mongobot journal restore --help for its usage", strings.Join(files, " "))}
	}
	file := files[0]
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("journal restore: the backup %s cannot be read (%v); name the file mongobot journal backup wrote", file, errors.Unwrap(err))
	}
	b, err := store.ReadBackup(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was changed", file, err)
	}
	var key []byte
	if k := getenv(env, "BOT_ENCRYPTION_KEY", ""); k != "" {
		if key, err = store.ParseKey(k); err != nil {
			return usageError{fmt.Sprintf("BOT_ENCRYPTION_KEY: %v", err)}
		}
	}
	dir := dataDir(env)
	if err := b.CheckKey(dir, key); err != nil {
		return fmt.Errorf("%v: set BOT_ENCRYPTION_KEY to the key of the bot that took the backup (or copy its %s into %s) and run restore again; nothing was changed", err, store.KeyFileName, dir)
	}
	cfg := sharedConfig(env)
	target := filepath.Join(dir, store.FileName)
	if cfg != nil {
		target = cfg.String()
	} else if _, err := os.Lstat(target); err == nil {
		// Said before asking; RestoreFile checks again, and links without replacing.
		return restoreError(fmt.Errorf("%w: %s already holds a journal (%s): restore into an empty data folder (set BOT_DATA_DIR to a new one), or move that file away first", store.ErrNotEmpty, dir, store.FileName))
	}
	fmt.Fprintf(w, "restore will write the backup %s (taken %s from %s, %s, schema %d: %d keys; %s) into %s, which must hold no journal.\n",
		file, stamp(b.Header.Created), b.Header.Source, b.Header.Backend, b.Header.Schema, b.Header.Records, counts(b.Header.Counts), target)
	if err := confirm(stdin, w, *yes, "journal restore", "writes a journal"); err != nil {
		return err
	}
	if cfg == nil {
		if err := store.RestoreFile(dir, b); err != nil {
			return restoreError(err)
		}
	} else {
		c, err := dial(cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		db := ha.NewKV(c, cfg.Prefix+"journal/", ha.KVOptions{MaxOps: cfg.MaxTxnOps, Timeout: time.Minute})
		if err := store.RestoreShared(db, cfg.String(), b, store.RestoreOptions{MaxOps: cfg.MaxTxnOps}); err != nil {
			return sharedRestoreError(err, cfg.Prefix+"journal/")
		}
	}
	fmt.Fprintf(w, "restored %d keys into %s: %s\n", b.Header.Records, target, counts(b.Header.Counts))
	fmt.Fprintln(w, "start the bot with the same BOT_ENCRYPTION_KEY (or key file): it resumes the pending work (temporary ends, deliveries, schedules) from the journal")
	return nil
}

// sharedRestoreError says how to fix a restore into etcd that failed: refused before it
// wrote, stopped with its mark in place, or having lost its mark after it wrote.
func sharedRestoreError(err error, prefix string) error {
	switch {
	case errors.Is(err, store.ErrRestoreLost):
		// Its mark is gone: a replica started now would take part of a backup for a journal.
		return fmt.Errorf("%w; start no replica on it: delete it (etcdctl del --prefix %s) and run restore again", err, prefix)
	case errors.Is(err, store.ErrNotEmpty):
		return restoreError(err)
	}
	// Part of the backup may be in etcd, marked unfinished: no replica starts on it.
	return fmt.Errorf("%w: the prefix may hold part of the backup, which no replica will start on; delete it (etcdctl del --prefix %s) and run restore again", err, prefix)
}

// restoreError says how to fix a refused restore.
func restoreError(err error) error {
	if errors.Is(err, store.ErrNotEmpty) {
		return fmt.Errorf("%w; nothing was changed", err)
	}
	return err
}
