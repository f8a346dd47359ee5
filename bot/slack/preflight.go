package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/slack-go/slack"
)

// Need is what the config asks of Slack: the channels the bot posts to and the user groups
// whose members it asks about.
type Need struct {
	Channels   []NeedChannel
	Usergroups []string
}

// NeedChannel is a channel the bot posts to, with the config key that names it.
type NeedChannel struct{ Key, ID string }

// Finding is one line of Preflight's report; a problem counts against check's verdict.
type Finding struct {
	Text    string
	Problem bool
}

// scopeWhy are the bot scopes serve needs, each with what breaks without it.
var scopeWhy = []struct{ scope, why string }{
	{"commands", "the /mongo command reaches the bot"},
	{"chat:write", "the bot posts approval cards, results and private answers"},
	{"im:write", "the bot opens the direct messages that carry results and Reveal password"},
}

const groupsWhy = "the bot reads the members of the user groups the config names; without it group approvers and access fail closed"

// Preflight asks Slack what serve will need, without opening the socket or posting: the bot
// token (auth.test), the app-level token (apps.connections.open, whose URL is not dialled),
// the granted scopes against need, the bot's membership of each channel, and that each user
// group exists and is enabled. Each problem is one sentence that says how to fix it; no
// token is in any. ctx bounds it all. A token left empty is not asked about: the caller
// reports its absence.
func (s *Adapter) Preflight(ctx context.Context, need Need) []Finding {
	var out []Finding
	add := func(problem bool, format string, a ...any) {
		out = append(out, Finding{Text: s.scrub(fmt.Sprintf(format, a...)), Problem: problem})
	}
	// A client of its own, to read the X-OAuth-Scopes header slack-go does not expose.
	hdr := &scopeRecorder{next: http.DefaultTransport}
	opts := []slack.Option{slack.OptionAppLevelToken(s.appToken), slack.OptionHTTPClient(&http.Client{Transport: hdr})}
	u := s.apiURL
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	api := slack.New(s.botToken, append(opts, slack.OptionAPIURL(u))...)
	if s.botToken == "" {
		// The caller has said why; the app-level token can still be asked about.
		s.appFinding(ctx, api, add)
		return out
	}

	var who *slack.AuthTestResponse
	err := retry(ctx, func() (err error) {
		who, err = api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		add(true, "slack: %v", s.checkError(err))
		// Nothing else can be asked with a token Slack refuses or an API it cannot reach;
		// the app token is still worth asking about when the API answered.
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			s.appFinding(ctx, api, add)
		}
		return out
	}
	add(false, "slack: bot token: workspace %s (%s), bot user @%s (%s)", who.Team, who.TeamID, who.User, who.UserID)
	s.appFinding(ctx, api, add)

	granted, known := hdr.scopes()
	if !known {
		add(false, "slack: scopes cannot be read (auth.test's answer has no X-OAuth-Scopes header); not checked")
	} else {
		missing := 0
		for _, sw := range scopeWhy {
			if !slices.Contains(granted, sw.scope) {
				add(true, "slack: the bot token lacks the scope %s, needed so that %s: add it under OAuth & Permissions, then reinstall the app", sw.scope, sw.why)
				missing++
			}
		}
		if len(need.Usergroups) > 0 && !slices.Contains(granted, "usergroups:read") {
			add(true, "slack: the bot token lacks the scope usergroups:read: %s; add it under OAuth & Permissions, then reinstall the app", groupsWhy)
			missing++
		}
		if missing == 0 {
			add(false, "slack: scopes: %s", strings.Join(granted, ", "))
		}
	}

	for _, ch := range need.Channels {
		s.channelFinding(ctx, api, who.User, ch, add)
	}
	if len(need.Usergroups) > 0 && (!known || slices.Contains(granted, "usergroups:read")) {
		s.groupFindings(ctx, api, need.Usergroups, add)
	}
	return out
}

// appFinding asks for a Socket Mode URL with the app-level token, and does not dial it: a
// second connection would take envelopes from a running bot.
func (s *Adapter) appFinding(ctx context.Context, api *slack.Client, add func(bool, string, ...any)) {
	if s.appToken == "" {
		return // the caller has said why
	}
	err := retry(ctx, func() error {
		_, _, err := api.StartSocketModeContext(ctx)
		return err
	})
	var se slack.SlackErrorResponse
	switch {
	case err == nil:
		add(false, "slack: app-level token: Socket Mode may connect")
	case errors.As(err, &se) && se.Err == "not_allowed_token_type":
		add(true, "slack: SLACK_APP_TOKEN is not an app-level token (apps.connections.open: not_allowed_token_type): give the xapp-… token from Basic Information → App-Level Tokens, not the bot token")
	case errors.As(err, &se) && slices.Contains(refusedToken, se.Err):
		add(true, "slack: SLACK_APP_TOKEN is not accepted by Slack (apps.connections.open: %s): generate an app-level token with the scope connections:write under Basic Information → App-Level Tokens", se.Err)
	case errors.As(err, &se) && se.Err == "missing_scope":
		add(true, "slack: SLACK_APP_TOKEN lacks the scope connections:write (apps.connections.open: missing_scope): generate an app-level token with it under Basic Information → App-Level Tokens")
	default:
		add(true, "slack: the app-level token could not be checked (apps.connections.open: %v)", err)
	}
}

