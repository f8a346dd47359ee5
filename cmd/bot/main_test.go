package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/internal/syncbuf"
	"mongobot/secret"
	"mongobot/store"
)

// TestMain lets a test run this binary as the bot process: with BOT_TEST_CHILD set it serves,
// like main, until it is killed or told to stop; with BOT_TEST_MAIN set it is main itself,
// its command line taken from its arguments.
func TestMain(m *testing.M) {
	if os.Getenv("BOT_TEST_MAIN") != "" {
		main()
	}
	if os.Getenv("BOT_TEST_CHILD") != "" {
		os.Exit(run(context.Background(), []string{"serve"}, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr))
	}
	// Replicas served in-process must not end the test binary: an exit is counted, and the
	// replicas tests fail on one.
	exitProcess = func(code int) { exits.Add(1) }
	os.Exit(m.Run())
}

// closedPort is an address where nothing listens: connecting is refused at once.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bot.yaml")
	cfg := `connectors:
  - name: prod
    connection_string: ${MONGO_URI}
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE, U0BOB]}
  expire_after: 1h
`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartupMistakesSpeak(t *testing.T) {
	cfg := writeConfig(t)
	sl := slacktest.New()
	defer sl.Close()
	base := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
		"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": "mongodb://admin:pw-in-uri@127.0.0.1:1/"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	// A TLS server with its own certificate, which no system trusts.
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	untrusted.StartTLS()
	defer untrusted.Close()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("connectors: [{name: prod, connection_string: x}]\napprovals: {channel: C1}\n"), 0o600)
	tests := []struct {
		env  map[string]string
		code int
		says string
	}{
		{with("SLACK_APP_TOKEN", ""), 2, "SLACK_APP_TOKEN is not set"},
		{with("SLACK_APP_TOKEN", "xoxb-wrong-kind"), 2, "SLACK_APP_TOKEN does not start with xapp-"},
		{with("SLACK_BOT_TOKEN", ""), 2, "SLACK_BOT_TOKEN is not set"},
		{with("BOT_CONFIG", filepath.Join(t.TempDir(), "none.yaml")), 2, "does not exist (set BOT_CONFIG"},
		{with("BOT_CONFIG", bad), 2, "approvers lists nobody"},
		{with("MONGO_URI", ""), 2, "connectors[0].connection_string (line 3): the environment variable MONGO_URI is not set"},
		{with("MONGO_URI", "postgres://x"), 2, "connectors[0] (prod)"},
		{with("BOT_ENCRYPTION_KEY", "short"), 2, "BOT_ENCRYPTION_KEY"},
		{with("SLACK_BOT_TOKEN", "xoxb-revoked"), 1, "SLACK_BOT_TOKEN is not accepted by Slack (auth.test: invalid_auth)"},
		// Not the token's fault: an API that refuses connections, a name that does not
		// resolve, a certificate this machine does not trust. Each says so, not "token".
		{with("SLACK_API_URL", "http://"+closedPort(t)+"/api/"), 1, "cannot be reached: the connection was refused"},
		{with("SLACK_API_URL", "http://slack.invalid/api/"), 1, "the name slack.invalid does not resolve (DNS)"},
		{with("SLACK_API_URL", untrusted.URL+"/api/"), 1, "cannot be trusted (x509: certificate signed by unknown authority)"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"serve"}, envOf(tt.env), nil, &out, &errb)
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if code != tt.code || len(lines) != 1 || !strings.Contains(lines[0], tt.says) {
			t.Errorf("exit %d, stderr %q; want exit %d and one line saying %q", code, errb.String(), tt.code, tt.says)
		}
		if strings.Contains(errb.String(), "pw-in-uri") {
			t.Errorf("the connection string's password is in the error: %s", errb.String())
		}
		if tok := tt.env["SLACK_BOT_TOKEN"]; tok != "" && strings.Contains(errb.String(), tok) {
			t.Errorf("the bot token is in the error: %s", errb.String())
		}
		if tt.code == 1 && !strings.Contains(tt.says, "SLACK_BOT_TOKEN") && strings.Contains(errb.String(), "not accepted") {
			t.Errorf("a failure that is not the token's blames the token: %s", errb.String())
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, envOf(nil), nil, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "mongobot ") {
		t.Errorf("--version: %d %q", code, out.String())
	}
}

