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
//   - An entry is claimed as it is created (beginClaimed), so the periodic check never settles
//     an action still running; actions on one user run one at a time (lockTarget).
//   - A rollback is judged by the policy of the action it performs; the end of a temporary
//     action is the bot's own act, retried until done and loud while overdue.
//   - Nothing in a click is trusted: buttons carry a record's id and its token, votes count
//     only on the request's own card, and access is re-checked from the policy at each vote,
//     run, reveal and rollback. User text is escaped wherever it is rendered (escape.go).
//   - No goroutine the bot starts can take the process down (safely, recoverFor).
package bot
