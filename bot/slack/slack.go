package slack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"mongobot/bot"
)

// Adapter is the Socket Mode adapter: it receives slash commands and button clicks over the
// websocket, acknowledges each envelope before anything else, and hands the work to a
// bot.Handler on its own goroutine. It is also the bot's bot.Chat and bot.Directory, over the Web API.
type Adapter struct {
	api   *slack.Client
	sm    *socketmode.Client
	log   *slog.Logger
	slash string
	now   func() time.Time
	// apiURL and botToken are kept for Check's messages: the first is named in them, the
	// second is scrubbed from them. Preflight asks with appToken too.
	apiURL, botToken, appToken string

	dmMu sync.Mutex
	dms  map[string]string // user -> direct conversation id

	// groupsMu guards groups and their lookups' bookkeeping; it is never held while Slack
	// is being asked, so that a slow group holds up only the callers that need it.
	groupsMu      sync.Mutex
	groups        map[string]*groupCache // watched user group -> what is known of it
	watched       []string               // the user groups the policy names
	groupsTTL     time.Duration
	lookupTimeout time.Duration

	// self is who the bot is, learned from auth.test (team) and the socket's hello (app):
	// envelopes for another team or app are acknowledged and ignored.
	selfMu sync.Mutex
	self   identity

	// busy bounds the envelopes worked on at once. Work waits for a slot on its own
	// goroutine, never in the loop that acks.
	busy chan struct{}

	// Reconnects counts Socket Mode connections after the first.
	Reconnects atomic.Int64
	connected  atomic.Bool
}

// identity is the workspace and app the bot serves. An empty field with its known flag
// unset is not known yet, and envelopes are not judged by it.
type identity struct {
	team      string
	teamKnown bool
	app       string
}

// Config is what the adapter needs.
type Config struct {
	AppToken, BotToken string
	// APIURL is the Web API base URL ("" for Slack's own); GovSlack and test stand-ins set it.
	APIURL string
	// Slash is the slash command the bot answers to; others are acknowledged and ignored.
	Slash string
	// Usergroups are the user groups the policy names; their members are fetched with
	// usergroups.users.list and cached for GroupsTTL (default 5 minutes), refreshed from
	// half that age on; past it, a group Slack cannot list makes Groups fail.
	Usergroups []string
	GroupsTTL  time.Duration
	Log        *slog.Logger
	// PingInterval is how long the socket may stay silent before it is reopened (default 30s).
	PingInterval time.Duration
	// Now is the clock the user-group cache ages by (default time.Now); tests move it.
	Now func() time.Time
}

// New makes the adapter; nothing is sent until Check or Run.
func New(cfg Config) *Adapter {
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// One cache entry per group, made here so that Groups never adds to the map; a group
	// named twice is looked up once.
	groups := map[string]*groupCache{}
	var watched []string
	for _, g := range cfg.Usergroups {
		if _, dup := groups[g]; !dup {
			groups[g] = &groupCache{}
			watched = append(watched, g)
		}
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = slack.APIURL
	}
	api := slack.New(cfg.BotToken, opts...)
	var smOpts []socketmode.Option
	if cfg.PingInterval > 0 {
		smOpts = append(smOpts, socketmode.OptionPingInterval(cfg.PingInterval))
	}
	return &Adapter{api: api, sm: socketmode.New(api, smOpts...), log: cfg.Log, slash: cfg.Slash, now: cfg.Now,
		apiURL: apiURL, botToken: cfg.BotToken, appToken: cfg.AppToken,
		busy: make(chan struct{}, maxWork), dms: map[string]string{},
		groups: groups, watched: watched, groupsTTL: cfg.GroupsTTL, lookupTimeout: groupLookupTimeout}
}

var (
	_ bot.Chat      = (*Adapter)(nil)
	_ bot.Directory = (*Adapter)(nil)
)

