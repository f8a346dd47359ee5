// Command bot builds mongobot, the MongoDB user-management Slack bot.
//
//	mongobot [serve]                 connect to Slack over Socket Mode and serve (the default)
//	mongobot console [--demo]        the bot with the terminal as the chat
//	mongobot check                   validate the config and check each connector; one verdict, last
//	mongobot journal list [n]        the journal, newest first
//	mongobot journal show <id>       one journal entry, whole
//	mongobot journal export          the audit trail as JSON lines
//	mongobot journal backup          a checksummed backup of the journal, from one transaction
//	mongobot journal restore <file>  a backup into an empty data folder or etcd prefix
//	mongobot rekey [--yes]           re-encrypt the sealed passwords with a new key
//	mongobot version
//
// Every command answers -h, --help and mongobot help <command> with its usage, on stdout, exit 0,
// before it reads, creates or contacts anything. The journal commands and check only read:
// they never create the data folder, the journal or a key (restore writes a journal, into an
// empty target only). list, show, export and backup work while serve runs: on bbolt, serve
// holds the file's lock and hands out snapshots of it over the unix socket mongobot.sock in
// its data folder (snapshot.go).
//
// Environment: SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_API_URL, BOT_CONFIG (default
// bot.yaml), BOT_DATA_DIR (default ./data), BOT_ENCRYPTION_KEY (optional; otherwise a key file
// is created in the data folder), BOT_NEW_ENCRYPTION_KEY (the new key of a rotation: rekey's
// target, and on etcd held by every replica beside its key while the rotation lasts).
//
// main only wires: flags, config, the store, the connectors, the Slack adapter and signals.
package main
