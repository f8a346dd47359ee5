package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"mongobot/bot"
)

// Forms is what the adapter needs from the engine for modals and the App Home; *bot.Bot has
// it. A Handler without it gets no forms: /mongo alone shows the help.
type Forms interface {
	RequestForm(ctx context.Context, user string, values map[string]string) bot.Form
	FormOptions(ctx context.Context, user string, values map[string]string, field, query string) []bot.Option
	SubmitForm(ctx context.Context, s bot.FormSubmission) map[string]string
	HomeOpened(ctx context.Context, user string)
}

var _ Forms = (*bot.Bot)(nil)

// Names the adapter gives Slack: the modal's callback id, and the global shortcut's (set in
// the app's manifest, "MongoDB request").
const (
	formCallback     = "mongobot_request"
	shortcutCallback = "mongobot_request"
)

// Slack's windows and limits for views (reference: expectations.md): an answer to a
// view_submission or a block_suggestion goes in the ack, within 3 seconds; a trigger id
// opens a modal within 3 seconds of the click.
const (
	answerWithin      = 2500 * time.Millisecond
	maxViewBlocks     = 100
	maxMetadata       = 3000
	maxTitle          = 24
	maxOptionsPerList = 100
)

// formMeta is the modal's private_metadata: where the form was opened from, so that the
// answers go there (privately) rather than only to a direct message.
type formMeta struct {
	Channel string `json:"c,omitempty"`
}

// openForm opens the request form for user with trigger, values filled in. It runs on its
// own goroutine without waiting for a work slot: the trigger lives 3 seconds from the click
// (received), and the form asks no server. When it cannot be opened, the person is told.
func (s *Adapter) openForm(ctx context.Context, f Forms, received time.Time, trigger, user, channel string) {
	ctx, cancel := context.WithDeadline(ctx, received.Add(answerWithin))
	defer cancel()
	view := modal(f.RequestForm(ctx, user, nil), formMeta{Channel: channel})
	if _, err := s.api.OpenViewContext(ctx, trigger, view); err != nil {
		s.log.Error("views.open", "user", user, "err", err)
		msg := bot.Message{Text: "The request form could not be opened just now (Slack gives the bot 3 seconds, and it took longer or Slack refused). Try again, or type the command: `" + s.slash + " help` lists them."}
		if _, derr := s.DM(context.WithoutCancel(ctx), user, msg); derr != nil {
			s.log.Error("tell that the form did not open", "user", user, "err", derr)
		}
	}
}

// interactive handles an interaction that is not a plain button on a message: those on the
// App Home and in the form, shortcuts, submissions and option lookups. It acks evt itself,
// with the answer when Slack wants one in the ack. It reports false when cb is none of
// these, left to the caller.
func (s *Adapter) interactive(ctx context.Context, evt socketmode.Event, received time.Time, cb slack.InteractionCallback, h bot.Handler) bool {
	f, ok := h.(Forms)
	if !ok {
		return false
	}
	ack := func(payload any) { s.ack(evt, payload) }
	wctx := context.WithoutCancel(ctx)
	switch {
	case cb.Type == slack.InteractionTypeShortcut && cb.CallbackID == shortcutCallback:
		ack(nil)
		go s.openForm(wctx, f, received, cb.TriggerID, cb.User.ID, "")
	case cb.Type == slack.InteractionTypeBlockSuggestion && cb.View.CallbackID == formCallback:
		// The lookup may ask the connector: never in the loop that reads the socket. The
		// answer is the ack, due within 3 seconds of the envelope.
		go func() {
			actx, cancel := context.WithDeadline(wctx, received.Add(answerWithin))
			defer cancel()
			opts := f.FormOptions(actx, cb.User.ID, formValues(cb.View.State), cb.ActionID, cb.Value)
			ack(map[string]any{"options": options(opts)})
		}()
	case cb.Type == slack.InteractionTypeViewSubmission && cb.View.CallbackID == formCallback:
		var meta formMeta
		_ = json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta)
		go func() {
			actx, cancel := context.WithDeadline(wctx, received.Add(answerWithin))
			defer cancel()
			errs := f.SubmitForm(actx, bot.FormSubmission{User: cb.User.ID, Channel: meta.Channel,
				Values: formValues(cb.View.State), Key: deliveryKey(cb.TriggerID, evt.Request)})
			if len(errs) > 0 {
				ack(map[string]any{"response_action": "errors", "errors": errs})
				return
			}
			ack(nil) // closes the modal; the request's messages follow
		}()
	case cb.Type == slack.InteractionTypeBlockActions && cb.View.Type == slack.VTModal && cb.View.CallbackID == formCallback:
		// A field other fields depend on changed: show the form again with what it needs.
		ack(nil)
		var meta formMeta
		_ = json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta)
		values := formValues(cb.View.State)
		go func() {
			s.slot()
			defer s.free()
			view := modal(f.RequestForm(wctx, cb.User.ID, values), meta)
			if _, err := s.api.UpdateViewContext(wctx, view, "", cb.View.Hash, cb.View.ID); err != nil {
				s.log.Warn("views.update", "user", cb.User.ID, "err", err)
			}
		}()
	case cb.Type == slack.InteractionTypeBlockActions && cb.View.Type == slack.VTHomeTab:
		ack(nil)
		for i, a := range cb.ActionCallback.BlockActions {
			if a.ActionID == bot.ActOpenForm {
				go s.openForm(wctx, f, received, cb.TriggerID, cb.User.ID, "")
				continue
			}
			c := bot.Click{User: cb.User.ID, Home: true, Action: a.ActionID, Value: a.Value,
				Key: deliveryKey(cb.TriggerID, evt.Request) + fmt.Sprintf("/%d", i)}
			go func() { s.slot(); defer s.free(); h.HandleClick(wctx, c) }()
		}
	default:
		return false
	}
	return true
}

