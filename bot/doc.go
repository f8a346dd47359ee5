// Package bot is the conversation engine: it turns chat events (slash commands, button
// clicks, form submissions, home tab views) into work, and work into messages. It owns the
// flow request → approval → execution → result → rollback, start-up reconciliation, timers
// and schedules. It knows no chat platform.
//
// The flow talks to the outside through small interfaces declared here: Chat (post, update,
// ephemeral, direct message), Directory (user group membership) and Mongo (one connector),
// and speaks in its own models: Message for what it says, Form for what it asks, Home for
// what a person sees of their own business. The adapters live beside it, each owning its
// rendering: bot/slack (Socket Mode, Block Kit, modals, the App Home; its stand-in is
// bot/slack/slacktest) and bot/console (the terminal, which asks a form's fields one by
// one). connector.Mongo implements Mongo; the store is used as is.
//
// Invariants:
//   - Ack first: an adapter acknowledges every delivery before any other work (bot/slack).
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
//     action is the bot's own act, retried until done and loud while overdue. Giving up early
//     what a temporary grant or access added only removes, so it runs without a vote, for its
//     requester or an approver (giveup.go).
//   - Nothing in a click is trusted: buttons carry a record's id and its token, votes count
//     only on the request's own card, and access is re-checked from the policy at each vote,
//     run, reveal and rollback. User text is escaped wherever it is rendered (escape.go).
//   - No goroutine the bot starts can take the process down (safely, recoverFor).
package bot
