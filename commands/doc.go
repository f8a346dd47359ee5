// Package commands is the grammar of the bot: the text a person types after the slash command
// becomes a typed Command, or an error that says what is wrong and shows the usage of the verb.
//
// It is pure: no Slack, no MongoDB, no clock. It checks the shape of a command (verbs, the
// number of words, flags, durations, ids); the names themselves (users, roles, databases) are
// checked against MongoDB's rules by the connector before anything is asked of anyone.
package commands