// Check verifies the bot token (auth.test), so that a bad token is one clear line at start,
// and learns from the answer which workspace the bot serves.
func (s *Adapter) Check(ctx context.Context) error {
	var r *slack.AuthTestResponse
	err := retry(ctx, func() (err error) {
		r, err = s.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		return s.checkError(err)
	}
	if r.TeamID == "" {
		// An org-wide (Enterprise Grid) install answers without a workspace; every
		// envelope will then be refused, which is safer than accepting any, but must be
		// said.
		s.log.Warn("auth.test named no workspace (team_id); slash commands and clicks will be ignored", "enterprise", r.EnterpriseID)
	}
	s.selfMu.Lock()
	s.self.team, s.self.teamKnown = r.TeamID, true
	s.selfMu.Unlock()
	s.log.Debug("slack identity", "team", r.TeamID, "bot_user", r.UserID, "bot", r.BotID)
	return nil
}

// refusedToken are the auth.test errors by which Slack refuses the token itself.
var refusedToken = []string{"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}

// checkError turns a failed auth.test into one sentence that tells apart a token Slack
// refuses, a Slack API this machine cannot reach, and a TLS connection it cannot trust: each
// has another fix, and calling a network failure a bad token sends the operator to rotate a
// token that works. The token is never in it.
func (s *Adapter) checkError(err error) error {
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	var msg string
	switch {
	case errors.As(err, &se) && slices.Contains(refusedToken, se.Err):
		msg = fmt.Sprintf("SLACK_BOT_TOKEN is not accepted by Slack (auth.test: %s): give the current bot token (xoxb-…) of an app installed in the workspace", se.Err)
	case errors.As(err, &se):
		msg = fmt.Sprintf("Slack's auth.test failed (%s), so the bot token could not be checked", se.Err)
	case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid), errors.As(err, &verify):
		msg = fmt.Sprintf("the TLS connection to the Slack API at %s cannot be trusted (%v): if a proxy inspects TLS, add its CA to the system's trust store (or SSL_CERT_FILE); check SLACK_API_URL", s.apiURL, tlsCause(err))
	case errors.As(err, &header):
		msg = fmt.Sprintf("the Slack API at %s does not speak TLS: check SLACK_API_URL (http:// or https://)", s.apiURL)
	case errors.As(err, &dns):
		msg = fmt.Sprintf("the Slack API at %s cannot be reached: the name %s does not resolve (DNS); check the network and SLACK_API_URL", s.apiURL, dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("the Slack API at %s cannot be reached: the connection was refused; check the network, a proxy (HTTPS_PROXY) and SLACK_API_URL", s.apiURL)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		msg = fmt.Sprintf("the Slack API at %s did not answer in time; check the network, a firewall or proxy (HTTPS_PROXY) and SLACK_API_URL", s.apiURL)
	case errors.As(err, &sc):
		msg = fmt.Sprintf("the Slack API at %s answered auth.test with HTTP %d; check SLACK_API_URL", s.apiURL, sc.Code)
	default:
		msg = fmt.Sprintf("the Slack API at %s cannot be reached (auth.test: %v)", s.apiURL, err)
	}
	if s.botToken != "" {
		msg = strings.ReplaceAll(msg, s.botToken, "[SLACK_BOT_TOKEN]")
	}
	return errors.New(msg)
}

// tlsCause is the certificate's complaint without the request around it ("x509: certificate
// signed by unknown authority").
func tlsCause(err error) error {
	for {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
			continue
		}
		var verify *tls.CertificateVerificationError
		if errors.As(err, &verify) && verify.Err != nil {
			return verify.Err
		}
		return err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// learnApp records the app id Slack names in a socket's hello. The app-level token belongs
// to one app, so a different id later is a surprise: the first one is kept, and envelopes for
// the other are ignored.
func (s *Adapter) learnApp(app string) {
	if app == "" {
		return
	}
	s.selfMu.Lock()
	prev := s.self.app
	if prev == "" {
		s.self.app = app
	}
	s.selfMu.Unlock()
	if prev != "" && prev != app {
		s.log.Error("socket mode hello names another app; keeping the first", "app", prev, "hello_app", app)
	}
}

// ours reports whether an envelope from team for app is for this bot, and logs a warning
// when it is not. What is not known yet is not judged: Run learns the team before it
// connects, and each connection's hello names the app before any envelope.
func (s *Adapter) ours(evt socketmode.Event, team, app string) bool {
	s.selfMu.Lock()
	self := s.self
	s.selfMu.Unlock()
	if (!self.teamKnown || team == self.team) && (self.app == "" || app == self.app) {
		return true
	}
	var envelope string
	if evt.Request != nil {
		envelope = evt.Request.EnvelopeID
	}
	s.log.Warn("ignored an envelope for another workspace or app", "envelope", envelope, "type", string(evt.Type),
		"team", team, "app", app, "our_team", self.team, "our_app", self.app)
	return false
}

// Connected reports whether the socket is open (for readiness).
func (s *Adapter) Connected() bool { return s.connected.Load() }

// Run connects and serves until ctx ends; it reconnects by itself on disconnect requests and
// dropped sockets. The work of each envelope runs on its own goroutine, after the ack; Run
// does not wait for it (the bot.Handler's own shutdown does, bounded).
func (s *Adapter) Run(ctx context.Context, h bot.Handler) error {
	s.selfMu.Lock()
	known := s.self.teamKnown
	s.selfMu.Unlock()
	if !known {
		// Check was not called: learn the workspace now, before any envelope can arrive,
		// so that none is accepted unjudged.
		if err := s.Check(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // shut down while starting
			}
			return err
		}
	}
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

// dispatch acks evt first, then starts its work. The interactions Slack wants answered in
// the ack (a form's submission, an option lookup) are answered there, within Slack's window
// (forms.go).
func (s *Adapter) dispatch(ctx context.Context, evt socketmode.Event, h bot.Handler) {
	received := time.Now()
	switch evt.Type {
	case socketmode.EventTypeInteractive:
		if cb, ok := evt.Data.(slack.InteractionCallback); ok && cb.Type != slack.InteractionTypeBlockActions || ok && cb.View.ID != "" {
			if s.ours(evt, cb.Team.ID, cb.APIAppID) && s.interactive(ctx, evt, received, cb, h) {
				return
			}
		}
	case socketmode.EventTypeEventsAPI:
		s.event(ctx, evt, h)
		return
	}
	s.ack(evt, nil)
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
	case socketmode.EventTypeHello:
		if evt.Request != nil {
			s.learnApp(evt.Request.ConnectionInfo.AppID)
		}
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
		if !ok || !s.ours(evt, cmd.TeamID, cmd.APIAppID) || (s.slash != "" && cmd.Command != s.slash) {
			return
		}
		if f, ok := h.(Forms); ok && strings.TrimSpace(cmd.Text) == "" {
			// /mongo alone opens the request form (SPEC).
			go s.openForm(wctx, f, received, cmd.TriggerID, cmd.UserID, cmd.ChannelID)
			return
		}
		in := bot.Invocation{User: cmd.UserID, Channel: cmd.ChannelID, Text: cmd.Text, Key: deliveryKey(cmd.TriggerID, evt.Request)}
		go func() { s.slot(); defer s.free(); h.HandleCommand(wctx, in) }()
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || !s.ours(evt, cb.Team.ID, cb.APIAppID) || cb.Type != slack.InteractionTypeBlockActions {
			return
		}
		ref := bot.Ref{Channel: cb.Channel.ID, TS: cb.Message.Timestamp}
		if ref.TS == "" {
			ref = bot.Ref{Channel: cb.Container.ChannelID, TS: cb.Container.MessageTs}
		}
		if ref.Channel == "" {
			ref.Channel = cb.Container.ChannelID
		}
		for i, a := range cb.ActionCallback.BlockActions {
			c := bot.Click{User: cb.User.ID, Channel: ref.Channel, Message: ref, Action: a.ActionID, Value: a.Value,
				Key: deliveryKey(cb.TriggerID, evt.Request) + fmt.Sprintf("/%d", i)}
			go func() { s.slot(); defer s.free(); h.HandleClick(wctx, c) }()
		}
	}
}

// ack acknowledges evt's envelope (none for the socket's own events), with payload as the
// answer when Slack wants one in the ack (nil for none).
func (s *Adapter) ack(evt socketmode.Event, payload any) {
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		return
	}
	var err error
	if payload == nil {
		err = s.sm.Ack(*evt.Request)
	} else {
		err = s.sm.Ack(*evt.Request, payload)
	}
	if err != nil {
		s.log.Error("ack", "envelope", evt.Request.EnvelopeID, "err", err)
	}
}

// maxWork is how many envelopes are worked on at once. More would not answer faster on a
// small machine (the work is bbolt fsyncs and MongoDB round trips) and would take CPU from the
// loop that acks; fewer would let a few slow MongoDB calls hold up every other command.
const maxWork = 16

func (s *Adapter) slot() { s.busy <- struct{}{} }
func (s *Adapter) free() { <-s.busy }

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

// Post implements bot.Chat.
func (s *Adapter) Post(ctx context.Context, channel string, m bot.Message) (bot.Ref, error) {
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
		return bot.Ref{}, slackError("chat.postMessage", channel, err)
	}
	return bot.Ref{Channel: ch, TS: ts}, nil
}

