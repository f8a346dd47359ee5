package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// Slack is the Socket Mode adapter: it receives slash commands and button clicks over the
// websocket, acknowledges each envelope before anything else, and hands the work to a
// Handler on its own goroutine. It is also the bot's Chat and Directory, over the Web API.
type Slack struct {
	api   *slack.Client
	sm    *socketmode.Client
	log   *slog.Logger
	slash string

	dmMu sync.Mutex
	dms  map[string]string // user -> direct conversation id

	groupsMu  sync.Mutex
	groups    map[string][]string // user group -> members
	groupsAt  time.Time
	watched   []string // the user groups the policy names
	groupsTTL time.Duration

	// busy bounds the envelopes worked on at once. Work waits for a slot on its own
	// goroutine, never in the loop that acks.
	busy chan struct{}

	// Reconnects counts Socket Mode connections after the first.
	Reconnects atomic.Int64
	connected  atomic.Bool
}

// SlackConfig is what the adapter needs.
type SlackConfig struct {
	AppToken, BotToken string
	// APIURL is the Web API base URL ("" for Slack's own); GovSlack and test stand-ins set it.
	APIURL string
	// Slash is the slash command the bot answers to; others are acknowledged and ignored.
	Slash string
	// Usergroups are the user groups the policy names; their members are fetched with
	// usergroups.users.list and cached for GroupsTTL (default 5 minutes).
	Usergroups []string
	GroupsTTL  time.Duration
	Log        *slog.Logger
	// PingInterval is how long the socket may stay silent before it is reopened (default 30s).
	PingInterval time.Duration
}

// NewSlack makes the adapter; nothing is sent until Check or Run.
func NewSlack(cfg SlackConfig) *Slack {
	opts := []slack.Option{slack.OptionAppLevelToken(cfg.AppToken)}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.GroupsTTL <= 0 {
		cfg.GroupsTTL = 5 * time.Minute
	}
	api := slack.New(cfg.BotToken, opts...)
	var smOpts []socketmode.Option
	if cfg.PingInterval > 0 {
		smOpts = append(smOpts, socketmode.OptionPingInterval(cfg.PingInterval))
	}
	return &Slack{api: api, sm: socketmode.New(api, smOpts...), log: cfg.Log, slash: cfg.Slash, busy: make(chan struct{}, maxWork),
		dms: map[string]string{}, watched: cfg.Usergroups, groupsTTL: cfg.GroupsTTL}
}

var (
	_ Chat      = (*Slack)(nil)
	_ Directory = (*Slack)(nil)
)

// Check verifies the bot token (auth.test), so that a bad token is one clear line at start.
func (s *Slack) Check(ctx context.Context) error {
	if _, err := s.api.AuthTestContext(ctx); err != nil {
		return fmt.Errorf("SLACK_BOT_TOKEN is not accepted by Slack (auth.test: %v)", err)
	}
	return nil
}

// Connected reports whether the socket is open (for readiness).
func (s *Slack) Connected() bool { return s.connected.Load() }

// Handler is what the adapter hands work to.
type Handler interface {
	HandleCommand(ctx context.Context, in Invocation)
	HandleClick(ctx context.Context, c Click)
}

// Run connects and serves until ctx ends; it reconnects by itself on disconnect requests and
// dropped sockets. The work of each envelope runs on its own goroutine, after the ack; Run
// does not wait for it (the Handler's own shutdown does, bounded).
func (s *Slack) Run(ctx context.Context, h Handler) error {
	errc := make(chan error, 1)
	go func() { errc <- s.sm.RunContext(ctx) }()
	for {
		select {
		case err := <-errc:
			s.connected.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w", err)
		case evt, ok := <-s.sm.Events:
			if !ok {
				return nil
			}
			s.dispatch(ctx, evt, h)
		}
	}
}

