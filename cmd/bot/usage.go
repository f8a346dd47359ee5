package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// usage is the program's own usage: what mongobot -h, mongobot --help and mongobot help print.
const usage = `usage: mongobot <command> [flags] [arguments]

A Slack bot that manages MongoDB users, with approvals and a journal.

Commands:
  serve                 connect to Slack over Socket Mode and serve (the default)
  console               the bot with this terminal as the chat
  check                 validate the config and check each connector
  journal list [n]      the last n journal entries, newest first
  journal show <id>     one journal entry, whole, as JSON
  journal export        the journal as JSON lines, oldest first (--since to limit it)
  journal backup        a portable, verified backup of the journal (the bot may run)
  journal restore <file>  restore a backup into an empty data folder or etcd prefix
  journal verify        list the journal's records that the bot did not write
  journal adopt         authenticate a journal an older version wrote (after looking at it)
  journal reindex       rebuild the journal's indexes (the bot stopped)
  journal compact       rewrite the journal file to reclaim space (the bot stopped)
  rekey                 re-encrypt the sealed passwords with a new key
  version               print the version

Run mongobot <command> --help (or mongobot help <command>) for a command's flags, environment and an
example. --help never changes anything.

Environment: SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_API_URL, BOT_CONFIG (default bot.yaml),
BOT_DATA_DIR (default ./data), BOT_ENCRYPTION_KEY, BOT_NEW_ENCRYPTION_KEY (key rotation).
`