// Update implements bot.Chat.
func (s *Adapter) Update(ctx context.Context, ref bot.Ref, m bot.Message) error {
	err := retry(ctx, func() error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, msgOptions(m)...)
		return err
	})
	if err != nil {
		return slackError("chat.update", ref.Channel, err)
	}
	return nil
}

// Ephemeral implements bot.Chat. With no channel (a click on the App Home) it is shown in
// the person's direct conversation with the bot.
func (s *Adapter) Ephemeral(ctx context.Context, channel, user string, m bot.Message) error {
	if channel == "" {
		ch, err := s.imWith(ctx, user)
		if err != nil {
			return err
		}
		channel = ch
	}
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
func (s *Adapter) DM(ctx context.Context, user string, m bot.Message) (bot.Ref, error) {
	ch, err := s.imWith(ctx, user)
	if err != nil {
		return bot.Ref{}, err
	}
	return s.Post(ctx, ch, m)
}

// imWith is the direct conversation of the bot with user: conversations.open once per user.
func (s *Adapter) imWith(ctx context.Context, user string) (string, error) {
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
			return "", slackError("conversations.open", user, err)
		}
		s.dmMu.Lock()
		s.dms[user] = ch
		s.dmMu.Unlock()
	}
	return ch, nil
}

// groupLookupTimeout bounds one usergroups.users.list lookup, retries after a rate limit
// included: a click waits at most this long for a group, not the minute and more that
// Retry-After answers could add up to.
const groupLookupTimeout = 5 * time.Second

