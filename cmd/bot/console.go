package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"time"

	"mongobot/bot"
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

// console runs the bot with the terminal as the chat. With --demo, or when there is no config
// file, it uses the embedded demo config and starts the MongoDB emulator in-process as a demo
// server, with a few users to play with.
func console(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout io.Writer) error {
	fs := flags("console")
	demo := fs.Bool("demo", false, "use the embedded demo config and an in-process demo MongoDB (the emulator)")
	as := fs.String("as", "", "the user to act as at first (a name or a Slack user id)")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	cfgPath := getenv(env, "BOT_CONFIG", "bot.yaml")
	if _, err := os.Stat(cfgPath); err != nil && !*demo {
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
			"not a real MongoDB. Its users: app_user (readWrite@shop), reporting (read@analytics).\n"+
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
	if !*demo {
		warnKeyFile(newLogger(cfg.Log, os.Stderr), st)
	}
	con := bot.NewConsole(stdout, cfg.SlashCommand, users, map[string]string{cfg.Approvals.Channel: "approvals", "C0CONSOLE": "console"})
	start := *as
	if start == "" && *demo {
		start = "dev"
	}
	if start != "" {
		if err := con.SetUser(start); err != nil {
			return usageError{err.Error()}
		}
	}
	bc := botConfig(cfg, asBot(conns), newLogger(config.Log{Level: "error"}, os.Stderr))
	if !*demo {
		// Anyone at this terminal can type as anyone: the journal and every card say so.
		bc.Via = "console"
	}
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
		prompt = func(user string) { fmt.Fprintf(stdout, "@%s> ", user) }
	}
	return con.Run(ctx, stdin, b, prompt)
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
