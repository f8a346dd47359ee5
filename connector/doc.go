// Package connector is the bot's only way to MongoDB: one [Mongo] per configured cluster.
//
// Every action follows the same shape: validate the inputs before anything is sent, read the
// user's state, apply the change with writeConcern {w: "majority"} inside the command, read the
// state again, and return a [Change]: before, after, and the undo plan (or why there is none).
// [Mongo.Undo] first checks that the user is still in the state the action left, and refuses
// with the differences otherwise.
//
// Errors are *[Error] values carrying a kind (errors.Is against [ErrUserNotFound], ...), the
// server's code, and a plain sentence for the person who asked. MongoDB errors are mapped by
// code, never by message text. No error text, log line or Change ever holds a password or a
// connection-string credential: passwords travel as [secret.String].
//
// Deployments are MongoDB 4.4 or later (the driver's floor). On a sharded cluster every router
// is told to read users again after a change (invalidateUserCache), and session kills go to
// every data-bearing member or router, each reported per host. A writeConcernError means
// applied and not confirmed; --logout-all checks that the account can re-create the user before
// it drops it. REFERENCE.md lists each server behaviour the connector relies on, with the
// MongoDB source it was read from and the test that holds it; mongotest.Differences lists where
// the emulator and FerretDB differ from MongoDB, enforced by the differential suite.
//
// The bot logs in with the connection string's credentials, or with a client certificate
// (MONGODB-X509) when the string names no user.
//
// The MongoDB driver is imported only by this package (and its emulator, mongotest).
package connector