// groupCache is what is known of one watched user group; groupsMu guards it.
type groupCache struct {
	members []string
	at      time.Time // when the lookup that gave members began; zero when never known
	// retryAt is when Slack, having rate-limited the last lookup, will take another:
	// no lookup is started before, so that clicks do not hammer a limit.
	retryAt time.Time
	flight  *groupLookup // the lookup under way, nil when none
}

// groupLookup is one usergroups.users.list lookup that every caller needing the group
// waits for, instead of asking Slack itself.
type groupLookup struct {
	done    chan struct{} // closed when members or err is set
	members []string
	err     error
	joined  int // callers that waited for it (guarded by groupsMu; tests read it)
}

// Groups implements Directory: the watched user groups user is a member of.
//
// It fails closed: when the membership of any watched group cannot be known (its lookup
// failed and no list younger than the TTL is cached) it returns an error and no groups,
// because a stale or partial list could let a removed approver approve. A list is used
// until it is GroupsTTL old; from half that age on, a call starts a refresh but does not
// wait for it. Each call starts at most one lookup per group, and callers needing the same
// group share one lookup; lookups of different groups run at once and do not wait for
// each other. A call waits no longer than ctx allows.
func (s *Adapter) Groups(ctx context.Context, user string) ([]string, error) {
	if len(s.watched) == 0 {
		return nil, nil
	}
	lists := make([][]string, len(s.watched))
	waits := make([]*groupLookup, len(s.watched))
	var errs []error
	s.groupsMu.Lock()
	now := s.now()
	for i, g := range s.watched {
		c := s.groups[g]
		age := now.Sub(c.at)
		fresh := !c.at.IsZero() && age >= 0 && age < s.groupsTTL
		if fresh {
			lists[i] = c.members
			if age < s.groupsTTL/2 {
				continue
			}
		}
		if c.flight == nil {
			if now.Before(c.retryAt) {
				if !fresh {
					errs = append(errs, fmt.Errorf("usergroups.users.list (%s): Slack is rate-limiting the bot until %s", g, c.retryAt.Format(time.TimeOnly)))
				}
				continue
			}
			c.flight = s.lookupGroup(g, c)
		}
		if !fresh {
			c.flight.joined++
			waits[i] = c.flight
		}
	}
	s.groupsMu.Unlock()
	for i, f := range waits {
		if f == nil {
			continue
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("usergroups.users.list (%s): %w", s.watched[i], ctx.Err()))
			continue
		}
		if f.err != nil {
			errs = append(errs, f.err)
			continue
		}
		lists[i] = f.members
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("user group membership unknown: %w", errors.Join(errs...))
	}
	var out []string
	for i, members := range lists {
		if slices.Contains(members, user) {
			out = append(out, s.watched[i])
		}
	}
	return out, nil
}