// child is the bot running as a separate process.
type child struct {
	cmd *exec.Cmd
	log *syncbuf.Buffer
}

func startChild(t *testing.T, env map[string]string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0]), log: &syncbuf.Buffer{}}
	c.cmd.Env = append(os.Environ(), "BOT_TEST_CHILD=1")
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	return c
}

// TestCrashBetweenExecutingAndDone kills the bot process with SIGKILL while MongoDB is
// applying an action, and checks that the next start reconciles the entry from the server's
// state, reports it, and does not run the action again. For a rotation, the password sealed
// before the server was asked is delivered to its owner after the restart.
func TestCrashBetweenExecutingAndDone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bot processes")
	}
	for _, tc := range []struct {
		name, command, mongoCmd string
		check                   func(t *testing.T, admin *connector.Mongo, sl *slacktest.Server) (secrets []string)
	}{
		{"grant-role", "grant-role prod app read@shop", "grantRolesToUser", func(t *testing.T, admin *connector.Mongo, _ *slacktest.Server) []string {
			st, err := admin.State(context.Background(), connector.UserRef{User: "app", DB: "admin"})
			if err != nil || !st.HasRole(connector.Role{Name: "read", DB: "shop"}) {
				t.Fatalf("server state: %+v %v", st, err)
			}
			return nil
		}},
		{"rotate-password", "rotate-password prod app", "updateUser", func(t *testing.T, admin *connector.Mongo, sl *slacktest.Server) []string {
			offer, err := sl.WaitMessage(20*time.Second, "a reveal offer after the restart", func(m slacktest.Message) bool {
				_, ok := m.Find(bot.TextReveal)
				return m.Channel == "DU0DEV" && ok
			})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := offer.Find(bot.TextReveal)
			if _, err := sl.Click("U0DEV", offer, b); err != nil {
				t.Fatal(err)
			}
			m, err := sl.WaitMessage(20*time.Second, "the revealed password", func(m slacktest.Message) bool {
				return m.Ephemeral && strings.Contains(m.All(), "```")
			})
			if err != nil {
				t.Fatal(err)
			}
			pw := regexp.MustCompile("```([^`]+)```").FindStringSubmatch(m.All())[1]
			if err := admin.Login(context.Background(), connector.UserRef{User: "app", DB: "admin"}, secret.New(pw)); err != nil {
				t.Fatalf("the password delivered after the restart does not log in: %v", err)
			}
			return []string{pw}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, err := mongotest.NewServer(mongotest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer emu.Close()
			admin, err := connector.New(connector.Config{Name: "check", URI: secret.New(emu.URI())})
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(context.Background())
			if _, _, err := admin.CreateUser(context.Background(), "create-user", connector.UserRef{User: "app", DB: "admin"}, nil); err != nil {
				t.Fatal(err)
			}
			sl := slacktest.New()
			defer sl.Close()
			dir := filepath.Join(t.TempDir(), "data")
			env := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
				"BOT_CONFIG": writeConfig(t), "BOT_DATA_DIR": dir, "MONGO_URI": emu.URI()}
			// The action's command reaches the server, then waits there: the bot is killed
			// in that window, after "executing" and before "done".
			emu.Inject(mongotest.Fault{Command: tc.mongoCmd, Delay: 2 * time.Second, Times: 1})

			first := startChild(t, env)
			waitFor(t, sl, "the first bot to connect", func() bool { return sl.Connected() })
			if _, err := sl.SlashCommand("U0DEV", "C0OPS", "/mongo", tc.command); err != nil {
				t.Fatal(err)
			}
			card, err := sl.WaitMessage(20*time.Second, "the card", func(m slacktest.Message) bool {
				_, ok := m.Find(bot.TextApprove)
				return m.Channel == "C0APPROVALS" && ok
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, first.log.String())
			}
			b, _ := card.Find(bot.TextApprove)
			if _, err := sl.Click("U0ALICE", card, b); err != nil {
				t.Fatal(err)
			}
			waitFor(t, sl, tc.mongoCmd+" in flight", func() bool { return emu.Received(tc.mongoCmd) == 1 })
			_ = first.cmd.Process.Signal(syscall.SIGKILL)
			_ = first.cmd.Wait()
			waitFor(t, sl, tc.mongoCmd+" applied by the server", func() bool { return emu.Count(tc.mongoCmd) == 1 })

			second := startChild(t, env)
			if _, err := sl.WaitMessage(20*time.Second, "the reconciliation report", slacktest.Containing("interrupted by a restart", "it is now done")); err != nil {
				t.Fatalf("%v\nfirst bot:\n%s\nsecond bot:\n%s", err, first.log.String(), second.log.String())
			}
			if _, err := sl.WaitMessage(20*time.Second, "the card updated", func(m slacktest.Message) bool {
				return m.TS == card.TS && strings.Contains(m.All(), "*Done*")
			}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, sl, "the second bot to connect", func() bool { return sl.Connected() })
			secrets := tc.check(t, admin, sl)
			// SIGTERM: the bot finishes and closes the store; exit code 0.
			_ = second.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- second.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("after SIGTERM: %v\n%s", err, second.log.String())
				}
			case <-time.After(40 * time.Second):
				t.Fatal("the bot did not stop within 40s of SIGTERM")
			}
			if n := emu.Count(tc.mongoCmd); n != 1 {
				t.Fatalf("%s ran %d times, want 1", tc.mongoCmd, n)
			}
			st, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			e, err := st.Entry(1)
			if err != nil || e.State != store.EntryDone || !strings.Contains(strings.Join(e.Notes, " "), "reconciled after a restart") {
				t.Fatalf("journal #1: %+v %v", e, err)
			}
			if ex, _ := st.Executing(); len(ex) != 0 {
				t.Fatalf("%d entries still executing", len(ex))
			}
			raw, _ := os.ReadFile(filepath.Join(dir, store.FileName))
			logs := first.log.String() + second.log.String()
			for _, s := range append(secrets, emu.AdminPassword()) {
				if bytes.Contains(raw, []byte(s)) || strings.Contains(logs, s) {
					t.Fatal("a password (generated or the connection string's) is in the journal or the logs")
				}
			}
		})
	}
}