// dispatch acks evt first, then starts its work.
func (s *Slack) dispatch(ctx context.Context, evt socketmode.Event, h Handler) {
	if evt.Request != nil && evt.Request.EnvelopeID != "" {
		if err := s.sm.Ack(*evt.Request); err != nil {
			s.log.Error("ack", "envelope", evt.Request.EnvelopeID, "err", err)
		}
	}
	// Work outlives neither the process nor shutdown's bound, but must not be cancelled
	// the moment the socket closes: it is given its own context.
	wctx := context.WithoutCancel(ctx)
	switch evt.Type {
	case socketmode.EventTypeConnected:
		if c, ok := evt.Data.(*socketmode.ConnectedEvent); ok && c.ConnectionCount > 0 {
			s.Reconnects.Add(1)
			s.log.Info("socket mode reconnected", "connection", c.ConnectionCount)
		}
		s.connected.Store(true)
	case socketmode.EventTypeDisconnect:
		s.connected.Store(false)
		s.log.Info("socket mode disconnect requested; reconnecting")
	case socketmode.EventTypeConnectionError:
		s.connected.Store(false)
		if ctx.Err() != nil {
			return // shutting down
		}
		s.log.Warn("socket mode connection error; retrying", "err", evt.Data)
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || (s.slash != "" && cmd.Command != s.slash) {
			return
		}
		in := Invocation{User: cmd.UserID, Channel: cmd.ChannelID, Text: cmd.Text, Key: deliveryKey(cmd.TriggerID, evt.Request)}
		go func() { s.slot(); defer s.free(); h.HandleCommand(wctx, in) }()
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || cb.Type != slack.InteractionTypeBlockActions {
			return
		}
		ref := Ref{Channel: cb.Channel.ID, TS: cb.Message.Timestamp}
		if ref.TS == "" {
			ref = Ref{Channel: cb.Container.ChannelID, TS: cb.Container.MessageTs}
		}
		if ref.Channel == "" {
			ref.Channel = cb.Container.ChannelID
		}
		for i, a := range cb.ActionCallback.BlockActions {
			c := Click{User: cb.User.ID, Channel: ref.Channel, Message: ref, Action: a.ActionID, Value: a.Value,
				Key: deliveryKey(cb.TriggerID, evt.Request) + fmt.Sprintf("/%d", i)}
			go func() { s.slot(); defer s.free(); h.HandleClick(wctx, c) }()
		}
	}
}

// maxWork is how many envelopes are worked on at once. More would not answer faster on a
// small machine (the work is bbolt fsyncs and MongoDB round trips) and would take CPU from the
// loop that acks; fewer would let a few slow MongoDB calls hold up every other command.
const maxWork = 16

func (s *Slack) slot() { s.busy <- struct{}{} }
func (s *Slack) free() { <-s.busy }

// deliveryKey identifies one delivery: Slack's trigger id stays the same when it delivers the
// same payload again; the envelope id is the fallback.
func deliveryKey(trigger string, req *socketmode.Request) string {
	if trigger != "" {
		return "trigger:" + trigger
	}
	if req != nil && req.EnvelopeID != "" {
		return "envelope:" + req.EnvelopeID
	}
	return ""
}

// Post implements Chat.
func (s *Slack) Post(ctx context.Context, channel string, m Message) (Ref, error) {
	opts := msgOptions(m)
	if m.Thread != "" {
		opts = append(opts, slack.MsgOptionTS(m.Thread))
	}
	var ch, ts string
	err := retry(ctx, func() (err error) {
		ch, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		return Ref{}, slackError("chat.postMessage", channel, err)
	}
	return Ref{Channel: ch, TS: ts}, nil
}

// Update implements Chat.
func (s *Slack) Update(ctx context.Context, ref Ref, m Message) error {
	err := retry(ctx, func() error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, msgOptions(m)...)
		return err
	})
	if err != nil {
		return slackError("chat.update", ref.Channel, err)
	}
	return nil
}

// Ephemeral implements Chat.
func (s *Slack) Ephemeral(ctx context.Context, channel, user string, m Message) error {
	err := retry(ctx, func() error {
		_, err := s.api.PostEphemeralContext(ctx, channel, user, msgOptions(m)...)
		return err
	})
	if err != nil {
		return slackError("chat.postEphemeral", channel, err)
	}
	return nil
}

// DM implements Chat: conversations.open once per user, then a post there.
func (s *Slack) DM(ctx context.Context, user string, m Message) (Ref, error) {
	s.dmMu.Lock()
	ch := s.dms[user]
	s.dmMu.Unlock()
	if ch == "" {
		err := retry(ctx, func() error {
			c, _, _, err := s.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}, ReturnIM: true})
			if err == nil {
				ch = c.ID
			}
			return err
		})
		if err != nil {
			return Ref{}, slackError("conversations.open", user, err)
		}
		s.dmMu.Lock()
		s.dms[user] = ch
		s.dmMu.Unlock()
	}
	return s.Post(ctx, ch, m)
}

