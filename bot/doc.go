// Package bot is the conversation: it turns chat events (slash commands, button clicks) into
// work, and work into messages. It owns the flow request → approval → execution → result →
// rollback, start-up reconciliation, and the Slack Socket Mode adapter.
//
// The flow talks to the outside through small interfaces declared here: Chat (post, update,
// ephemeral, direct message), Directory (user group membership) and Mongo (one connector).
// The Slack adapter implements Chat and Directory; connector.Mongo implements Mongo; the
// store is used as is.
//
// Invariants:
//   - Ack first: the Slack adapter acknowledges every envelope before any other work.
//   - Write ahead: a journal entry is committed "executing" before MongoDB is touched, and a
//     request moves approved → executing by compare-and-set, so it runs at most once however
//     many clicks, retries or approvers arrive together.
//   - A new password is sealed in the store before the server is asked to set it, and is
//     shown only to its owner, once, in an ephemeral message.
//   - Every failure ends in a sentence to the person concerned and, where something was
//     attempted, in the journal.
package bot
