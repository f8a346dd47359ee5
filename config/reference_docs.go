package config

import (
	"fmt"
	"strings"
	"time"

	"mongobot/approvals"
	"mongobot/commands"
)

// keyDoc is what the reference says about one key beyond what its Go type says: what it
// means, its default, its bounds (for a duration, durationBounds gives them) and an example
// value as written in the file. Defaults set by other packages (the connector's, the
// executor's, the delivery targets') are written here as text; reference_test.go checks
// each against the constant it copies.
type keyDoc struct {
	path    string
	meaning string
	def     string
	bounds  string
	example string
	// ints are the bounds of a whole number that Parse checks; choices the values a text
	// key may take. Tests feed values outside them to Parse.
	ints    *intBounds
	choices []string
}

type intBounds struct{ min, max int } // max 0: no upper bound

func spanText(d time.Duration) string { return commands.FormatDuration(d) }

// slackGroup are the two keys of a group of people, under the block at path.
func slackGroup(path, who string) []keyDoc {
	return []keyDoc{
		{path: path + ".users", meaning: "Slack user ids (`U…`, or `W…` in an Enterprise Grid org) " + who + ". A name is refused: the bot compares ids.", def: "empty", example: "[U0ALICE, U0BOB]"},
		{path: path + ".usergroups", meaning: "Slack user group ids (`S…`) whose members are " + who + ". Membership is read from Slack (scope `usergroups:read`); when Slack cannot say, the answer is no.", def: "empty", example: "[S0DBAS]"},
	}
}

