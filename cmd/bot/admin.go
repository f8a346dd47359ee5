package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"mongobot/store"
)

// check validates the config and reports, per connector, version, topology and which bot
// actions its account can and cannot perform. A connector that cannot be reached, or that
// lacks a privilege, makes the exit code non-zero.
func check(ctx context.Context, env func(string) (string, bool), w io.Writer) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "config: ok (%d connector(s), approvals in %s)\n", len(cfg.Connectors), cfg.Approvals.Channel)
	conns, err := connectors(cfg)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	var names []string
	for n := range conns {
		names = append(names, n)
	}
	sort.Strings(names)
	problems := 0
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		info, err := conns[n].Discover(cctx)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "%s: cannot check: %v\n", n, err)
			problems++
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", n, info)
		for _, a := range info.Privileges.Actions {
			switch {
			case a.Allowed != "":
				fmt.Fprintf(w, "  %-32s %s\n", a.Action, a.Allowed)
			default:
				fmt.Fprintf(w, "  %-32s cannot: missing %s\n", a.Action, strings.Join(a.Missing, ", "))
				problems++
			}
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) found", problems)
	}
	return nil
}

// journal reads the journal file; it works while the bot is stopped, and says so clearly when
// a running bot holds the file.
func journal(args []string, env func(string) (string, bool), w io.Writer) error {
	if len(args) == 0 {
		return usageError{"journal needs list, show <id> or export"}
	}
	st, err := openStore(env, dataDir(env), store.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%v: stop the bot to read the journal, or use history in Slack", err)
		}
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		n := 20
		if len(args) > 1 {
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return usageError{fmt.Sprintf("journal list: %q is not a count", args[1])}
			}
		}
		es, _, err := st.History(0, n)
		if err != nil {
			return err
		}
		for _, e := range es {
			line := fmt.Sprintf("#%d  %s  %-10s  %s %s on %s  by %s", e.ID, e.CreatedAt.UTC().Format(time.RFC3339), e.State, e.Action, e.Args["user"], e.Connector, e.Requester)
			if e.Error != "" {
				line += "  error: " + e.Error
			}
			fmt.Fprintln(w, line)
		}
		if len(es) == 0 {
			fmt.Fprintln(w, "the journal is empty")
		}
	case "show":
		if len(args) < 2 {
			return usageError{"journal show needs an id"}
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(args[1], "#"), 10, 64)
		if err != nil {
			return usageError{fmt.Sprintf("journal show: %q is not an id", args[1])}
		}
		e, err := st.Entry(id)
		if err != nil {
			return fmt.Errorf("journal entry #%d: %v", id, err)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	case "export":
		return st.Export(w)
	default:
		return usageError{fmt.Sprintf("journal %s: use list, show <id> or export", args[0])}
	}
	return nil
}

// rekey re-encrypts the sealed passwords with a new key. With the key in the key file, a new
// key is made and the file replaced; with BOT_ENCRYPTION_KEY, the new key must be given in
// BOT_NEW_ENCRYPTION_KEY and then set as BOT_ENCRYPTION_KEY for the bot.
func rekey(env func(string) (string, bool), w io.Writer) error {
	fromEnv := getenv(env, "BOT_ENCRYPTION_KEY", "") != ""
	next := getenv(env, "BOT_NEW_ENCRYPTION_KEY", "")
	if fromEnv && next == "" {
		return usageError{"the key comes from BOT_ENCRYPTION_KEY: give the new one in BOT_NEW_ENCRYPTION_KEY (64 hex digits, e.g. from openssl rand -hex 32)"}
	}
	if next == "" {
		next = store.NewKey()
	}
	key, err := store.ParseKey(next)
	if err != nil {
		return usageError{fmt.Sprintf("BOT_NEW_ENCRYPTION_KEY: %v", err)}
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
