package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // CRON_TZ= time zones work in a static binary without /usr/share/zoneinfo

	"mongobot/bot"
	"mongobot/bot/slack"
	"mongobot/config"
	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/ha"
	"mongobot/observe"
	"mongobot/store"
)

// version is set at build time with -ldflags "-X main.version=..." (tools/build.sh, the
// Dockerfile and tools/image pass git describe). A plain go build or go install leaves it
// empty, and buildVersion falls back to what the Go toolchain stamped.
var version = ""

// buildVersion is the version this binary says it is: the one stamped at link time, else the
// module version the toolchain derived from the repository's tags ("v0.4.0", or a pseudo-version
// with the commit), else the commit itself, else "dev" (go run, which stamps nothing).
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a mistake in how the bot was started: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// quietError ends the program with exit code 1 after the command has said everything itself,
// as check does with its verdict: run prints nothing more.
type quietError struct{}

func (quietError) Error() string { return "" }

// run is main with its world passed in, for tests. It returns the exit code.
func run(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, env, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.As(err, &quietError{}) {
		return 1
	}
	fmt.Fprintf(stderr, "mongobot: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// dispatch runs the command args name. A command asked for help (-h, --help, mongobot help <command>)
// prints its usage and returns before anything is read, created or contacted.
func dispatch(ctx context.Context, args []string, env func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	verb := "serve"
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	switch {
	case verb == "help" || isHelp(verb):
		return help(args, stdout)
	case verb == "journal" && len(args) > 0 && args[0] == "help":
		return help(append([]string{"journal"}, args[1:]...), stdout)
	case verb == "journal" && len(args) > 0 && !strings.HasPrefix(args[0], "-") && wantsHelp(args[1:]):
		return help([]string{"journal", args[0]}, stdout)
	case wantsHelp(args):
		return help([]string{verb}, stdout)
	}
	switch verb {
	case "serve":
		return serve(ctx, args, env, stderr)
	case "check":
		return check(ctx, args, env, stdout)
	case "console":
		return runConsole(ctx, args, env, stdin, stdout)
	case "journal":
		return journal(args, env, stdin, stdout, stderr)
	case "rekey":
		return rekey(args, env, stdin, stdout)
	case "--version", "version", "-v":
		if err := parse(flags("version"), args, 0); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mongobot %s\n", buildVersion())
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q; run mongobot help for the list of commands", verb)}
}

func getenv(env func(string) (string, bool), key, def string) string {
	if v, ok := env(key); ok && v != "" {
		return v
	}
	return def
}

func loadConfig(env func(string) (string, bool)) (*config.Config, error) {
	c, err := config.Load(getenv(env, "BOT_CONFIG", "bot.yaml"), env)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(orDefault(c.Level, "info"))))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// connectors makes one connector per configured deployment; nothing touches the network.
func connectors(c *config.Config) (map[string]bot.Mongo, error) {
	out := map[string]bot.Mongo{}
	for i, cn := range c.Connectors {
		var m bot.Mongo
		var err error
		if cn.Type == "atlas" {
			m, err = newAtlas(cn, c)
		} else {
			m, err = newConnector(cn, c)
		}
		if err != nil {
			closeAll(out)
			return nil, usageError{fmt.Sprintf("config: connectors[%d] (%s): %v", i, cn.Name, err)}
		}
		out[cn.Name] = m
	}
	return out, nil
}

// newConnector makes the connector of one configured deployment; nothing touches the network.
func newConnector(cn config.Connector, c *config.Config) (*connector.Mongo, error) {
	return connector.New(connector.Config{Name: cn.Name, URI: cn.ConnectionString, TLSCAFile: cn.TLSCAFile, TLSCAPEM: cn.TLSCAPEM,
		TLSCertificateKeyFile: cn.TLSCertificateKeyFile, TLSCertificateKeyPEM: cn.TLSCertificateKeyPEM,
		Passwords: connector.PasswordPolicy{Length: cn.PasswordLength}, SkipVerifyLogin: cn.VerifyLogin != nil && !*cn.VerifyLogin,
		IdleTimeout: time.Duration(c.ConnectorIdleTimeout)})
}

// newAtlas makes an Atlas connector: the Administration API client, and, when the config
// gives the cluster's connection string, a wire connector to verify changes there.
func newAtlas(cn config.Connector, c *config.Config) (*atlas.Connector, error) {
	client, err := atlas.New(atlas.Config{BaseURL: cn.BaseURL, ProjectID: cn.ProjectID, ClientID: cn.ClientID, ClientSecret: cn.ClientSecret,
		PublicKey: cn.PublicKey, PrivateKey: cn.PrivateKey})
	if err != nil {
		return nil, err
	}
	cfg := atlas.ConnectorConfig{Name: cn.Name, Client: client, Clusters: cn.Clusters, Passwords: connector.PasswordPolicy{Length: cn.PasswordLength}}
	if !cn.ConnectionString.Empty() {
		wire, err := newConnector(cn, c)
		if err != nil {
			return nil, err
		}
		cfg.Verify = wire
	}
	return atlas.NewConnector(cfg), nil
}

func closeAll(ms map[string]bot.Mongo) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range ms {
		_ = m.Close(ctx)
	}
}

// dataDir is BOT_DATA_DIR, ./data by default.
func dataDir(env func(string) (string, bool)) string { return getenv(env, "BOT_DATA_DIR", "data") }

// exitProcess ends the process; a variable for tests, which run serve in-process.
var exitProcess = os.Exit

// replicaName is this replica's name in the group, "" alone.
func replicaName(sh *shared) string {
	if sh == nil {
		return ""
	}
	return sh.replica.Name()
}

// openStore opens the journal in dir with the key of BOT_ENCRYPTION_KEY, or the key file.
// With store.etcd in the config, the file is not the journal: it is refused (refuseShared).
func openStore(env func(string) (string, bool), dir string, opts store.Options) (*store.Store, error) {
	if err := refuseShared(env); err != nil {
		return nil, err
	}
	return openStoreWith(env, dir, opts, store.Open)
}

// openStoreWith is openStore with the opener given (the shared journal's).
func openStoreWith(env func(string) (string, bool), dir string, opts store.Options, open func(string, store.Options) (*store.Store, error)) (*store.Store, error) {
	if err := withKey(env, &opts); err != nil {
		return nil, err
	}
	return open(dir, opts)
}

// refuseUnadopted refuses to serve a journal whose records an older version wrote without
// authenticating them: the bot would act on none of them, so it says what a person must do.
func refuseUnadopted(st *store.Store) error {
	un, err := st.Unadopted()
	if err != nil || !un {
		return err
	}
	return fmt.Errorf("the journal on %s was written by a version of the bot that did not authenticate its records, and the bot acts only on records it can authenticate: "+
		"look at them (mongobot journal list, mongobot journal verify), then run mongobot journal adopt (with every replica of the old version stopped), and start the bot again", st.Path())
}

// withKey sets opts.Key from BOT_ENCRYPTION_KEY, when it is given, and adds the key of
// BOT_NEW_ENCRYPTION_KEY to opts.OldKeys: the key a rotation moves to, which a replica of a
// shared journal holds beside its own while one is under way (it seals with whichever the
// journal names), and which rekey re-encrypts with.
func withKey(env func(string) (string, bool), opts *store.Options) error {
	if k := getenv(env, "BOT_ENCRYPTION_KEY", ""); k != "" {
		key, err := store.ParseKey(k)
		if err != nil {
			return usageError{fmt.Sprintf("BOT_ENCRYPTION_KEY: %v", err)}
		}
		opts.Key = key
	}
	if k := getenv(env, "BOT_NEW_ENCRYPTION_KEY", ""); k != "" {
		key, err := store.ParseKey(k)
		if err != nil {
			return usageError{fmt.Sprintf("BOT_NEW_ENCRYPTION_KEY: %v", err)}
		}
		opts.OldKeys = append(opts.OldKeys, key)
	}
	return nil
}

// checkJournal reads a journal already in dir without changing anything, for the refusals
// that need no network (a key file others may read, a journal from a newer version) to come
// before Slack's. Whatever else the read finds is left to the real open, which migrates an
// older journal and sets up a new one.
func checkJournal(dir string, opts store.Options) error {
	opts.ReadOnly = true
	st, err := store.Open(dir, opts)
	switch {
	case err == nil:
		return st.Close()
	case errors.Is(err, store.ErrKeyFileMode), errors.Is(err, store.ErrNewerSchema):
		return err
	}
	return nil
}

// warnKeyFile logs, once at start-up, that the key sealing new passwords is the key file beside
// the journal when no BOT_ENCRYPTION_KEY was given: a copy of the data folder carries both.
func warnKeyFile(log *slog.Logger, st *store.Store) {
	if p := st.KeyFile(); p != "" {
		log.Warn("the encryption key is in a file next to the journal it protects: a copy of the data folder "+
			"(a backup, a volume snapshot) carries both the sealed passwords and their key; "+
			"set BOT_ENCRYPTION_KEY from a secret store instead", "key_file", p)
	}
}

// slackTokens reads the two Slack tokens and says, the app-level token's first, what is wrong
// with each as serve needs it: not set, or not of its kind (the other token given in its
// place). serve stops on the first mistake; check reports them all. A token of the wrong
// kind comes back empty, so that it is never sent to Slack.
func slackTokens(env func(string) (string, bool)) (app, tok string, mistakes []string) {
	app, tok = getenv(env, "SLACK_APP_TOKEN", ""), getenv(env, "SLACK_BOT_TOKEN", "")
	switch {
	case app == "":
		mistakes = append(mistakes, "SLACK_APP_TOKEN is not set: serve needs it; give the app-level token (xapp-…, scope connections:write) of the Slack app")
	case !strings.HasPrefix(app, "xapp-"):
		mistakes = append(mistakes, "SLACK_APP_TOKEN does not start with xapp-: it must be the app-level token (Basic Information → App-Level Tokens), not the bot token")
		app = ""
	}
	switch {
	case tok == "":
		mistakes = append(mistakes, "SLACK_BOT_TOKEN is not set: serve needs it; give the bot token (xoxb-…) of the Slack app (Install App → Bot User OAuth Token)")
	case !strings.HasPrefix(tok, "xoxb-"):
		mistakes = append(mistakes, "SLACK_BOT_TOKEN does not start with xoxb-: it must be the bot token (Install App → Bot User OAuth Token)")
		tok = ""
	}
	return app, tok, mistakes
}

// serve is the bot's main job.
func serve(ctx context.Context, args []string, env func(string) (string, bool), stderr io.Writer) error {
	if err := parse(flags("serve"), args, 0); err != nil {
		return err
	}
	app, tok, mistakes := slackTokens(env)
	if len(mistakes) > 0 {
		return usageError{mistakes[0]}
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	conns, err := connectors(cfg)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	bc := botConfig(cfg, conns, log)
	if bc.Deliveries, _, err = deliveries(cfg); err != nil {
		return err
	}
	opts := store.Options{Retention: time.Duration(cfg.Retention.Keep)}
	if err := withKey(env, &opts); err != nil {
		return err
	}
	// Every check that a mistake in the environment can fail comes before anything is made:
	// a start that fails leaves no data folder, key file or journal behind, nor anything in
	// etcd.
	if cfg.Store.Etcd == nil {
		if err := checkJournal(dataDir(env), opts); err != nil {
			return err
		}
	}
	sl := slack.New(slack.Config{AppToken: app, BotToken: tok, APIURL: getenv(env, "SLACK_API_URL", ""),
		Slash: cfg.SlashCommand, Usergroups: cfg.Usergroups(), Log: log})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = sl.Check(cctx)
	cancel()
	if err != nil {
		return err
	}
	var sh *shared // several replicas on etcd; nil: this process alone, on the bbolt file
	var st *store.Store
	if cfg.Store.Etcd != nil {
		if sh, err = joinShared(ctx, cfg.Store.Etcd, log); err != nil {
			return err
		}
		defer sh.close()
		st, err = sh.open(dataDir(env), opts)
	} else {
		// Not openStore: the config read above says the file is the journal.
		st, err = store.Open(dataDir(env), opts)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if err := refuseUnadopted(st); err != nil {
		return err
	}
	if ids := st.RestoreFailed(); len(ids) > 0 {
		log.Warn("the journal was restored from a backup: the requests it held approved but not run were marked failed, not run (the old bot may have run them after the backup); their requesters must ask again", "requests", ids)
	}
	if sh == nil {
		// Deferred after Close, so it runs before: no snapshot is being read when the
		// file closes.
		defer serveSnapshots(dataDir(env), st, log)()
	}
	var metrics *observe.Metrics
	if cfg.HTTP.Listen != "" {
		metrics = observe.New()
		bc.Metrics = metrics
	}
	if sh != nil {
		bc.TimerJournal = sh.timerJournal
	}
	b := bot.New(bc, st, sl, sl)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if metrics != nil {
		metrics.GaugeFunc("mongobot_pending_requests", "Approval requests waiting for a decision.", func() float64 { return float64(b.PendingRequests()) })
		metrics.GaugeFunc("mongobot_temporary_overdue", "Temporary grants and locks past their end that the bot has not ended yet.", func() float64 { return float64(b.OverdueTemporary()) })
		metrics.GaugeFunc("mongobot_delivery_pending", "Rotated passwords that some delivery target does not have yet (the bot retries them).", func() float64 { return float64(b.DeliveryPending()) })
		metrics.GaugeFunc("mongobot_connectors_down", "Connectors whose MongoDB stopped answering: requests for them are refused at once until a probe gets an answer.", func() float64 { return float64(b.ConnectorsDown()) })
		metrics.GaugeFunc("mongobot_actions_waiting", "Approved actions waiting for a turn on their connector.", func() float64 { return float64(b.ActionsWaiting()) })
		metrics.GaugeFunc("mongobot_leader", "1 while this replica runs the timers (always, without store.etcd).", func() float64 {
			if sh == nil {
				return 1
			}
			return sh.leading()
		})
		metrics.GaugeFunc("mongobot_tampered_records", "Journal records this replica refused because they fail their authentication (written or changed outside the bot); mongobot journal verify lists them.", func() float64 { return float64(b.TamperedRecords()) })
		metrics.CounterFunc("mongobot_socket_reconnects_total", "Socket Mode connections opened after the first.", func() float64 { return float64(sl.Reconnects.Load()) })
		ready := func() error {
			if !sl.Connected() {
				return errors.New("the Slack socket is not connected")
			}
			if _, err := st.Schema(); err != nil {
				return fmt.Errorf("the store: %v", err)
			}
			if sh != nil {
				select {
				case <-sh.replica.Done():
					return errors.New("the etcd session ended")
				default:
				}
			}
			return nil
		}
		addr, _, err := observe.Serve(ctx, observe.Address(cfg.HTTP.Listen), metrics.Handler(ready))
		if err != nil {
			return err
		}
		log.Info("http listening", "addr", addr.String(), "paths", "/healthz /readyz /metrics")
	}
	warnKeyFile(log, st)
	log.Info("starting", "version", buildVersion(), "connectors", len(conns), "data", st.Path(), "replica", replicaName(sh))
	var leadErr chan error
	if sh == nil {
		b.Reconcile(ctx)
		if err := b.LoadTimers(ctx); err != nil {
			return fmt.Errorf("schedules: %v", err)
		}
		go b.RunTimers(ctx, time.Second)
		go housekeeping(ctx, b, st, log)
	} else {
		// Every replica serves commands and clicks; the one that leads runs the timers.
		lctx, stopAll := context.WithCancel(ctx)
		defer stopAll()
		ctx = lctx
		leadErr = make(chan error, 1)
		go func() {
			select {
			case <-sh.replica.Stale(ctx):
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return // stopping anyway: Close ended the session
			}
			// The claims on this replica's actions may lapse within a third of the TTL, and
			// the leader then settles them from MongoDB's state: an action still running
			// here could land after that reading. Stop at once, without finishing work in
			// flight; the journal is write-ahead, and the next settling reads what landed.
			log.Error("the etcd session is about to end (its lease not renewed in time): stopping this replica at once", "replica", sh.replica.Name())
			exitProcess(3)
		}()
		go func() {
			err := sh.lead(ctx, b, st, log)
			if errors.Is(err, ha.ErrSessionLost) && ctx.Err() == nil {
				// Without a session this replica can claim nothing: it stops, and its
				// supervisor starts it afresh with a new one.
				log.Error("the etcd session ended: stopping this replica", "replica", sh.replica.Name())
				leadErr <- fmt.Errorf("%w: restart the replica", err)
				stopAll()
			}
		}()
	}
	runErr := sl.Run(ctx, b)
	if leadErr != nil {
		select {
		case err := <-leadErr:
			runErr = err
		default:
		}
	}
	log.Info("stopping: finishing work in flight")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := b.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
	}
	return runErr
}

// botConfig is the bot's part of the config.
func botConfig(cfg *config.Config, ms map[string]bot.Mongo, log *slog.Logger) bot.Config {
	sc := bot.ScheduleConfig{Channel: cfg.Schedules.Channel, MissedWindow: time.Duration(cfg.Schedules.MissedRunWindow),
		RetryDelay: time.Duration(cfg.Schedules.RetryDelay), Concurrency: cfg.Schedules.ConcurrencyPerConnector}
	if r := cfg.Schedules.Retries; r != nil {
		sc.Retries = *r
		if *r == 0 {
			sc.Retries = -1 // none
		}
	}
	limits := map[string]bot.Limits{}
	for _, cn := range cfg.Connectors {
		limits[cn.Name] = bot.Limits{Concurrency: cn.Concurrency, Queue: cn.Queue}
	}
	return bot.Config{Slash: cfg.SlashCommand, Channel: cfg.Approvals.Channel, Policy: cfg.Policy(), Connectors: ms,
		RevealTTL: time.Duration(cfg.RevealTTL), Log: log, Schedules: sc, Limits: limits}
}

// housekeeping expires pending requests, checks entries whose MongoDB stopped answering, and
// purges expired secrets and dedupe keys, and records older than the retention: each on its own goroutine, so a check stuck on a
// black-holed MongoDB never delays the expiry of requests.
func housekeeping(ctx context.Context, b *bot.Bot, st *store.Store, log *slog.Logger) {
	go every(ctx, 30*time.Second, func() { b.ExpireDue(ctx) })
	go every(ctx, time.Minute, func() { b.ReconcileStale(ctx) })
	every(ctx, time.Hour, func() {
		if n, err := st.Purge(); err != nil {
			log.Error("purge", "err", err)
		} else {
			log.Debug("purged", "dedupe", n.Dedupe, "secrets", n.Secrets, "entries", n.Entries, "requests", n.Requests)
		}
	})
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			func() {
				// One failed round must not end the process or the loop.
				defer func() {
					if p := recover(); p != nil {
						slog.Error("panic recovered in a periodic task", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					}
				}()
				fn()
			}()
		}
	}
}
