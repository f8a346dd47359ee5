// Package slacktest is a Slack stand-in for end-to-end tests, built on slack-go's own
// slacktest server: the Web API methods the bot calls (auth.test, apps.connections.open,
// chat.postMessage, chat.update, chat.postEphemeral, conversations.open,
// usergroups.users.list, and for check conversations.info and usergroups.list) and a Socket Mode websocket that delivers envelopes in Slack's real
// formats (slash_commands, interactive block_actions, disconnect, retries with
// retry_attempt) and records the acks.
//
// It keeps every Web API call it served, enforces Slack's Block Kit limits (50 blocks, 3,000
// characters per section text, 10 fields of 2,000, 75 per button text) the way Slack does,
// by refusing the call, and can answer a method with a rate limit (429, Retry-After) to test
// retries, and a user group's lookups with an error or a delay. Every answer to the bot
// token names its scopes in X-OAuth-Scopes (SetScopes), as Slack's do; a channel can lack the
// bot (Outside) and a user group be disabled (DisableGroup). It is workspace Team and app
// App; envelopes from elsewhere can be forged (SlashCommandFrom, ClickFrom). Tests wait on it
// with deadlines, never with sleeps.
package slacktest
