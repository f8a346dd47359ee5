#!/usr/bin/env bash
# Makes the etcd role and user the bot's replicas log in as: the role may read and write the
# keys under the bot's prefix and nothing else; the user holds that role only.
#
# Run it as etcd's root user, with etcdctl v3.5 or later, once per bot (again is harmless):
#
#   export ETCDCTL_ENDPOINTS=https://etcd-0:2379,https://etcd-1:2379,https://etcd-2:2379
#   export ETCDCTL_CACERT=ca.pem ETCDCTL_CERT=root.pem ETCDCTL_KEY=root-key.pem   # mTLS
#   export ETCDCTL_USER=root ETCDCTL_PASSWORD=...   # once auth is enabled
#   PREFIX=/mongobot/ ETCD_USER=mongobot bash deploy/etcd/setup.sh
#
# Parameters (environment):
#   PREFIX         the bot's store.etcd.prefix (default /mongobot/); must end in /, or the
#                  role would also cover /mongobot-other/ and the like
#   ETCD_USER      the user, and the role's name (default mongobot)
#   ETCD_PASSWORD  the user's password; when unset, a new user gets a random one, written to
#                  PASSWORD_FILE (default ./mongobot-etcd-password, mode 600) and never
#                  printed, and an existing user keeps the one it has. When set, an existing
#                  user's password is changed to it. No whitespace (etcdctl reads one word).
#   ETCDCTL        the etcdctl binary (default: etcdctl on the PATH)
#
# etcdctl reads its own settings (ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY,
# ETCDCTL_USER, ETCDCTL_PASSWORD) from the environment. Passwords go to etcdctl on its
# standard input, never on a command line that ps would show.
#
# Auth must be enabled on the cluster, or etcd lets anyone read everything and the role
# means nothing. If it is not yet (this script says so at the end), an administrator does,
# once, with a root password kept in the team's vault:
#
#   etcdctl user add root              # asks for the root password
#   etcdctl role add root
#   etcdctl user grant-role root root
#   etcdctl auth enable
#
# From then on, every etcdctl command needs ETCDCTL_USER=root and ETCDCTL_PASSWORD (or a
# client certificate whose common name is root, when the members run with
# --client-cert-auth).
set -euo pipefail

prefix=${PREFIX:-/mongobot/}
user=${ETCD_USER:-mongobot}
password_file=${PASSWORD_FILE:-./mongobot-etcd-password}
etcdctl=${ETCDCTL:-etcdctl}

case $prefix in
/*/) ;;
*) echo "setup.sh: PREFIX=$prefix must begin and end with / (as store.etcd.prefix does)" >&2; exit 2 ;;
esac
if [ -n "${ETCD_PASSWORD:-}" ] && [[ $ETCD_PASSWORD =~ [[:space:]] ]]; then
  echo "setup.sh: ETCD_PASSWORD must not contain whitespace: etcdctl reads the password as one word" >&2
  exit 2
fi

# The role: read and write every key under the prefix (the journal, the election, the
# replicas' names and claims), nothing else. Granting again is a no-op.
if ! "$etcdctl" role get "$user" >/dev/null 2>&1; then
  "$etcdctl" role add "$user"
fi
"$etcdctl" role grant-permission "$user" readwrite "$prefix" --prefix

# The user.
if "$etcdctl" user get "$user" >/dev/null 2>&1; then
  if [ -n "${ETCD_PASSWORD:-}" ]; then
    printf '%s\n' "$ETCD_PASSWORD" | "$etcdctl" user passwd "$user" --interactive=false
  fi
else
  password=${ETCD_PASSWORD:-}
  if [ -z "$password" ]; then
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && printf '%s\n' "$password" >"$password_file")
    echo "setup.sh: the password of etcd user $user is in $password_file: give it to the bot as ETCD_PASSWORD, then delete the file"
  fi
  printf '%s\n' "$password" | "$etcdctl" user add "$user" --interactive=false
fi
"$etcdctl" user grant-role "$user" "$user"

# Granting only adds: a permission or a role given earlier by hand would stay, and the bot's
# user would reach more than the prefix. Say so, and stop, rather than report "only".
perms=$("$etcdctl" role get "$user")
if [ "$(grep -c $'^\t' <<<"$perms")" -ne 2 ] || [ "$(grep -c "(prefix $prefix)" <<<"$perms")" -ne 2 ]; then
  echo "setup.sh: role $user has other permissions than readwrite on $prefix; revoke them (etcdctl role revoke-permission) and run this again:" >&2
  echo "$perms" >&2
  exit 1
fi
roles=$("$etcdctl" user get "$user" | sed -n 's/^Roles: *//p')
if [ "$roles" != "$user" ]; then
  echo "setup.sh: user $user has roles $roles, not only $user; revoke the others (etcdctl user revoke-role) and run this again" >&2
  exit 1
fi

# Read whole, then matched: with pipefail, grep -q ending the pipe early can kill etcdctl
# with SIGPIPE and fail the test of a cluster whose auth is on.
status=$("$etcdctl" auth status 2>/dev/null || true)
if grep -q 'Authentication Status: true' <<<"$status"; then
  echo "setup.sh: etcd user $user may read and write under $prefix only"
else
  echo "setup.sh: WARNING: auth is not enabled on this cluster: anyone may read and write every key; see the top of this script" >&2
fi