// event handles an Events API envelope: the App Home being opened. It is acked first.
func (s *Adapter) event(ctx context.Context, evt socketmode.Event, h bot.Handler) {
	s.ack(evt, nil)
	ev, ok := evt.Data.(slackevents.EventsAPIEvent)
	f, forms := h.(Forms)
	if !ok || !forms || !s.ours(evt, ev.TeamID, ev.APIAppID) {
		return
	}
	if home, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok && home.Tab == "home" {
		wctx := context.WithoutCancel(ctx)
		go func() { s.slot(); defer s.free(); f.HomeOpened(wctx, home.User) }()
	}
}

// PublishHome implements bot.HomeHolder: views.publish of the home tab.
func (s *Adapter) PublishHome(ctx context.Context, user string, h bot.Home) error {
	bs := blocksUpTo(h.Blocks, maxViewBlocks)
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: bs}}
	err := retry(ctx, func() error {
		_, err := s.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: view})
		return err
	})
	if err != nil {
		return slackError("views.publish", user, err)
	}
	return nil
}

var _ bot.HomeHolder = (*Adapter)(nil)

// modal renders f as a modal view within Slack's limits.
func modal(f bot.Form, meta formMeta) slack.ModalViewRequest {
	raw, _ := json.Marshal(meta)
	md := string(raw)
	if len(md) > maxMetadata {
		md = "" // the answers then go by direct message
	}
	var bs []slack.Block
	if f.Note != "" {
		bs = append(bs, slack.NewSectionBlock(mrkdwn(cut(f.Note, maxSection)), nil, nil))
	}
	for _, fl := range f.Fields {
		if len(bs) == maxViewBlocks {
			break
		}
		bs = append(bs, inputBlock(fl))
	}
	v := slack.ModalViewRequest{Type: slack.VTModal, CallbackID: formCallback, PrivateMetadata: md,
		Title: plain(cut(f.Title, maxTitle)), Close: plain("Cancel"), Blocks: slack.Blocks{BlockSet: bs}}
	if len(f.Fields) > 0 {
		v.Submit = plain(cut(f.Submit, maxTitle)) // a modal without inputs may have no Submit
	}
	return v
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

// inputBlock renders one field: its block id and action id are the field's id.
func inputBlock(fl bot.FormField) *slack.InputBlock {
	var hint *slack.TextBlockObject
	if fl.Hint != "" {
		hint = plain(cut(fl.Hint, 2000))
	}
	var el slack.BlockElement
	switch fl.Kind {
	case bot.FieldChoice:
		opts := options(fl.Options)
		sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Choose"), fl.ID, opts...)
		for _, o := range opts {
			if o.Value == fl.Value {
				sel.InitialOption = o
			}
		}
		el = sel
	case bot.FieldSearch:
		sel := slack.NewOptionsSelectBlockElement(slack.OptTypeExternal, plain("Type to search"), fl.ID)
		zero := 0
		sel.MinQueryLength = &zero
		if fl.Value != "" {
			sel.InitialOption = slack.NewOptionBlockObject(fl.Value, plain(cut(fl.Value, 75)), nil)
		}
		el = sel
	case bot.FieldFlag:
		opt := slack.NewOptionBlockObject("true", plain(cut(fl.Label, 75)), nil)
		cbx := slack.NewCheckboxGroupsBlockElement(fl.ID, opt)
		if fl.Value == "true" {
			cbx.InitialOptions = []*slack.OptionBlockObject{opt}
		}
		el = cbx
	default:
		in := slack.NewPlainTextInputBlockElement(nil, fl.ID)
		in.Multiline = fl.Multiline
		in.InitialValue = fl.Value
		el = in
	}
	b := slack.NewInputBlock(fl.ID, plain(cut(fl.Label, 2000)), hint, el)
	b.Optional = fl.Optional
	b.DispatchAction = fl.Refresh
	return b
}

// options renders options within Slack's limits: 100 per list, 75 characters of text and
// 150 of value each.
func options(os []bot.Option) []*slack.OptionBlockObject {
	out := []*slack.OptionBlockObject{}
	for _, o := range os {
		if len(out) == maxOptionsPerList {
			break
		}
		if len(o.Value) > 150 {
			continue // a value cut short would name something else
		}
		out = append(out, slack.NewOptionBlockObject(o.Value, plain(cut(o.Label, 75)), nil))
	}
	return out
}

// formValues reads a view's state as field id → value: a selected option's value, a text,
// or "true" for a checked box.
func formValues(st *slack.ViewState) map[string]string {
	out := map[string]string{}
	if st == nil {
		return out
	}
	for _, actions := range st.Values {
		for id, a := range actions {
			switch {
			case a.SelectedOption.Value != "":
				out[id] = a.SelectedOption.Value
			case len(a.SelectedOptions) > 0:
				out[id] = "true"
			case a.Value != "":
				out[id] = a.Value
			}
		}
	}
	return out
}
