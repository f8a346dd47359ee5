package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector/mongotest"
)

// withSlack adds to env the tokens and URL of a healthy Slack stand-in, started for the
// test: check's findings on the rest are then not mixed with Slack's.
func withSlack(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	sl := slacktest.New()
	t.Cleanup(sl.Close)
	out := map[string]string{"SLACK_BOT_TOKEN": sl.BotToken, "SLACK_APP_TOKEN": sl.AppToken, "SLACK_API_URL": sl.URL()}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestCheckAsksSlack runs check against the Slack stand-in, healthy and then with each fault
// alone: each fault is one problem, in a sentence that says how to fix it, and neither token
// is ever in the output.
func TestCheckAsksSlack(t *testing.T) {
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	cfg := filepath.Join(t.TempDir(), "bot.yaml")
	body := `connectors: [{name: prod, connection_string: "${MONGO_URI}"}]
approvals:
  channel: C0APPROVALS
  approvers: {users: [U0ALICE], usergroups: [S0DBAS, S0ONCALL]}
schedules: {channel: C0ROTATIONS}
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	const (
		botToken = "xoxb-secret-bot-7f3a91"
		appToken = "xapp-secret-app-9c1d27"
	)
	full := append(append([]string{}, slacktest.ManifestScopes...), "channels:read")
	healthy := func() *slacktest.Server {
		sl := slacktest.New()
		sl.BotToken, sl.AppToken = botToken, appToken
		sl.SetScopes(full...)
		sl.SetGroup("S0DBAS", "U0ALICE", "U0BOB")
		sl.SetGroup("S0ONCALL", "U0CAROL")
		return sl
	}
	for _, tc := range []struct {
		name  string
		fault func(sl *slacktest.Server, env map[string]string)
		says  []string
		// problems is how many check must count; 0: check: ok.
		problems int
	}{
		{name: "healthy", says: []string{
			"slack: bot token: workspace Stand-in (T0STANDIN), bot user @mongobot (U0BOT)",
			"slack: app-level token: Socket Mode may connect",
			"slack: scopes: commands, chat:write, im:write, usergroups:read, channels:read",
			"slack: approvals.channel C0APPROVALS (#c0approvals): the bot is a member",
			"slack: schedules.channel C0ROTATIONS (#c0rotations): the bot is a member",
			"slack: user group S0DBAS (@s0dbas): 2 member(s)",
			"slack: user group S0ONCALL (@s0oncall): 1 member(s)",
		}},
		{name: "the manifest's scopes: membership cannot be seen", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.SetScopes(slacktest.ManifestScopes...)
		}, says: []string{"slack: approvals.channel C0APPROVALS: whether the bot is in it is not checked (that needs the scope channels:read"}},
		{name: "bot token refused", fault: func(_ *slacktest.Server, env map[string]string) {
			env["SLACK_BOT_TOKEN"] = "xoxb-secret-revoked-55e1"
		}, says: []string{"slack: SLACK_BOT_TOKEN is not accepted by Slack (auth.test: invalid_auth): give the current bot token", "slack: app-level token: Socket Mode may connect"}, problems: 1},
		{name: "app token refused", fault: func(_ *slacktest.Server, env map[string]string) {
			env["SLACK_APP_TOKEN"] = "xapp-secret-revoked-66f2"
		}, says: []string{"slack: SLACK_APP_TOKEN is not accepted by Slack (apps.connections.open: invalid_auth): generate an app-level token with the scope connections:write"}, problems: 1},
		{name: "bot token given as the app token", fault: func(_ *slacktest.Server, env map[string]string) {
			env["SLACK_APP_TOKEN"] = botToken
		}, says: []string{"slack: SLACK_APP_TOKEN does not start with xapp-: it must be the app-level token"}, problems: 1},
		{name: "tokens not set", fault: func(_ *slacktest.Server, env map[string]string) {
			delete(env, "SLACK_BOT_TOKEN")
			delete(env, "SLACK_APP_TOKEN")
		}, says: []string{"slack: SLACK_BOT_TOKEN is not set: serve needs it", "slack: SLACK_APP_TOKEN is not set: serve needs it"}, problems: 2},
		{name: "API unreachable", fault: func(_ *slacktest.Server, env map[string]string) {
			env["SLACK_API_URL"] = "http://" + closedPort(t) + "/api/"
		}, says: []string{"cannot be reached: the connection was refused; check the network"}, problems: 1},
		{name: "usergroups:read missing", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.SetScopes("commands", "chat:write", "im:write", "channels:read")
		}, says: []string{"slack: the bot token lacks the scope usergroups:read: the bot reads the members of the user groups the config names; without it group approvers and access fail closed; add it under OAuth & Permissions, then reinstall the app"}, problems: 1},
		{name: "im:write missing", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.SetScopes("commands", "chat:write", "usergroups:read", "channels:read")
		}, says: []string{"slack: the bot token lacks the scope im:write, needed so that the bot opens the direct messages"}, problems: 1},
		{name: "bot not in the approvals channel", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.Outside("C0APPROVALS")
		}, says: []string{"slack: the bot is not in approvals.channel C0APPROVALS (#c0approvals), so its posts there fail: invite it with /invite @mongobot in #c0approvals"}, problems: 1},
		{name: "schedules channel not found", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.Missing("C0ROTATIONS")
		}, says: []string{"slack: schedules.channel C0ROTATIONS is not found: the id is wrong, or the channel is private and the bot is not in it"}, problems: 1},
		{name: "user group missing", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.RemoveGroup("S0ONCALL")
		}, says: []string{"slack: user group S0ONCALL does not exist in this workspace, so its members are never approvers or allowed: fix the id"}, problems: 1},
		{name: "user group disabled", fault: func(sl *slacktest.Server, _ map[string]string) {
			sl.DisableGroup("S0ONCALL")
		}, says: []string{"slack: user group S0ONCALL (@s0oncall) is disabled, so it has no members for the bot: enable it in Slack or remove it from the config"}, problems: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := healthy()
			defer sl.Close()
			env := map[string]string{"BOT_CONFIG": cfg, "MONGO_URI": emu.URI(), "BOT_DATA_DIR": filepath.Join(t.TempDir(), "data"),
				"SLACK_BOT_TOKEN": botToken, "SLACK_APP_TOKEN": appToken, "SLACK_API_URL": sl.URL()}
			if tc.fault != nil {
				tc.fault(sl, env)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"check"}, envOf(env), nil, &out, &errb)
			all := out.String() + errb.String()
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			verdict := lines[len(lines)-1]
			want, wantCode := "check: ok", 0
			if tc.problems > 0 {
				want, wantCode = fmt.Sprintf("check: %d problem(s)", tc.problems), 1
			}
			if code != wantCode || verdict != want {
				t.Errorf("exit %d, verdict %q; want %d, %q", code, verdict, wantCode, want)
			}
			for _, s := range tc.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("check does not say %q", s)
				}
			}
			for _, secret := range []string{botToken, appToken, "secret-revoked"} {
				if strings.Contains(all, secret) {
					t.Errorf("check printed a token (%s…)", secret[:9])
				}
			}
			t.Logf("check said:\n%s%s", out.String(), errb.String())
		})
	}
}
