// Package mongotest runs a MongoDB emulator on a loopback port, for tests, the way
// net/http/httptest runs an HTTP server.
//
// It speaks the real wire protocol (the legacy OP_QUERY handshake and OP_MSG), authenticates
// with SCRAM-SHA-256 and SCRAM-SHA-1 through github.com/xdg-go/scram (the library the Go driver
// uses on its side), so the official driver connects to it unchanged. It implements what no
// server available to our tests implements: user and role administration with MongoDB's
// semantics and error codes (shared/reference/mongodb-user-admin.md, and its table of
// behavioural cases), authenticationRestrictions enforced at login and on the next command,
// re-validation of logged-in connections after a user is dropped or changed, session kills,
// connectionStatus with privileges computed from the account's roles, buildInfo with a
// configurable version (hello, isMaster and wire versions follow it), topologies (standalone,
// replica set primary or secondary, mongos) with several members sharing one user store, routers
// that cache users until invalidateUserCache or their interval, x.509 logins (PKI makes the
// certificates), maxTimeMS, restrictions on roles, and fault injection (a delay or a dropped
// connection before or after the command is applied, a given error, a write concern error, in
// a mongod's or a mongos's form).
//
// It keeps its own record of every change it applied to a user (Server.Applied, with who sent
// it and what changed, never a password) and shows its users as they are (Server.Snapshot), so
// a test can check the code under test's account of what it did against what the server did.
//
// What it does not emulate: data (no collections or cursors), killOp and $currentOp, and
// replication lag (members see a change at once). It follows MongoDB's sources and documented
// behaviour, not the connector's convenience: when the two disagree, the emulator is what must
// be fixed to match MongoDB. Differences is the table of where it (or FerretDB) is known to
// differ, kept honest by the connector's differential suite.
package mongotest
