// Package config reads the bot's YAML configuration file (SPEC "Config file"): connectors,
// approvals policy and access list, with ${VAR} taken from the environment so that secrets
// need not sit in the file.
//
// Load refuses a file with any mistake, with a message that names the field
// ("connectors[1].connection_string: ..."); a bot that starts has a config that makes sense.
// It is the only importer of the YAML library.
package config
