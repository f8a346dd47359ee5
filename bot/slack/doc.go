// Package slack is the bot's Slack adapter over Socket Mode: it acknowledges every envelope
// before anything else, turns slash commands, button clicks, shortcuts, modal submissions,
// option lookups and App Home visits into calls on the engine (bot.Handler), and renders the
// engine's models as Block Kit: messages, modals and home tabs, within Slack's limits. It is
// also the engine's bot.Chat and bot.Directory, over the Web API. It is the only importer of
// github.com/slack-go/slack outside the stand-in (bot/slack/slacktest).
package slack
