// Package vaulttest runs a real HashiCorp Vault server for tests: `vault server -dev` (v1.21.4,
// built from the module proxy by tools/vault.sh, or the binary in $VAULT_BIN) on a free
// loopback port, with a random root token and nothing written to the user's home.
//
// Its helpers speak Vault's HTTP API with plain net/http, not through
// github.com/hashicorp/vault/api: the code under test uses that library, and a test that
// checked it through the same library could not see the library's mistakes. They act as the
// other parties around a delivery would: the application team reading and writing the secret
// (Read, Write on the default secret/ KV v2 mount), the Vault administrator (Policy, AppRole,
// Token, RevokeLogins), and the faults (Seal, Unseal, Stop, Restart).
//
// Dev mode keeps everything in memory and starts unsealed with one unseal key, which Start
// captures from the server's output so that Seal and Unseal can be used as a fault that
// keeps the data. Restart starts an empty server on the same port, with the same root token.
package vaulttest
