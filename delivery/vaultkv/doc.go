// Package vaultkv delivers a rotated MongoDB password into a HashiCorp Vault KV version 2
// secret, where applications (Vault Agent, the CSI provider, External Secrets) read it.
//
// It is the only package that imports github.com/hashicorp/vault/api and its auth modules:
// the KV v2 helpers read and write the secret, approle and kubernetes log in, Sys asks for
// capabilities and health. It hand-writes only what the library lacks: the check that the
// mount is KV version 2 (the route the CLI uses for it), the reading of credential files
// (so that it knows what to scrub), and the translation of errors into the bot's words.
//
// Invariants:
//
//   - A delivery changes only the username and password fields; every other field of the
//     secret is kept. It writes with check-and-set on the version it read, so a write that
//     lands in between is never overwritten: the delivery fails with delivery.ErrConflict
//     and the bot's next attempt starts from the new version.
//   - A delivery is verified by reading back the version it wrote, and the current one.
//   - No password, token, secret ID or service-account token appears in an error, a log
//     line or a String: errors keep the library's text only after secret.Scrub of every
//     secret the Target holds, and never the library's error value itself.
//   - Nothing comes from VAULT_* environment variables: the configuration alone says where
//     to deliver and as whom.
//   - Nothing is written before the mount is known to be KV version 2, and, with a
//     namespace, Vault to be Enterprise: open-source Vault ignores a namespace on writes.
//   - Logging in is lazy, and repeated when Vault refuses a token a login made (expired or
//     revoked look the same as denied: a 403), reading credential files afresh each time.
//
// Errors: delivery.ErrRejected for what trying again will not fix by itself (a 403 after a
// fresh login, a missing or non-KV-v2 mount, a refused login, a bad configuration, a
// certificate that does not verify); plain errors for what may pass (sealed, unreachable,
// timeouts, 5xx), each a sentence that names the Vault address and what was being done.
//
// The tests run against a real Vault (vaulttest); the Kubernetes login also against a real
// kube-apiserver (kubesecret/kubetest), which answers Vault's TokenReview.
package vaultkv