// helps is each command's usage, printed by mongobot <command> --help and mongobot help <command>:
// what it does, its flags and arguments, the environment it reads, and an example.
var helps = map[string]string{
	"serve": `usage: mongobot serve

Connects to Slack over Socket Mode and serves slash commands and button clicks until it is
stopped (SIGINT or SIGTERM finish the work in flight first). It is what mongobot does with no command.

At start it checks both Slack tokens, loads the config, opens (creating if needed) the journal
in BOT_DATA_DIR, and asks Slack who the bot is (auth.test): a refused token, an unreachable
Slack API and a TLS failure are each reported as such, and the bot exits 1.

With the journal in BOT_DATA_DIR (no store.etcd), it listens on the unix socket
BOT_DATA_DIR/mongobot.sock (mode 0600) while it runs, and hands out snapshots of the journal
there to mongobot journal list, show, export and backup; it removes the socket when it stops.

Flags: none.

Environment:
  SLACK_APP_TOKEN       app-level token (xapp-…, scope connections:write); required
  SLACK_BOT_TOKEN       bot token (xoxb-…); required
  SLACK_API_URL         Slack Web API base URL; default Slack's own (set it for GovSlack)
  BOT_CONFIG            config file; default bot.yaml (${VAR} in it is read from the environment)
  BOT_DATA_DIR          folder of the journal and other state; default ./data, created 0700
  BOT_ENCRYPTION_KEY    32-byte key sealing new passwords (64 hex digits); without it a key
                        file is created in BOT_DATA_DIR
  BOT_NEW_ENCRYPTION_KEY  on etcd, during a key rotation: the new key, held beside
                        BOT_ENCRYPTION_KEY (see mongobot rekey --help)

Example:
  SLACK_APP_TOKEN=xapp-… SLACK_BOT_TOKEN=xoxb-… BOT_CONFIG=/etc/mongobot/bot.yaml mongobot serve
`,
	"console": `usage: mongobot console [--demo] [--config <file>] [--as <user>]

Runs the bot with this terminal as the chat: type slash commands, see the bot's messages as
text and press buttons by number. Type help in the console for its own commands.

Without a config file (or with --demo) it uses the embedded demo config and starts the
MongoDB emulator inside the process, with a temporary data folder unless BOT_DATA_DIR is set.
Otherwise it uses the config and the journal in BOT_DATA_DIR like serve, and every journal
entry and card says it came from the console.

With --demo --config <file> it tries your config without touching your servers: its approval
rules, quorums, just-in-time policy and schedule settings run on the emulator, started under
each of its connectors' names. No server it names is contacted and no credential is read
(every ${VAR} stands for a placeholder); deliveries are held in memory, never sent to Vault,
Kubernetes or a command; the journal is a temporary one, whatever BOT_DATA_DIR says. Every
card says it is a demo.

Flags:
  --demo                use the embedded demo config and an in-process demo MongoDB
  --config <file>       the config (default BOT_CONFIG); with --demo, try it on the emulator
  --as <user>           the user to act as at first (a name or a Slack user id)

Environment:
  BOT_CONFIG            config file; default bot.yaml
  BOT_DATA_DIR          folder of the journal; default ./data (a temporary one in the demo)
  BOT_ENCRYPTION_KEY    key sealing new passwords; see mongobot serve --help

Examples:
  mongobot console --demo
  mongobot console --demo --config bot.yaml --as U0ALICE
`,
	"check": `usage: mongobot check

Validates the config and, for each connector, connects and reports the server's version and
topology and which of the bot's actions its account can and cannot perform. It also says
whether the journal in BOT_DATA_DIR is there and readable, and, for each delivery target,
whether it can be reached and written (the Vault token's policy on the secret's path, the
Kubernetes account's access to the Secret, the command's program). It asks Slack what serve
will need: the bot token (auth.test: workspace and bot user), the app-level token (it may
open Socket Mode; the socket itself is not opened), the bot token's scopes against those the
config needs (usergroups:read when it names user groups), the bot's membership of the
approvals and schedules channels (seen only with channels:read), and that each user group
the config names exists and is enabled. It only reads: it creates no data folder, journal or
key, changes nothing on MongoDB, writes to no target and posts nothing to Slack.

It lists its findings, then ends with one verdict, "check: ok" (exit 0) or "check: N
problem(s)" (exit 1). A data folder that does not exist yet is reported but is not a problem:
serve creates it on its first start.

Flags: none.

Environment:
  BOT_CONFIG            config file; default bot.yaml (${VAR} in it is read from the environment)
  BOT_DATA_DIR          folder of the journal; default ./data
  BOT_ENCRYPTION_KEY    only checked to be a valid key when set; on etcd, check says whether
                        it (and BOT_NEW_ENCRYPTION_KEY) holds the key the journal seals with
  SLACK_BOT_TOKEN       the bot token (xoxb-…); a problem when not set, as serve needs it
  SLACK_APP_TOKEN       the app-level token (xapp-…); a problem when not set
  SLACK_API_URL         the Slack Web API's base URL; default Slack's own

Example:
  BOT_CONFIG=/etc/mongobot/bot.yaml mongobot check
`,
	"journal": `usage: mongobot journal list [n] | show <id> | export [--since <when>] | backup [--out <file>]
       | restore <file> [--yes] | verify | adopt [--yes] | reindex | compact [--yes]

Reads the journal, the record of every action the bot took. list, show, export and backup
only read, and work while the bot runs: on etcd they read one revision; on bbolt, where the
running bot holds the file, they read a snapshot it hands out over the socket mongobot.sock
in its data folder (and say so on stderr). A missing data folder or journal is reported,
never created. restore writes a backup into an empty journal; reindex rebuilds the indexes
and compact rewrites the file, with the bot stopped.

Subcommands:
  list [n]              the last n entries (default 20), newest first, with their details
  show <id>             one entry, whole, as JSON
  export [--since <when>]  the audit trail as JSON lines, oldest first: every request, vote,
                        decision, refused click, reveal and entry (or those after a cursor,
                        a date or a span ago)
  verify                check that every record was written by the bot, and list any that was not
  adopt [--yes]         authenticate the records of a journal an older version wrote
  reindex               rebuild the indexes from the records, and say what they hold
  compact [--yes]       rewrite the file without the space of purged records
  backup [--out <file>] the whole journal, verified by a checksum, from one transaction
  restore <file> [--yes]  a backup into an empty data folder or etcd prefix

Each entry shows its requester, its reason, its approvers with when they voted, the schedule
it ran for, who rolled it back and by which entry, and the server's version when recorded.

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal list 50
`,
	"journal list": `usage: mongobot journal list [n]

Prints the last n journal entries (default 20), newest first: one line per entry (id, time,
state, action, user, connector, requester), then indented lines with its reason, its
approvers and when they voted, its schedule, its rollback and the server's version. It only
reads, and works while the bot runs (on bbolt, on a snapshot the bot hands out).

Arguments:
  n                     how many entries to print; default 20

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  mongobot journal list 50
`,
	"journal show": `usage: mongobot journal show <id>

Prints one journal entry, whole, as indented JSON: the entry as recorded (state history,
user state before and after, what a rollback would do) plus, from its request, the reason and
the votes with their times, and who rolled it back. It only reads, and works while the bot
runs (on bbolt, on a snapshot the bot hands out).

Arguments:
  id                    the entry's number, as Slack shows it (#42 or 42)

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  mongobot journal show 42
`,
	"journal export": `usage: mongobot journal export [--since <when>] [--cursor-file <file>]

Writes the audit trail to stdout as JSON lines, oldest first, for a SIEM or an archive:
every request in every state with its votes, approvals (by people, or by the policy rule
that needed no vote), denials, expiries, cancellations, refused clicks, reveals of passwords
(who and when, never the password) and journal entries, each entry with its reason, votes
and rollback as journal show prints them. Every line carries "schema" (the line format's
version) and "cursor" (increasing: pass the last one kept to --since to get only what is
newer); docs/audit.md describes every kind and field. It only reads, and works while the
bot runs (on bbolt, on a snapshot the bot hands out). The bot deletes records and events
older than the config's retention.keep (400d by default): archive them before, if they must
outlive it.

Flags:
  --since <when>        only the events after a cursor (1234: the "cursor" of the last line
                        kept), or at or after a date (2026-01-01, from midnight UTC), a time
                        (2026-01-01T00:00:00Z), or a span back from now (30d, 12h)
  --cursor-file <file>  resume after the cursor kept in file, and keep the last cursor there
                        once the lines are written (as journalctl's): run it every night and
                        it writes only what is new. The first time (no file yet) it writes
                        everything, or what --since chooses

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  mongobot journal export > journal-$(date +%F).jsonl
  mongobot journal export --since 2026-01-01 > journal-2026.jsonl
  mongobot journal export --cursor-file audit.cursor >> audit.jsonl
`,
	"journal compact": `usage: mongobot journal compact [--yes]

Rewrites the journal file so that it holds only its live records: the bot deletes old
records (retention.keep in the config), but the file keeps the space they took until it is
compacted. The bot must be stopped. It says what it will do, then asks: it changes nothing
without --yes or a "yes" typed at a terminal. It prints the file's size before and after.

The copy is written to a temporary file in the same folder (mode 0600), synced and checked,
then renamed over the journal: a crash at any point leaves the old journal or the new one,
whole. Export first (mongobot journal export) if you want an archive of what was purged before.

Flags:
  --yes                 go ahead without asking

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal compact --yes
`,
	"journal backup": `usage: mongobot journal backup [--out <file>]

Writes a backup of the whole journal: every request, entry, schedule, sealed password,
index and id sequence, taken from one read transaction, so that it is one moment of the
journal. It works while the bot runs: on bbolt it backs up a snapshot the running bot hands
out (over mongobot.sock in its data folder); on etcd it reads one revision while the replicas
go on writing. It changes nothing.

The backup is a text file of JSON lines: a header (format and its version, the journal's
schema, the backend and where it was taken, the time, the number of records of each kind),
the records, and a SHA-256 checksum of all of it, which restore verifies before it writes
anything. It can be restored on either backend (bbolt to etcd, etcd to bbolt).

The backup holds the sealed passwords but NOT the encryption key: the restored bot needs
the same BOT_ENCRYPTION_KEY (or a copy of the key file). Keep the key apart from the backup.

The file is written owner-only (0600) under a temporary name in the same folder, synced,
then renamed to its name, replacing a file of that name: it holds a whole backup or what it
held before.

Flags:
  --out <file>          where to write it; - for stdout; default
                        mongobot-backup-<UTC time>.jsonl in the current folder

Environment:
  BOT_CONFIG            config file; with store.etcd, the journal is read there
  BOT_DATA_DIR          folder of the journal; default ./data

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal backup --out /backups/mongobot-$(date -u +%F).jsonl
`,
	"journal restore": `usage: mongobot journal restore <file> [--yes]

Restores a backup made by mongobot journal backup into an empty journal: a data folder
(BOT_DATA_DIR) without journal.db, or, when the config has store.etcd, a prefix no replica
has started on. It refuses any other target, and changes nothing then.

Before it writes anything it verifies the backup's checksum, its format and its schema (a
backup from a newer version is refused), and that the key (BOT_ENCRYPTION_KEY, or the key
file in BOT_DATA_DIR) opens every sealed password in it: the backup never holds the key. It
says what it will write, then asks: it writes nothing without --yes or a "yes" typed at a
terminal.

On bbolt the journal is written to a new file and takes the name journal.db only when
complete. On etcd it takes several transactions (within store.etcd.max_txn_ops); until the
last one, the journal is marked as being restored and no replica or command opens it. If a
restore into etcd is interrupted, delete the prefix and run it again.

Start the bot afterwards with the same key: it resumes the journal's pending work
(temporary grants and locks to end, deliveries to retry, schedules) where the backup left it.

Flags:
  --yes                 go ahead without asking

Environment:
  BOT_CONFIG            config file; with store.etcd, the backup is restored there
  BOT_DATA_DIR          folder to restore into; default ./data
  BOT_ENCRYPTION_KEY    the key of the bot that took the backup, when it is not the key file

Example:
  BOT_DATA_DIR=/var/lib/mongobot-new mongobot journal restore /backups/mongobot-2026-12-07.jsonl --yes
`,
	"journal verify": `usage: mongobot journal verify

Checks that every record of the journal (requests, entries, schedules, alternating pairs) was
written by the bot: each carries a tag made with a key derived from the encryption key, over
the record, its id and its version. Lists every record that fails (forged, altered, copied
under another id, or from a journal cut back). A record deleted outside the bot leaves no
trace it can check. The bot never acts on a record that fails; it says so in the approvals
channel, its log and the mongobot_tampered_records metric. Exits 1 when any record fails or
the journal awaits adoption. It only reads, and works while the bot runs.

Flags: none.

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data
  BOT_CONFIG            config file; with store.etcd, the shared journal there is checked
  BOT_ENCRYPTION_KEY    the key, when it is not the key file (required on etcd)

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal verify
`,
	"journal adopt": `usage: mongobot journal adopt [--yes]

Authenticates, as the bot's own, the records of a journal written by a version before
records were authenticated, and records the adoption (by $USER) in the audit trail. Until
then the bot acts on none of them and serve refuses to start, saying so. Look at the records
first (mongobot journal list, mongobot journal export): adopting vouches for whatever the
journal holds. It says what it will do, then asks; it changes nothing without --yes or a
"yes" typed at a terminal. A journal whose records are already authenticated has nothing
to adopt, and a record whose tag fails is never adopted.

On bbolt the bot must be stopped. On etcd, stop every replica of the older version first:
what they write afterwards is refused in turn.

Flags:
  --yes                 go ahead without asking

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data
  BOT_CONFIG            config file; with store.etcd, the shared journal there is adopted
  BOT_ENCRYPTION_KEY    the key, when it is not the key file (required on etcd)

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal verify; BOT_DATA_DIR=/var/lib/mongobot mongobot journal adopt
`,
	"journal reindex": `usage: mongobot journal reindex

Rebuilds the journal's indexes (requests by state, entries executing, awaiting a temporary
end or a delivery, locks in force) from its records, in one transaction, and prints how many
records it read and how many keys each index holds. The bot must be stopped.

The bot keeps the indexes with every write and rebuilds them by itself at start when the
journal's last write did not (a journal from an older version), so this is for after a
consistency check found one wrong, or to do the rebuild before a start. It changes no record,
so it asks nothing; a missing data folder or journal is reported, never created.

Flags: none.

Environment:
  BOT_DATA_DIR          folder of the journal; default ./data
  BOT_ENCRYPTION_KEY    the key, when it is not the key file (opening for writing checks it)

Example:
  BOT_DATA_DIR=/var/lib/mongobot mongobot journal reindex
`,
	"rekey": `usage: mongobot rekey [--yes]

Re-encrypts every sealed password (those waiting for Reveal) in the journal with a new key.
It first says what it will do, then asks: it changes nothing without --yes or a "yes" typed
at a terminal.

On the bbolt file the bot must be stopped:

  - With the key file in BOT_DATA_DIR (no BOT_ENCRYPTION_KEY): a new key is made (or taken
    from BOT_NEW_ENCRYPTION_KEY) and replaces the key file.
  - With BOT_ENCRYPTION_KEY: the new key must be given in BOT_NEW_ENCRYPTION_KEY; start the
    mongobot afterwards with BOT_ENCRYPTION_KEY set to it.

On etcd (store.etcd in the config) the replicas keep serving. First give every replica the
new key in BOT_NEW_ENCRYPTION_KEY beside its BOT_ENCRYPTION_KEY (a rolling restart), then run
rekey with the same two: it makes the new key the one every replica seals with, and
re-encrypts the sealed passwords in batches. Run again, it finishes a rotation that was
interrupted. Then restart the replicas one at a time with BOT_ENCRYPTION_KEY set to the new
key and no BOT_NEW_ENCRYPTION_KEY. Keys are named by fingerprint (12 hex digits), never
printed; mongobot check says where a rotation stands.

Flags:
  --yes                 go ahead without asking

Environment:
  BOT_CONFIG              config file; default bot.yaml (with store.etcd: the shared journal)
  BOT_DATA_DIR            folder of the journal; default ./data
  BOT_ENCRYPTION_KEY      the current key, when it is not the key file (required on etcd)
  BOT_NEW_ENCRYPTION_KEY  the new key (64 hex digits, e.g. from openssl rand -hex 32)

Examples:
  BOT_NEW_ENCRYPTION_KEY=$(openssl rand -hex 32) mongobot rekey --yes
  BOT_ENCRYPTION_KEY=$OLD_KEY BOT_NEW_ENCRYPTION_KEY=$NEW_KEY mongobot rekey --yes
`,
	"version": `usage: mongobot version

Prints the program's version (also mongobot --version, mongobot -v).

Example:
  mongobot version
`,
}