// channelFinding says whether the bot is in ch. conversations.info needs channels:read
// (groups:read for a private channel), which serve does not: without it the membership is
// not known, and that is a note, not a problem.
func (s *Adapter) channelFinding(ctx context.Context, api *slack.Client, bot string, ch NeedChannel, add func(bool, string, ...any)) {
	var c *slack.Channel
	err := retry(ctx, func() (err error) {
		c, err = api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: ch.ID})
		return err
	})
	var se slack.SlackErrorResponse
	switch {
	case err == nil && c.IsArchived:
		add(true, "slack: %s %s (#%s) is archived: the bot cannot post there; give a live channel's id", ch.Key, ch.ID, c.Name)
	case err == nil && !c.IsMember:
		add(true, "slack: the bot is not in %s %s (#%s), so its posts there fail: invite it with /invite @%s in #%s", ch.Key, ch.ID, c.Name, bot, c.Name)
	case err == nil:
		add(false, "slack: %s %s (#%s): the bot is a member", ch.Key, ch.ID, c.Name)
	case errors.As(err, &se) && se.Err == "channel_not_found":
		add(true, "slack: %s %s is not found: the id is wrong, or the channel is private and the bot is not in it (invite it with /invite @%s there)", ch.Key, ch.ID, bot)
	case errors.As(err, &se) && se.Err == "missing_scope":
		add(false, "slack: %s %s: whether the bot is in it is not checked (that needs the scope channels:read, groups:read for a private channel, which serve does not need): make sure the bot is invited (/invite @%s there)", ch.Key, ch.ID, bot)
	default:
		add(true, "slack: %s %s could not be checked (conversations.info: %v)", ch.Key, ch.ID, err)
	}
}

// groupFindings lists the workspace's user groups once, disabled ones too, so that a
// disabled group is told apart from a wrong id.
func (s *Adapter) groupFindings(ctx context.Context, api *slack.Client, want []string, add func(bool, string, ...any)) {
	var gs []slack.UserGroup
	err := retry(ctx, func() (err error) {
		gs, err = api.GetUserGroupsContext(ctx, slack.GetUserGroupsOptionIncludeDisabled(true))
		return err
	})
	if err != nil {
		add(true, "slack: the user groups could not be listed (usergroups.list: %v), so group approvers and access cannot be checked", err)
		return
	}
	for _, id := range want {
		i := slices.IndexFunc(gs, func(g slack.UserGroup) bool { return g.ID == id })
		switch {
		case i < 0:
			add(true, "slack: user group %s does not exist in this workspace, so its members are never approvers or allowed: fix the id (usergroups.list gives each group's id next to its handle)", id)
		case gs[i].DateDelete != 0:
			add(true, "slack: user group %s (@%s) is disabled, so it has no members for the bot: enable it in Slack or remove it from the config", id, gs[i].Handle)
		default:
			add(false, "slack: user group %s (@%s): %d member(s)", id, gs[i].Handle, gs[i].UserCount)
		}
	}
}

// scrub takes both tokens out of a sentence, should Slack or a proxy quote them back.
func (s *Adapter) scrub(msg string) string {
	if s.botToken != "" {
		msg = strings.ReplaceAll(msg, s.botToken, "[SLACK_BOT_TOKEN]")
	}
	if s.appToken != "" {
		msg = strings.ReplaceAll(msg, s.appToken, "[SLACK_APP_TOKEN]")
	}
	return msg
}

// scopeRecorder keeps the X-OAuth-Scopes header of auth.test's answer: the scopes the bot
// token was granted, which Slack says in no body.
type scopeRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	raw  string
	seen bool
}

func (r *scopeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && strings.HasSuffix(req.URL.Path, "/auth.test") {
		r.mu.Lock()
		r.raw, r.seen = resp.Header.Get("X-OAuth-Scopes"), resp.Header.Values("X-OAuth-Scopes") != nil
		r.mu.Unlock()
	}
	return resp, err
}

func (r *scopeRecorder) scopes() ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, sc := range strings.Split(r.raw, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			out = append(out, sc)
		}
	}
	return out, r.seen
}