// lookupGroup starts a lookup of g's members; call with groupsMu held. The lookup has its
// own deadline rather than a caller's context, so that one caller giving up does not fail
// the others waiting for it.
func (s *Adapter) lookupGroup(g string, c *groupCache) *groupLookup {
	f := &groupLookup{done: make(chan struct{})}
	began := s.now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.lookupTimeout)
		defer cancel()
		var members []string
		err := retry(ctx, func() (err error) {
			members, err = s.api.GetUserGroupMembersContext(ctx, g)
			return err
		})
		s.groupsMu.Lock()
		if err == nil {
			c.members, c.at = members, began
		} else {
			var rl *slack.RateLimitedError
			if errors.As(err, &rl) {
				c.retryAt = s.now().Add(rl.RetryAfter)
			}
			err = slackError("usergroups.users.list", g, err)
		}
		c.flight = nil
		f.members, f.err = members, err
		s.groupsMu.Unlock()
		close(f.done)
		if err != nil {
			s.log.Warn("user group lookup failed", "usergroup", g, "err", err)
		}
	}()
	return f
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
// answers, with backoff, at most 4 times; other errors are returned at once, and so is the
// last one when ctx's deadline comes before the next attempt could.
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
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // waiting would only end in ctx's error
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
func msgOptions(m bot.Message) []slack.MsgOption {
	opts := []slack.MsgOption{slack.MsgOptionText(cut(m.Text, 3000), false)}
	if len(m.Blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks(m.Blocks)...))
	}
	return opts
}

func blocks(bs []bot.Block) []slack.Block { return blocksUpTo(bs, maxBlocks) }

// blocksUpTo renders at most max blocks: 50 in a message, 100 in a view.
func blocksUpTo(bs []bot.Block, max int) []slack.Block {
	var out []slack.Block
	for _, b := range bs {
		if len(out) == max {
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

// Slack's limits (reference: expectations.md).
const (
	maxSection = 3000
	maxBlocks  = 50
	maxButton  = 75
)

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
