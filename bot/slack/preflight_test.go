package slack

import (
	"context"
	"strings"
	"testing"
	"time"

	"mongobot/bot/slack/slacktest"
)

// TestPreflightTellsTokenKinds: a bot token given as the app-level token is named as the
// wrong kind of token (Slack's not_allowed_token_type), not as a refused one, and a scope
// the config does not need is not asked for.
func TestPreflightTellsTokenKinds(t *testing.T) {
	sl := slacktest.New()
	defer sl.Close()
	sl.SetScopes("commands", "chat:write", "im:write") // no user groups in need: usergroups:read is not needed
	s := New(Config{AppToken: sl.BotToken, BotToken: sl.BotToken, APIURL: sl.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var problems []string
	for _, f := range s.Preflight(ctx, Need{}) {
		if f.Problem {
			problems = append(problems, f.Text)
		}
		if strings.Contains(f.Text, sl.BotToken) {
			t.Errorf("a finding carries the token: %q", f.Text)
		}
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "SLACK_APP_TOKEN is not an app-level token (apps.connections.open: not_allowed_token_type)") {
		t.Fatalf("problems: %q", problems)
	}
}
