// Package command is the delivery target that hands a credential to a program the operator
// configures. The bot runs the program directly (no shell) with one JSON document and a
// newline on its standard input, and counts the delivery done when it exits with status 0
// within the timeout:
//
//	{"connector":"orders","user":"app","database":"admin","username":"app","password":"…","journal_id":42}
//
// user is the bot's name for the MongoDB user, username what an application puts in its
// configuration; they are equal today, and both are kept so neither side changes if they part.
//
// Invariants, and why:
//
//   - The password travels only on standard input: any local user can read a process's
//     arguments (ps, /proc/PID/cmdline), and environments are inherited by everything the
//     program starts.
//   - The program gets a clean environment, not the bot's, which holds MongoDB connection
//     strings and Slack tokens: only PATH, HOME, LANG, TZ and TMPDIR, plus [Config.Env].
//   - At the timeout or cancellation the whole process group is killed (on Unix; elsewhere the
//     program alone), so background children do not outlive it.
//   - Output reaches an error only as its last few lines, password scrubbed and control
//     characters removed: scripts echo their input, and errors are shown in Slack.
//
// A command cannot be read back, so [Target.Verify] only says the program exited with status 0.
package command