// isHelp reports whether arg asks for help the way the flag package, kubectl and terraform
// take it: -h, -help, --h, --help, with any =value (the flag package answers every one of
// those with ErrHelp, whatever the value).
func isHelp(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
	return strings.HasPrefix(arg, "-") && (name == "h" || name == "help")
}

// wantsHelp reports whether args ask for help anywhere before a "--": kubectl and terraform
// take --help after the arguments too, and a command asked for help must never run.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

// help prints the usage of the command named by args (none: the program's), for mongobot help.
func help(args []string, w io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(w, usage)
		return nil
	}
	name := strings.Join(args, " ")
	if name == "--version" || name == "-v" {
		name = "version"
	}
	text, ok := helps[name]
	if !ok {
		return usageError{fmt.Sprintf("there is no command %q; run mongobot help for the list", name)}
	}
	fmt.Fprint(w, text)
	return nil
}

// flags is the flag set of command name: errors are returned, not printed, so that the
// message is one sentence pointing at --help.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args into fs and checks that at most maxArgs arguments remain.
func parse(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v; run mongobot %s --help for its usage", fs.Name(), err, fs.Name())}
	}
	if extra := fs.Args(); len(extra) > maxArgs {
		what := "no arguments"
		if maxArgs > 0 {
			what = fmt.Sprintf("at most %d argument(s)", maxArgs)
		}
		return usageError{fmt.Sprintf("%s takes %s, but was given %q; run mongobot %s --help for its usage",
			fs.Name(), what, strings.Join(extra[maxArgs:], " "), fs.Name())}
	}
	return nil
}
