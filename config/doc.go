// Package config reads the bot's YAML configuration file (SPEC "Config file"): connectors,
// approvals policy and access list, with ${VAR} taken from the environment so that secrets
// need not sit in the file.
//
// Load refuses a file with any mistake, with a message that names the field and its line
// (`approvals.quorom (line 7): unknown key; did you mean "quorum"?`), every mistake at once, in
// one line; a bot that starts has a config that makes sense. A message never quotes a value
// that came from ${VAR}: it names the variable instead, as the value may be a secret.
// It is the only importer of the YAML library.
package config
