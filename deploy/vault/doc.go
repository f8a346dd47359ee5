// Package vault holds no code: it is the home of mongobot.hcl, the bot's Vault policy, and
// setup.sh, which loads it and makes the roles the bot logs in with; and of the test that
// runs that script, word for word, with the real vault CLI against a real Vault, logs in as
// the bot (AppRole, and Kubernetes against a real kube-apiserver), and proves the bot may
// write its own secrets and nothing else.
package vault