// keyDocs is the reference's table, in the order of the page.
var keyDocs = concat(
	[]keyDoc{
		{path: "slash_command", meaning: "The slash command the bot answers, as registered in the Slack app. Change both together.", def: "`/mongo`", bounds: "one word starting with /", example: "/mongo"},
		{path: "reveal_ttl", meaning: "How long a new password waits, sealed, for its owner to press **Reveal password**. After that it is deleted and the password must be rotated again to be known. A password that deliveries still need is kept until they have it, whatever this says.", def: "`1h`", example: "2h"},
		{path: "connector_idle_timeout", meaning: "A connector closes its MongoDB connections (and stops their heartbeats) this long after its last operation, and reconnects at the next. With many connectors, only those in use hold connections.", def: "`" + spanText(DefaultConnectorIdleTimeout) + "`", example: "10m"},

		{path: "connectors", meaning: "The MongoDB deployments the bot manages users on, each with a name people type in commands. At least one is needed. `type: mongodb` (the default) manages users over the wire protocol; `type: atlas` through the Atlas Administration API v2."},
		{path: "connectors[].name", meaning: "The connector's name, typed in commands (`/mongo users prod-mongo`) and named in approval rules and deliveries. Unique.", bounds: "one word, no quotes", example: "prod-mongo"},
		{path: "connectors[].type", meaning: "`mongodb`: a MongoDB server, replica set or sharded cluster (4.4 or newer), reached with `connection_string`. `atlas`: an Atlas project, through the Administration API (`project_id`, `cluster`, and a credential).", def: "`mongodb`", choices: []string{"mongodb", "atlas"}, example: "mongodb"},
		{path: "connectors[].connection_string", meaning: "The MongoDB connection string the bot logs in with (`mongodb://` or `mongodb+srv://`). Required for `type: mongodb`; for `type: atlas` optional, and used only to verify on the cluster that a change is live. Without a user in it, the bot logs in with its client certificate (MONGODB-X509). Its account needs the privileges of the actions you use: `mongobot check` lists them.", example: "${PROD_MONGO_URI}"},
		{path: "connectors[].tls_ca_file", meaning: "A PEM file of the certificate authorities that sign the server's certificate, when they are not the system's.", bounds: "not with tls_ca_pem", example: "/etc/mongo/ca.pem"},
		{path: "connectors[].tls_ca_pem", meaning: "The same as `tls_ca_file`, given as PEM text (from `${VAR}` or a YAML block).", bounds: "not with tls_ca_file", example: "${MONGO_CA_PEM}"},
		{path: "connectors[].tls_certificate_key_file", meaning: "A PEM file holding the bot's client certificate and its private key. With no user in the connection string the bot logs in with it (MONGODB-X509).", bounds: "not with tls_certificate_key_pem", example: "/etc/mongo/client.pem"},
		{path: "connectors[].tls_certificate_key_pem", meaning: "The same as `tls_certificate_key_file`, given as PEM text; it holds a private key, so give it as `${VAR}`.", bounds: "not with tls_certificate_key_file", example: "${MONGO_CLIENT_PEM}"},
		{path: "connectors[].password_length", meaning: "The length of generated passwords, drawn from letters, digits and `-._~` (32 characters is about 195 bits).", def: "`32`", ints: &intBounds{16, 256}, example: "32"},
		{path: "connectors[].verify_login", meaning: "After setting a new password (rotation, creation), log in with it to prove it works before anyone is told. Turn off only for a server where the bot cannot log in as other users (a network rule, say). Read by `type: mongodb` connectors.", def: "`true`", example: "true"},
		{path: "connectors[].concurrency", meaning: "How many approved actions run on this connector at once. A slow connector slows only its own actions.", def: "`4`", ints: &intBounds{1, 64}, example: "4"},
		{path: "connectors[].queue", meaning: "How many more approved actions may wait for a turn. Beyond it an approved request fails at once, saying the connector is busy, with nothing changed.", def: "`100`", ints: &intBounds{1, 10000}, example: "100"},
		{path: "connectors[].project_id", meaning: "`type: atlas`: the Atlas project's id, from the project's settings.", bounds: "24 hexadecimal digits; only with type atlas", example: "5f0c0ffee0ddba11de7ec7ed"},
		{path: "connectors[].cluster", meaning: "`type: atlas`: the cluster the users the bot creates may reach. `cluster` or `clusters` (or both: they add up) is required: users are never scoped to the whole project.", bounds: "only with type atlas", example: "cluster0"},
		{path: "connectors[].clusters", meaning: "`type: atlas`: several clusters, as `cluster`.", bounds: "only with type atlas", example: "[cluster0, analytics]"},
		{path: "connectors[].base_url", meaning: "`type: atlas`: the Administration API's base URL; Atlas for Government has its own.", def: "`https://cloud.mongodb.com`", example: "https://cloud.mongodbgov.com"},
		{path: "connectors[].client_id", meaning: "`type: atlas`: a service account's client id (OAuth 2.0 client credentials), with `client_secret`. The account needs Project Owner or Project Database Access Admin, and this machine's address on its access list.", bounds: "not with public_key", example: "${ATLAS_CLIENT_ID}"},
		{path: "connectors[].client_secret", meaning: "`type: atlas`: the service account's secret.", bounds: "with client_id", example: "${ATLAS_CLIENT_SECRET}"},
		{path: "connectors[].public_key", meaning: "`type: atlas`: an API key's public part (HTTP Digest), with `private_key`; the other way to authenticate, instead of a service account.", bounds: "not with client_id", example: "${ATLAS_PUBLIC_KEY}"},
		{path: "connectors[].private_key", meaning: "`type: atlas`: the API key's private part.", bounds: "with public_key", example: "${ATLAS_PRIVATE_KEY}"},

		{path: "connectors[].jit", meaning: "Just-in-time access on this connector: with this block, people may ask for a user of their own (`/mongo access prod-mongo read@orders --for 2h`), created with exactly the roles asked for and dropped when the time is up. Without it, `access` is refused on the connector. `access` must need approval on the connector (it does by default); `auto_approve` names who needs no vote."},
		{path: "connectors[].jit.roles", meaning: "The roles that may be asked for, as `role@db` patterns where either side may be `*` (`read@*`: read on any database; `*@analytics`: any role on analytics). A role without `@` is in admin.", bounds: "at least one", example: "[read@*, readWrite@reports]"},
		{path: "connectors[].jit.max_for", meaning: "The longest access that may be asked for; `--for` is required and at most this.", def: "`" + spanText(approvals.DefaultJITMaxFor) + "`", example: "8h"},
		{path: "connectors[].jit.user_template", meaning: "The name of the user created: `{handle}` is the requester's Slack user id in lower case (never their display or legacy user name, which its owner can change), `{random}` six random letters and digits.", def: "`" + approvals.DefaultJITTemplate + "`", bounds: "must contain {random}", example: "jit-{handle}-{random}"},
		{path: "connectors[].jit.auto_approve", meaning: "Who gets which roles with no vote: a request is approved at once when one entry covers every role it asks for and names the requester. It is still journaled and posted, and judged again when it runs."},
		{path: "connectors[].jit.auto_approve[].roles", meaning: "The role patterns this entry covers, among `jit.roles`.", example: "[read@*]"},
		{path: "connectors[].jit.auto_approve[].users", meaning: "Slack user ids this entry applies to.", example: "[U0ONCALL]"},
		{path: "connectors[].jit.auto_approve[].usergroups", meaning: "Slack user group ids whose members this entry applies to.", example: "[S0ONCALL]"},

		{path: "approvals", meaning: "Who approves what, where, and how many approvals a request needs. Rules refine it for some actions, connectors or risks."},
		{path: "approvals.channel", meaning: "The channel (its id) where approval cards are posted. Invite the bot to it.", bounds: "a Slack channel id: C… or G…", example: "C0APPROVALS"},
		{path: "approvals.approvers", meaning: "Who may approve requests. A request needing approval whose approvers list nobody, or fewer people than its quorum, is a mistake in the file."},
	},
	slackGroup("approvals.approvers", "who may approve"),
	[]keyDoc{
		{path: "approvals.quorum", meaning: "How many different approvers must approve. 0 or absent: the default.", def: fmt.Sprintf("`%d`", approvals.DefaultQuorum), ints: &intBounds{1, 0}, example: "1"},
		{path: "approvals.expire_after", meaning: "A request not decided by then expires and changes nothing.", def: "`" + spanText(approvals.DefaultExpiry) + "`", example: "1h"},
		{path: "approvals.allow_self_approval", meaning: "Whether a requester who is also an approver may approve their own request.", def: "`false`", example: "false"},
		{path: "approvals.max_open_per_requester", meaning: "How many requests one person may have open at once: waiting for approval, or approved and not finished. Beyond it a new request is refused, saying to cancel one; one person cannot fill the approvers' queue or a connector's.", def: fmt.Sprintf("`%d`", approvals.DefaultMaxOpen), ints: &intBounds{1, 1000}, example: "10"},
		{path: "approvals.require_reason", meaning: "Refuse requests without `--reason` (a ticket, an incident). Rules may override it.", def: "`false`", example: "false"},
		{path: "approvals.require", meaning: "The actions that need approval; the others run at once, still journaled. Add `rollback` to make every rollback need approval besides being judged as the action it performs.", def: "`[" + strings.Join(approvals.DefaultRequire, ", ") + "]`", bounds: "actions among " + strings.Join(Actions, ", "), example: "[" + strings.Join(approvals.DefaultRequire, ", ") + "]"},
		{path: "approvals.rules", meaning: "Overrides for some requests, applied in order: a rule applies to a request whose action and connector it lists (an empty list matches all) and, with `risk: high`, only to requests the bot judges high-risk (a root-like role, any role on admin, local or config, an administrator as the target). Keys a rule leaves out keep what the policy or an earlier rule said."},
		{path: "approvals.rules[].actions", meaning: "The actions the rule applies to; empty: all.", bounds: "actions among " + strings.Join(Actions, ", "), example: "[drop-user]"},
		{path: "approvals.rules[].connectors", meaning: "The connectors (their names) the rule applies to; empty: all.", example: "[prod-mongo]"},
		{path: "approvals.rules[].risk", meaning: "`high`: the rule applies only to requests the bot judges high-risk. Empty: to all.", choices: []string{"high"}, example: "high"},
		{path: "approvals.rules[].approvers", meaning: "Replaces the approvers for the requests the rule applies to."},
	},
	slackGroup("approvals.rules[].approvers", "who may approve the requests the rule applies to"),
	[]keyDoc{
		{path: "approvals.rules[].quorum", meaning: "Replaces the quorum. 0 or absent: unchanged.", ints: &intBounds{1, 0}, example: "2"},
		{path: "approvals.rules[].expire_after", meaning: "Replaces the expiry.", example: "30m"},
		{path: "approvals.rules[].allow_self_approval", meaning: "Replaces `allow_self_approval`.", example: "true"},
		{path: "approvals.rules[].require", meaning: "Whether the requests the rule applies to need approval at all.", example: "true"},
		{path: "approvals.rules[].require_reason", meaning: "Replaces `require_reason`.", example: "true"},

		{path: "access", meaning: "Who may use the bot: its commands, the request form, **Roll back**, **Reveal password**, and owning a schedule (a schedule whose owner lost access is paused). Empty: everyone in the workspace. Approving is judged by the approvers' lists, not by this one."},
	},
	slackGroup("access", "who may use the bot"),
	[]keyDoc{

		{path: "schedules", meaning: "How scheduled rotations (`/mongo schedule rotate-password …`) run."},
		{path: "schedules.channel", meaning: "The channel where every scheduled run reports.", def: "`approvals.channel`", bounds: "a Slack channel id", example: "C0ROTATIONS"},
		{path: "schedules.missed_run_window", meaning: "A run missed while the bot was down runs at start-up if it was due at most this long ago; an older one is skipped and reported.", def: "`1h`", example: "1h"},
		{path: "schedules.retries", meaning: "How many more attempts a failed run gets, `retry_delay` apart. 0: none.", def: "`2`", ints: &intBounds{0, 10}, example: "2"},
		{path: "schedules.retry_delay", meaning: "The wait between a failed run and its retry.", def: "`5m`", example: "5m"},
		{path: "schedules.concurrency_per_connector", meaning: "How many scheduled runs may touch one connector at once.", def: "`1`", ints: &intBounds{1, 0}, example: "1"},

		{path: "deliveries", meaning: "Where a rotated password goes, so that applications read it from there and nobody has to paste it: per user (or alternating pair of users) of a connector, one or more targets. A rotation with deliveries seals the new password before MongoDB is asked, sets it, verifies it, writes it to every target and reads each back; a target that fails is retried with backoff (15 s doubling to 10 min) across restarts, and the sealed password is kept until every target has it."},
		{path: "deliveries[].connector", meaning: "The connector (its name) of the user.", bounds: "a connector of this file", example: "prod-mongo"},
		{path: "deliveries[].user", meaning: "The user whose password is delivered, with `strategy: single`.", bounds: "not with users", example: "reports"},
		{path: "deliveries[].users", meaning: "The two users of `strategy: alternating`, the first the one applications use today. Each rotation changes the one not in use, delivers its name and password, and records it as the one in use, so the other keeps working until the next rotation.", bounds: "two different users; only with strategy alternating", example: "[orders_a, orders_b]"},
		{path: "deliveries[].db", meaning: "The users' authentication database. Targets receive the user name and password only: the application must know this one (its authSource).", def: "`admin`", example: "admin"},
		{path: "deliveries[].strategy", meaning: "`single`: one user, and a window between MongoDB having the new password and the application reading it. `alternating`: two users and no window (see `users`).", def: "`single`", choices: []string{"single", "alternating"}, example: "single"},
		{path: "deliveries[].reveal", meaning: "Who may also see a delivered password: `none` (nobody needs to), or `owner` (the requester, or the schedule's owner, once, with **Reveal password**).", def: "`none`", choices: []string{"none", "owner"}, example: "none"},
		{path: "deliveries[].targets", meaning: "Where the password goes: each target has exactly one of `vault_kv`, `kubernetes_secret`, `exec`. At least one."},

		{path: "deliveries[].targets[].vault_kv", meaning: "A secret in a Vault KV version 2 mount, written with check-and-set, so an edit made at the same moment is detected and kept. The token needs `create`, `read` and `update` on the secret's data path (`create` only until the secret exists). Nothing is read from the bot's own `VAULT_*` environment."},
		{path: "deliveries[].targets[].vault_kv.address", meaning: "Vault's address.", bounds: "a URL, https:// or http://", example: "https://vault.example.com:8200"},
		{path: "deliveries[].targets[].vault_kv.mount", meaning: "The KV version 2 mount.", def: "`secret`", example: "secret"},
		{path: "deliveries[].targets[].vault_kv.path", meaning: "The secret's path under the mount, as the vault CLI shows it.", bounds: "not empty", example: "apps/reports"},
		{path: "deliveries[].targets[].vault_kv.username_field", meaning: "The secret's field for the user name.", def: "`username`", example: "username"},
		{path: "deliveries[].targets[].vault_kv.password_field", meaning: "The secret's field for the password.", def: "`password`", bounds: "not the same as username_field", example: "password"},
		{path: "deliveries[].targets[].vault_kv.tls_ca_file", meaning: "A PEM file of the CAs that sign Vault's certificate. It must be readable when the file is loaded.", example: "/etc/vault/ca.pem"},
		{path: "deliveries[].targets[].vault_kv.namespace", meaning: "A Vault Enterprise namespace (open-source Vault refuses it).", example: "team-a"},
		{path: "deliveries[].targets[].vault_kv.timeout", meaning: "Bounds each call to Vault.", def: "`15s`", example: "15s"},
		{path: "deliveries[].targets[].vault_kv.auth", meaning: "How the bot logs in to Vault: exactly one of `token` (or `token_file`), `approle`, `kubernetes`. A static `token` is never renewed: when it expires, deliveries fail until the config changes; prefer `token_file` (kept fresh by Vault Agent), `approle` or `kubernetes`, whose logins are renewed and whose files are read again."},
		{path: "deliveries[].targets[].vault_kv.auth.token", meaning: "A Vault token.", bounds: "not with token_file", example: "${VAULT_TOKEN}"},
		{path: "deliveries[].targets[].vault_kv.auth.token_file", meaning: "A file holding the token, read before every call (Vault Agent rewrites it in place). It must be readable when the file is loaded.", bounds: "not with token", example: "/etc/vault/token"},
		{path: "deliveries[].targets[].vault_kv.auth.approle", meaning: "An AppRole login: a role id and a secret id, each given directly or as a file read again at every login."},
		{path: "deliveries[].targets[].vault_kv.auth.approle.mount", meaning: "The AppRole auth mount.", def: "`approle`", example: "approle"},
		{path: "deliveries[].targets[].vault_kv.auth.approle.role_id", meaning: "The role id (not a secret on its own).", bounds: "role_id or role_id_file", example: "mongobot"},
		{path: "deliveries[].targets[].vault_kv.auth.approle.role_id_file", meaning: "A file holding the role id. It must be readable when the file is loaded.", bounds: "role_id or role_id_file", example: "/etc/vault/role-id"},
		{path: "deliveries[].targets[].vault_kv.auth.approle.secret_id", meaning: "The secret id.", bounds: "secret_id or secret_id_file", example: "${VAULT_SECRET_ID}"},
		{path: "deliveries[].targets[].vault_kv.auth.approle.secret_id_file", meaning: "A file holding the secret id, read again at every login, so a rotated secret id is used as soon as the old token stops working. It must be readable when the file is loaded.", bounds: "secret_id or secret_id_file", example: "/etc/vault/secret-id"},
		{path: "deliveries[].targets[].vault_kv.auth.kubernetes", meaning: "A Kubernetes service-account login: the pod's own token, checked by Vault with a TokenReview."},
		{path: "deliveries[].targets[].vault_kv.auth.kubernetes.mount", meaning: "The Kubernetes auth mount.", def: "`kubernetes`", example: "kubernetes"},
		{path: "deliveries[].targets[].vault_kv.auth.kubernetes.role", meaning: "The Vault role to log in as.", bounds: "not empty", example: "mongobot"},
		{path: "deliveries[].targets[].vault_kv.auth.kubernetes.jwt_file", meaning: "The service-account token file, read again at every login (the kubelet rotates projected tokens).", def: "`/var/run/secrets/kubernetes.io/serviceaccount/token`", example: "/var/run/secrets/kubernetes.io/serviceaccount/token"},

		{path: "deliveries[].targets[].kubernetes_secret", meaning: "A Kubernetes Secret, updated with its resourceVersion, so an edit made at the same moment is detected and kept. The bot changes only its two keys and the annotation `mongobot/journal-entry`. It needs `get` and `update` on the Secret (limit the Role with `resourceNames`), and `create` only to create a Secret that does not exist yet, which Kubernetes cannot limit by name: create the Secret beforehand."},
		{path: "deliveries[].targets[].kubernetes_secret.namespace", meaning: "The Secret's namespace.", bounds: "not empty; a DNS label", example: "reports"},
		{path: "deliveries[].targets[].kubernetes_secret.name", meaning: "The Secret's name.", bounds: "not empty", example: "reports-mongo"},
		{path: "deliveries[].targets[].kubernetes_secret.username_key", meaning: "The Secret's key for the user name.", def: "`username`", example: "username"},
		{path: "deliveries[].targets[].kubernetes_secret.password_key", meaning: "The Secret's key for the password.", def: "`password`", bounds: "not the same as username_key", example: "password"},
		{path: "deliveries[].targets[].kubernetes_secret.kubeconfig", meaning: "A kubeconfig file, for a cluster the bot does not run in. It must be readable when the file is loaded.", def: "the in-cluster configuration (the pod's service account)", example: "/etc/kube/config"},
		{path: "deliveries[].targets[].kubernetes_secret.context", meaning: "A context of `kubeconfig`.", def: "the kubeconfig's current context", bounds: "only with kubeconfig", example: "reports-cluster"},
		{path: "deliveries[].targets[].kubernetes_secret.timeout", meaning: "Bounds each call to the Kubernetes API.", def: "`15s`", example: "15s"},

		{path: "deliveries[].targets[].exec", meaning: "A program that receives one JSON document on its standard input (`connector`, `user`, `database`, `username`, `password`, `journal_id`) and succeeds by exiting 0. It runs without a shell, with a clean environment (PATH, HOME, LANG, TZ, TMPDIR and `env`, never the bot's own, which holds tokens), never the password in its arguments or environment, and is stopped with its process group at the timeout."},
		{path: "deliveries[].targets[].exec.command", meaning: "The program and its arguments, as a list.", bounds: "the first an absolute path", example: "[/usr/local/bin/reload-reports, --quiet]"},
		{path: "deliveries[].targets[].exec.timeout", meaning: "How long the program may run.", def: "`30s`", example: "30s"},
		{path: "deliveries[].targets[].exec.env", meaning: "More environment variables for the program.", bounds: "names without =, spaces or tabs", example: "{RELOAD_URL: http://reports:8080/reload}"},
		{path: "deliveries[].targets[].exec.dir", meaning: "The program's working directory.", def: "the bot's", example: "/var/lib/reports"},

		{path: "retention", meaning: "How long the journal keeps what it no longer needs."},
		{path: "retention.keep", meaning: "Finished journal entries and requests, and audit trail events, older than this are deleted. Never the records the bot still needs: an action executing, a temporary grant not yet ended, a delivery pending, a lock it holds. Archive first with `mongobot journal export --since`.", def: "`" + spanText(DefaultRetention) + "`", example: "400d"},

		{path: "store", meaning: "Where the journal lives. Without `etcd`: a bbolt file, `journal.db`, in the data folder (`BOT_DATA_DIR`), for one process."},
		{path: "store.etcd", meaning: "An etcd v3 cluster that several replicas share: the journal, and the election of the one replica that runs the timers. Every replica has the same config and the same `BOT_ENCRYPTION_KEY` (while a key rotation lasts, also the same `BOT_NEW_ENCRYPTION_KEY`; see Rotating the encryption key in operations.md)."},
		{path: "store.etcd.endpoints", meaning: "The members' client URLs, with no credentials in them.", bounds: "at least one; http:// or https:// (https:// with tls or a username)", example: "[https://etcd-0:2379, https://etcd-1:2379, https://etcd-2:2379]"},
		{path: "store.etcd.prefix", meaning: "Where the bot's keys live. Every replica of one bot uses the same; two bots never share one.", def: "`" + DefaultEtcdPrefix + "`", bounds: "begins and ends with /", example: "/mongobot/"},
		{path: "store.etcd.username", meaning: "The etcd user, when etcd has auth enabled.", bounds: "with password", example: "mongobot"},
		{path: "store.etcd.password", meaning: "The etcd user's password.", bounds: "with username", example: "${ETCD_PASSWORD}"},
		{path: "store.etcd.tls", meaning: "TLS to etcd: the CA that signed the members' certificates, and a client certificate when the cluster asks for one."},
		{path: "store.etcd.tls.ca_file", meaning: "A PEM file of the CA that signed the members' certificates.", example: "/etc/etcd/ca.pem"},
		{path: "store.etcd.tls.cert_file", meaning: "The client certificate (PEM).", bounds: "with key_file", example: "/etc/etcd/client.pem"},
		{path: "store.etcd.tls.key_file", meaning: "The client certificate's private key (PEM).", bounds: "with cert_file", example: "/etc/etcd/client-key.pem"},
		{path: "store.etcd.replica", meaning: "This replica's name, as the other replicas, `mongobot check` and the metrics see it.", def: "the host name (stable in a StatefulSet)", example: "${HOSTNAME}"},
		{path: "store.etcd.session_ttl", meaning: "How long a dead replica holds the lead and its claims. The leader steps down by itself when it cannot renew for two thirds of it.", def: "`10s`", bounds: "", example: "10s"},
		{path: "store.etcd.max_txn_ops", meaning: "The most operations the bot puts in one etcd transaction. Never above the cluster's `--max-txn-ops`.", def: "`128` (etcd's default)", ints: &intBounds{32, 0}, example: "128"},

		{path: "http", meaning: "The optional HTTP listener for `/healthz`, `/readyz` and `/metrics`."},
		{path: "http.listen", meaning: "The address to listen on; empty: no listener. A bare port (`:9090` or `9090`) listens on 127.0.0.1 only; in a container or a pod, give `0.0.0.0:9090` so the probes and Prometheus reach it.", def: "off", example: "0.0.0.0:9090"},

		{path: "log", meaning: "The bot's logs, on standard error. No log line holds a password, a token or a connection string's credentials."},
		{path: "log.level", meaning: "The least severe level written.", def: "`info`", choices: []string{"debug", "info", "warn", "error"}, example: "info"},
		{path: "log.format", meaning: "`text` for people, `json` for a log pipeline.", def: "`text`", choices: []string{"text", "json"}, example: "json"},
	},
)

func concat(parts ...[]keyDoc) []keyDoc {
	var out []keyDoc
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
