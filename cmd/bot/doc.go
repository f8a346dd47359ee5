// Command bot is the MongoDB user-management Slack bot.
//
//	bot [serve]                 connect to Slack over Socket Mode and serve (the default)
//	bot check                   validate the config and check each connector
//	bot journal list [n]        the journal, newest first
//	bot journal show <id>       one journal entry, whole
//	bot journal export          the journal as JSON lines
//	bot rekey                   re-encrypt the sealed passwords with a new key
//	bot --version
//
// Environment: SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_API_URL, BOT_CONFIG (default
// bot.yaml), BOT_DATA_DIR (default ./data), BOT_ENCRYPTION_KEY (optional; otherwise a key file
// is created in the data folder).
//
// main only wires: flags, config, the store, the connectors, the Slack adapter and signals.
package main