// Groups implements Directory: the watched user groups user is a member of.
func (s *Slack) Groups(ctx context.Context, user string) ([]string, error) {
	if len(s.watched) == 0 {
		return nil, nil
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if s.groups == nil || time.Since(s.groupsAt) > s.groupsTTL {
		fresh := map[string][]string{}
		for _, g := range s.watched {
			var members []string
			err := retry(ctx, func() (err error) {
				members, err = s.api.GetUserGroupMembersContext(ctx, g)
				return err
			})
			if err != nil {
				if s.groups != nil {
					return memberOf(s.groups, user), fmt.Errorf("usergroups.users.list %s: %w (using the cached list)", g, err)
				}
				return nil, fmt.Errorf("usergroups.users.list %s: %w", g, err)
			}
			fresh[g] = members
		}
		s.groups, s.groupsAt = fresh, time.Now()
	}
	return memberOf(s.groups, user), nil
}

func memberOf(groups map[string][]string, user string) []string {
	var out []string
	for g, members := range groups {
		for _, m := range members {
			if m == user {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// slackError says in words what a permanent Slack error means for whoever must fix it.
func slackError(method, where string, err error) error {
	var why string
	switch err.Error() {
	case "channel_not_found":
		why = fmt.Sprintf("the channel <#%s> does not exist or the bot cannot see it", where)
	case "not_in_channel":
		why = fmt.Sprintf("the bot is not a member of <#%s>: invite it there", where)
	case "is_archived":
		why = fmt.Sprintf("the channel <#%s> is archived", where)
	case "missing_scope":
		why = "the Slack app lacks a scope this needs (see the README's list of scopes)"
	case "invalid_auth", "token_revoked", "account_inactive", "not_authed":
		why = "Slack no longer accepts the bot token"
	case "ratelimited":
		why = "Slack is rate-limiting the bot and retries did not get through"
	default:
		return fmt.Errorf("%s (%s): %w", method, where, err)
	}
	return fmt.Errorf("%s (%s: %w)", why, method, err)
}

// retry runs call again on Slack's rate limit (after its Retry-After) and on transient 5xx
// answers, with backoff, at most 4 times; other errors are returned at once.
func retry(ctx context.Context, call func() error) error {
	wait := 500 * time.Millisecond
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = call()
		if err == nil {
			return nil
		}
		var rl *slack.RateLimitedError
		var sc slack.StatusCodeError
		switch {
		case errors.As(err, &rl):
			wait = min(max(rl.RetryAfter, 100*time.Millisecond), 30*time.Second)
		case errors.As(err, &sc) && sc.Code >= 500:
		default:
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
	return err
}

// msgOptions renders m as Block Kit within Slack's limits.
func msgOptions(m Message) []slack.MsgOption {
	opts := []slack.MsgOption{slack.MsgOptionText(cut(m.Text, 3000), false)}
	if len(m.Blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks(m.Blocks)...))
	}
	return opts
}

func blocks(bs []Block) []slack.Block {
	var out []slack.Block
	for _, b := range bs {
		if len(out) == maxBlocks {
			break
		}
		switch {
		case b.Text != "":
			out = append(out, slack.NewSectionBlock(mrkdwn(cut(b.Text, maxSection)), nil, nil))
		case len(b.Fields) > 0:
			var fs []*slack.TextBlockObject
			for _, f := range b.Fields {
				if len(fs) == 10 {
					break
				}
				fs = append(fs, mrkdwn(cut("*"+f.Label+"*\n"+f.Value, 2000)))
			}
			out = append(out, slack.NewSectionBlock(nil, fs, nil))
		case b.Context != "":
			out = append(out, slack.NewContextBlock("", mrkdwn(cut(b.Context, maxSection))))
		case len(b.Buttons) > 0:
			var els []slack.BlockElement
			for _, bt := range b.Buttons {
				e := slack.NewButtonBlockElement(bt.Action, cut(bt.Value, 2000), slack.NewTextBlockObject(slack.PlainTextType, cut(bt.Text, maxButton), false, false))
				if bt.Style != "" {
					e = e.WithStyle(slack.Style(bt.Style))
				}
				els = append(els, e)
			}
			out = append(out, slack.NewActionBlock("", els...))
		}
	}
	return out
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// cut shortens s to at most n characters, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