func waitFor(t *testing.T, sl *slacktest.Server, what string, cond func() bool) {
	t.Helper()
	if err := sl.Wait(20*time.Second, what, func(*slacktest.Server) bool { return cond() }); err != nil {
		t.Fatal(fmt.Errorf("%w", err))
	}
}

// TestServeHealthAndMetrics runs serve in-process with the HTTP listener on, against the
// Slack stand-in and the emulator, and stops it as SIGTERM would (its context ends).
func TestServeHealthAndMetrics(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	sl := slacktest.New()
	defer sl.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t)
	raw, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(raw, []byte("http: {listen: \""+addr+"\"}\n")...), 0o600)
	env := map[string]string{"SLACK_APP_TOKEN": sl.AppToken, "SLACK_BOT_TOKEN": sl.BotToken, "SLACK_API_URL": sl.URL(),
		"BOT_CONFIG": cfg, "BOT_DATA_DIR": t.TempDir(), "MONGO_URI": emu.URI()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncbuf.Buffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve"}, envOf(env), nil, &logs, &logs) }()
	get := func(path string) (int, string) { return httpGet(addr, path) }
	waitFor(t, sl, "/readyz to answer 200", func() bool { c, _ := get("/readyz"); return c == 200 })
	if c, body := get("/healthz"); c != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", c, body)
	}
	if _, err := sl.SlashCommand("U0DEV", "C0OPS", "/mongo", "help"); err != nil {
		t.Fatal(err)
	}
	if _, err := sl.SlashCommand("U0DEV", "C0OPS", "/mongo", "nonsense"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sl, "the metrics to count both commands", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `mongobot_commands_total{verb="help"} 1`) && strings.Contains(body, `mongobot_commands_total{verb="invalid"} 1`)
	})
	_, body := get("/metrics")
	for _, want := range []string{"mongobot_pending_requests 0", "mongobot_socket_reconnects_total 0", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sl.Drop()
	waitFor(t, sl, "a reconnect", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, "mongobot_socket_reconnects_total 1")
	})
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited %d:\n%s", c, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if strings.Contains(logs.String(), emu.AdminPassword()) {
		t.Fatal("the connection string's password is in the logs")
	}
}
