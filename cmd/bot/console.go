package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"mongobot/bot"
	"mongobot/bot/console"
	"mongobot/config"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
	"mongobot/store"
)

//go:embed demo.yaml
var demoConfig []byte

// demoUsers are the console's people in the demo: dev asks, alice and bob approve.
var demoUsers = map[string]string{"U0DEV": "dev", "U0ALICE": "alice", "U0BOB": "bob"}

// runConsole runs the bot with the terminal as the chat. With --demo, or when there is no config
// file, it uses the embedded demo config and starts the MongoDB emulator in-process as a demo
// server, with a few users to play with. With --demo --config FILE it runs that config's
// policies on the emulator instead (see runEmulated).
func runConsole(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout io.Writer) error {
	fs := flags("console")
	demo := fs.Bool("demo", false, "use the embedded demo config and an in-process demo MongoDB (the emulator)")
	cfgFlag := fs.String("config", "", "the config file (default $BOT_CONFIG, or bot.yaml); with --demo, try its approval rules, quorums,\n"+
		"just-in-time policy and schedules on the in-process emulator, under its connectors' names, instead of its servers")
	as := fs.String("as", "", "the user to act as at first (a name or a Slack user id)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *demo && *cfgFlag != "" {
		return runEmulated(ctx, *cfgFlag, *as, env, stdin, stdout)
	}
	cfgPath := getenv(env, "BOT_CONFIG", "bot.yaml")
	if *cfgFlag != "" {
		cfgPath = *cfgFlag
		if _, err := os.Stat(cfgPath); err != nil {
			return usageError{fmt.Sprintf("--config %s cannot be read (%v); fix the path, or run mongobot console --demo", cfgPath, errors.Unwrap(err))}
		}
		env = withVar(env, "BOT_CONFIG", cfgPath)
	}
	if _, err := os.Stat(cfgPath); err != nil && !*demo {
		if _, set := env("BOT_CONFIG"); set {
			// A config named on purpose and not found is a mistake, not a wish for the demo.
			return usageError{fmt.Sprintf("BOT_CONFIG names %s, which cannot be read (%v); fix the path, or run mongobot console --demo", cfgPath, errors.Unwrap(err))}
		}
		fmt.Fprintf(stdout, "(no config file %s: starting the demo)\n", cfgPath)
		*demo = true
	}
	var cfg *config.Config
	var err error
	users := map[string]string{}
	dir := dataDir(env)
	if *demo {
		emu, err := mongotest.NewServer(mongotest.Options{})
		if err != nil {
			return fmt.Errorf("demo server: %v", err)
		}
		defer emu.Close()
		if err := seedDemo(ctx, emu.URI()); err != nil {
			return fmt.Errorf("demo server: %v", err)
		}
		cfg, err = config.Parse(demoConfig, func(k string) (string, bool) {
			if k == "DEMO_MONGO_URI" {
				return emu.URI(), true
			}
			return env(k)
		})
		if err != nil {
			return fmt.Errorf("demo config: %v", err)
		}
		users = demoUsers
		if _, ok := env("BOT_DATA_DIR"); !ok {
			tmp, err := os.MkdirTemp("", "mongobot-demo")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		fmt.Fprintf(stdout, "DEMO: connector %q is the MongoDB emulator (connector/mongotest) running inside this process at %s,\n"+
			"not a real MongoDB. Its users: app_user (readWrite@shop), reporting (read@analytics), and admin (root), the bot's own login.\n"+
			"People: dev asks; alice and bob approve. Type help for the console's commands.\n", "demo", emu.Addr())
	} else if cfg, err = loadConfig(env); err != nil {
		return err
	}
	conns, err := connectors(cfg)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	st, err := openStore(env, dir, store.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := refuseUnadopted(st); err != nil {
		return err
	}
	if !*demo {
		warnKeyFile(newLogger(cfg.Log, os.Stderr), st)
	}
	con := console.New(stdout, cfg.SlashCommand, users, map[string]string{cfg.Approvals.Channel: "approvals", "C0CONSOLE": "console"})
	con.SetStyle(termStyle(stdout, env))
	setScreen(con, stdout, env)
	start := *as
	if start == "" && *demo {
		start = "dev"
	}
	if start != "" {
		if err := con.SetUser(start); err != nil {
			return usageError{err.Error()}
		}
	}
	if !*demo {
		ids, groups := configPeople(cfg)
		con.SetKnown(ids)
		fmt.Fprint(stdout, consoleIntro(con, cfgPath, groups))
	}
	bc := botConfig(cfg, conns, newLogger(config.Log{Level: "error"}, os.Stderr))
	if bc.Deliveries, _, err = deliveries(cfg); err != nil {
		return err
	}
	// Anyone at this terminal can type as anyone, the demo too (its journal can be kept with
	// BOT_DATA_DIR): every journal entry and every card made here says it came from the console.
	bc.Via = "console"
	return runBot(ctx, bc, st, con, stdin, stdout)
}

// runEmulated is `console --demo --config FILE`: FILE's rules, quorums, just-in-time policy
// and schedule settings, on an in-process emulator under each of its connectors' names. No
// server it names is dialled and no credential is read (every ${VAR} is a placeholder);
// deliveries are held in memory, never sent; the journal is a temporary one, whatever
// BOT_DATA_DIR says, so nothing of the demo mixes with the real bot's.
func runEmulated(ctx context.Context, cfgPath, as string, env func(string) (string, bool), stdin io.Reader, stdout io.Writer) error {
	cfg, err := emulatedConfig(cfgPath)
	if err != nil {
		return err
	}
	emus, err := emulate(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeEmulators(emus)
	conns, err := connectors(cfg)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	dir, err := os.MkdirTemp("", "mongobot-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	none := func(string) (string, bool) { return "", false }
	st, err := openStoreWith(none, dir, store.Options{LockTimeout: 2 * time.Second}, store.Open)
	if err != nil {
		return err
	}
	defer st.Close()
	con := console.New(stdout, cfg.SlashCommand, nil, consoleChannels(cfg))
	con.SetStyle(termStyle(stdout, env))
	setScreen(con, stdout, env)
	if as != "" {
		if err := con.SetUser(as); err != nil {
			return usageError{err.Error()}
		}
	}
	ids, groups := configPeople(cfg)
	con.SetKnown(ids)
	fmt.Fprintf(stdout, "DEMO of %s: its approval rules, quorums and just-in-time policy, on the MongoDB emulator (connector/mongotest)\n"+
		"running inside this process under the name of each of its connectors (%s). None of its servers is contacted and no\n"+
		"credential is read: every ${VAR} stands for %q. Deliveries are held in memory, never sent to Vault, Kubernetes or a\n"+
		"command. The journal is a temporary one, gone at exit. Each emulator has the users app_user (readWrite@shop) and\n"+
		"reporting (read@analytics).\n", cfgPath, emulatedNames(cfg), demoPlaceholder)
	fmt.Fprint(stdout, peopleIntro(con, groups))
	bc := botConfig(cfg, conns, newLogger(config.Log{Level: "error"}, os.Stderr))
	if bc.Deliveries, _, err = deliveriesWith(cfg, newHeldTarget); err != nil {
		return err
	}
	bc.Via, bc.Emulated = "console", true
	return runBot(ctx, bc, st, con, stdin, stdout)
}

// consoleChannels names the config's channels for the console's headers.
func consoleChannels(cfg *config.Config) map[string]string {
	ch := map[string]string{"C0CONSOLE": "console"}
	if cfg.Schedules.Channel != "" {
		ch[cfg.Schedules.Channel] = "schedules"
	}
	ch[cfg.Approvals.Channel] = "approvals"
	return ch
}

// runBot runs bot configuration bc with con as the chat until stdin ends.
func runBot(ctx context.Context, bc bot.Config, st *store.Store, con *console.Adapter, stdin io.Reader, stdout io.Writer) error {
	b := bot.New(bc, st, con, nil)
	b.Reconcile(ctx)
	if err := b.LoadTimers(ctx); err != nil {
		return err
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go b.RunTimers(tctx, time.Second)
	var prompt func(string)
	if isTerminal(stdin) {
		prompt = func(string) { con.Prompt() }
	}
	return con.Run(ctx, stdin, b, prompt)
}

// withVar is env with name set to value.
func withVar(env func(string) (string, bool), name, value string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == name {
			return value, true
		}
		return env(k)
	}
}

// consoleIntro is what the console says at start outside the demo: who you are, how to be
// someone else, and that nobody is verified here.
func consoleIntro(con *console.Adapter, cfgPath string, groups []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Console on %s: this terminal is the chat; commands run on the config's real connectors.\n", cfgPath)
	b.WriteString(peopleIntro(con, groups))
	return b.String()
}

// peopleIntro says who you are, how to be someone else, and that nobody is verified here.
func peopleIntro(con *console.Adapter, groups []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "You are %s. %s\n", con.User(), con.SwitchHelp())
	if len(groups) > 0 {
		fmt.Fprintf(&b, "Approvers named by user group (%s) cannot approve here: without Slack the console cannot tell who is in a group.\n", strings.Join(groups, ", "))
	}
	b.WriteString("Anyone at this terminal can act as anyone: every card and journal entry made here is marked \"via console\".\n" +
		"Start with --as <user id> to begin as someone. Type help for the console's commands.\n")
	return b.String()
}

// configPeople is the user ids and user groups the config names, in order: approvers first,
// then those on the access list.
func configPeople(cfg *config.Config) (ids, groups []string) {
	seen := map[string]bool{}
	add := func(g config.Group) {
		for _, u := range g.Users {
			if !seen[u] {
				seen[u] = true
				ids = append(ids, u)
			}
		}
		for _, u := range g.Usergroups {
			if !seen[u] {
				seen[u] = true
				groups = append(groups, u)
			}
		}
	}
	add(cfg.Approvals.Approvers)
	for _, r := range cfg.Approvals.Rules {
		if r.Approvers != nil {
			add(*r.Approvers)
		}
	}
	add(cfg.Access)
	return ids, groups
}

// termStyle is what the console may send besides text: attributes on a terminal only (a
// transcript in a file stays clean), colour too unless NO_COLOR is set (https://no-color.org),
// and nothing on TERM=dumb.
func termStyle(w io.Writer, env func(string) (string, bool)) console.Style {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return styleFor(tty, env)
}

// setScreen lets the console redraw an updated message in place when stdout is a terminal
// whose size it can read (and not TERM=dumb).
func setScreen(con *console.Adapter, w io.Writer, env func(string) (string, bool)) {
	if term, _ := env("TERM"); term == "dumb" {
		return
	}
	if f, ok := w.(*os.File); ok {
		if cols, rows := termSize(f); cols > 0 && rows > 0 {
			con.SetScreen(cols, rows)
		}
	}
}

func styleFor(tty bool, env func(string) (string, bool)) console.Style {
	if term, _ := env("TERM"); !tty || term == "dumb" {
		return console.Style{}
	}
	noColor, _ := env("NO_COLOR")
	return console.Style{Bold: true, Color: noColor == ""}
}

// seedDemo creates the demo server's users.
func seedDemo(ctx context.Context, uri string) error {
	m, err := connector.New(connector.Config{Name: "demo-setup", URI: secret.New(uri), SkipVerifyLogin: true})
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	for _, u := range []struct {
		name string
		role connector.Role
	}{{"app_user", connector.Role{Name: "readWrite", DB: "shop"}}, {"reporting", connector.Role{Name: "read", DB: "analytics"}}} {
		if _, _, err := m.CreateUser(ctx, "create-user", connector.UserRef{User: u.name, DB: "admin"}, []connector.Role{u.role}); err != nil {
			return err
		}
	}
	return nil
}
