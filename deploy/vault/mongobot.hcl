# The bot's Vault policy: what its vault_kv deliveries need, on its own secrets only.
#
# setup.sh loads it as policy "mongobot", with the mount and the path prefix it is given
# (defaults: mount secret, prefix mongobot); it rewrites "secret/data/mongobot/" below.
# The bot's deliveries then name paths under that prefix, e.g.
#   vault_kv: {mount: secret, path: mongobot/orders, ...}
#
# Tokens carry this policy alone (token_no_default_policy): nothing of Vault's default
# policy (cubbyhole, response wrapping, token self-management) is needed.

# A delivery reads the secret (its current version, to write the next with check-and-set;
# and the version written, to verify it), and writes a new version. create makes the
# secret at the first delivery; update writes the next versions. No delete, no destroy, no
# metadata: the bot never removes a version, so a stolen token cannot delete or destroy one,
# and nothing here lists what other secrets exist. It can still push old versions out by
# writing new ones (a KV v2 mount keeps max_versions, 10 by default): raise max_versions on
# the mount, and keep an audit device, for a longer record. The trailing "/" keeps
# secret/data/mongobot-other/ out.
path "secret/data/mongobot/*" {
  capabilities = ["create", "read", "update"]
}

# `mongobot check` asks Vault what the token may do on each secret, to say which capability
# is missing before a delivery fails. (It also asks sys/internal/ui/mounts/ whether the
# mount is KV version 2; Vault answers that for any token with access under the mount.)
path "sys/capabilities-self" {
  capabilities = ["update"]
}
