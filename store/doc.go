// Package store keeps everything the bot must never lose in one bbolt file: approval requests,
// the write-ahead journal of actions, schedules, one-time secrets and dedupe keys.
//
// Invariants:
//
//   - Write ahead. [Store.BeginEntry] commits a journal entry in state [EntryExecuting] before
//     the caller touches MongoDB; [Store.Executing] lists what a crash left behind so start-up
//     can reconcile it.
//   - One transition, one transaction. Every state change is a compare-and-set inside a single
//     read-write transaction: it checks the state it expects and writes the next one, or returns
//     a *[ConflictError]. Two callers racing on one record: exactly one wins.
//   - No secret in clear. Passwords go only into the secrets bucket, sealed with AES-256-GCM;
//     records that describe actions never hold one. The file is created 0600 in a 0700 folder.
//   - Indexes move with their records. The hot questions (pending requests, entries executing,
//     awaiting a temporary end or a delivery, the lock an unlock undoes) are answered from
//     index buckets that put updates in the transaction that writes the record, so their cost
//     does not grow with the journal. Open rebuilds them when the file's last write did not
//     keep them (a journal from an older build); [Store.Reindex] rebuilds them on demand.
//   - Every decision on the record. Each write of a request or an entry appends its events
//     (a request made, a vote, an approval and by which rule, a denial, an expiry, an entry's
//     new state) to the audit trail in the same transaction; refused clicks and reveals are
//     appended as the bot reports them. [Store.ExportAudit] writes the trail, each event
//     with its cursor (see docs/audit.md).
//   - Never misread. The file carries a schema version; a file written by a newer bot is
//     refused with a message, older ones are migrated in one transaction.
//
// Record ids are short decimal numbers from bbolt sequences ("rollback 42"), so people can type
// them. MongoDB, Slack and the network are never called inside a transaction: callers do their
// slow work between transactions.
//
// bbolt is imported only by this package.
package store
