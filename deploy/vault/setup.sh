#!/usr/bin/env bash
# Sets Vault up for the bot: loads the policy in mongobot.hcl (for the given mount and path
# prefix), and the roles the bot logs in with: an AppRole role, and a Kubernetes auth role
# bound to the bot's service account. Idempotent: run it again after changing a parameter.
#
# Run it as a Vault administrator with the vault CLI:
#
#   export VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=...   # an admin's token
#   K8S_HOST=https://kubernetes.example:6443 K8S_CA_FILE=ca.crt \
#     K8S_REVIEWER_JWT_FILE=reviewer.jwt bash deploy/vault/setup.sh
#
# Parameters (environment), with their defaults:
#   MOUNT=secret            the KV version 2 mount the deliveries write to (must exist)
#   PREFIX=mongobot         the path prefix under it: the bot may write MOUNT/PREFIX/* only
#   POLICY=mongobot         the policy's name, and the roles'
#   TOKEN_TTL=1h            the life of a login's token (the bot logs in again at 3/4 of it)
#   TOKEN_MAX_TTL=4h
#   VAULT=vault             the vault CLI binary
# AppRole (skipped with APPROLE=off):
#   APPROLE_MOUNT=approle
#   SECRET_ID_BOUND_CIDRS   optional: the addresses a secret ID may log in from (a,b)
#   ROLE_ID_FILE=./mongobot-role-id, SECRET_ID_FILE=./mongobot-secret-id: where the role ID
#                           and a new secret ID are written (mode 600), the latter only when
#                           the file does not exist, so a second run mints no second one.
#                           Give them to the bot as approle.role_id_file / secret_id_file.
# Kubernetes (skipped unless K8S_HOST is set):
#   K8S_MOUNT=kubernetes
#   K8S_HOST                the API server's URL as Vault reaches it
#   K8S_CA_FILE             the PEM CA of the API server's certificate
#   K8S_REVIEWER_JWT_FILE   a token of a service account bound to system:auth-delegator,
#                           which Vault sends TokenReviews with (leave unset when Vault runs
#                           in the cluster: it uses its own pod's token then)
#   K8S_NAMESPACE=mongobot, K8S_SERVICE_ACCOUNT=mongobot: the bot's pod
#   K8S_AUDIENCE            the audience the bot's token must carry (recommended: vault, with
#                           a projected service-account token of that audience)
#
# Secrets reach the vault CLI in files (@file), never on its command line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mount=${MOUNT:-secret} prefix=${PREFIX:-mongobot} policy=${POLICY:-mongobot}
mount=${mount%/} prefix=${prefix%/} prefix=${prefix#/}
vault=${VAULT:-vault}
ttl=${TOKEN_TTL:-1h} max_ttl=${TOKEN_MAX_TTL:-4h}

# Both go into the policy's text: letters, digits, . _ - and / only (no glob, no quote, no
# sed or shell syntax), and no .. segment.
for v in "$mount" "$prefix"; do
  if [ -z "$v" ] || ! [[ $v =~ ^[A-Za-z0-9._/-]+$ ]] || [[ /$v/ == */../* ]]; then
    echo "setup.sh: MOUNT=$mount and PREFIX=$prefix must be plain paths: letters, digits, . _ - and /, no .." >&2
    exit 2
  fi
done

# The mount must be KV version 2: the policy's paths are its API's (data/).
mountinfo=$("$vault" read -format=json "sys/mounts/$mount" 2>/dev/null) || {
  echo "setup.sh: Vault has no mount $mount/ (or this token may not read sys/mounts): enable it with: $vault secrets enable -path=$mount kv-v2" >&2
  exit 1
}
if ! grep -q '"type": "kv"' <<<"$mountinfo" || ! grep -q '"version": "2"' <<<"$mountinfo"; then
  echo "setup.sh: the mount $mount/ is not KV version 2" >&2
  exit 1
fi

# The policy, for this mount and prefix.
sed "s|\"secret/data/mongobot/\*\"|\"$mount/data/$prefix/*\"|" "$here/mongobot.hcl" | "$vault" policy write "$policy" -

# (Not `vault … | grep -q`: grep leaving early would fail the pipeline under pipefail.)
enabled() {
  local list
  list=$("$vault" auth list -format=json)
  grep -q "\"$1/\": {" <<<"$list"
}
role_opts=(token_policies="$policy" token_no_default_policy=true token_ttl="$ttl" token_max_ttl="$max_ttl")

if [ "${APPROLE:-on}" != off ]; then
  am=${APPROLE_MOUNT:-approle}
  enabled "$am" || "$vault" auth enable -path="$am" approle
  cidrs=()
  [ -z "${SECRET_ID_BOUND_CIDRS:-}" ] || cidrs=(secret_id_bound_cidrs="$SECRET_ID_BOUND_CIDRS" token_bound_cidrs="$SECRET_ID_BOUND_CIDRS")
  "$vault" write "auth/$am/role/$policy" "${role_opts[@]}" "${cidrs[@]}"
  role_id_file=${ROLE_ID_FILE:-./mongobot-role-id} secret_id_file=${SECRET_ID_FILE:-./mongobot-secret-id}
  (umask 077 && "$vault" read -field=role_id "auth/$am/role/$policy/role-id" >"$role_id_file")
  if [ ! -s "$secret_id_file" ]; then
    (umask 077 && "$vault" write -f -field=secret_id "auth/$am/role/$policy/secret-id" >"$secret_id_file")
    echo "setup.sh: a new secret ID is in $secret_id_file, the role ID in $role_id_file: give both to the bot, then delete them here"
  fi
fi

if [ -n "${K8S_HOST:-}" ]; then
  km=${K8S_MOUNT:-kubernetes}
  enabled "$km" || "$vault" auth enable -path="$km" kubernetes
  conf=(kubernetes_host="$K8S_HOST")
  [ -z "${K8S_CA_FILE:-}" ] || conf+=(kubernetes_ca_cert=@"$K8S_CA_FILE")
  [ -z "${K8S_REVIEWER_JWT_FILE:-}" ] || conf+=(token_reviewer_jwt=@"$K8S_REVIEWER_JWT_FILE")
  "$vault" write "auth/$km/config" "${conf[@]}"
  kr=(bound_service_account_names="${K8S_SERVICE_ACCOUNT:-mongobot}" bound_service_account_namespaces="${K8S_NAMESPACE:-mongobot}")
  [ -z "${K8S_AUDIENCE:-}" ] || kr+=(audience="$K8S_AUDIENCE")
  "$vault" write "auth/$km/role/$policy" "${role_opts[@]}" "${kr[@]}"
fi
echo "setup.sh: policy $policy lets the bot create, read and update $mount/$prefix/* only"
