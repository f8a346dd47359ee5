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
// The MongoDB driver is imported only by this package (and its emulator, mongotest).
package connector
