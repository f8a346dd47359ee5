package bot

import "strings"

// Text a person typed (names, reasons, cron specs) and text a server returned (role names,
// error messages) is put into messages that platforms read as markup: on Slack, `<!channel>`
// pings everyone and `<https://evil|the runbook>` shows a disguised link. Every such piece
// goes through esc, or code inside a code span, where it is built; the console adapter undoes
// the escaping when it prints (see Message.Plain).

// mrkdwnEscaper escapes Slack's three control characters, as Slack's own docs ask.
var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// esc makes s plain text in a message: no mention, link or channel reference can come of it.
func esc(s string) string { return mrkdwnEscaper.Replace(s) }

// code makes s safe inside a `code span`: escaped, and with its backticks (which no markup
// can escape inside a span) turned into a look-alike, so s cannot end the span early.
func code(s string) string { return strings.ReplaceAll(esc(s), "`", "ˋ") }

// unescape is esc undone, for adapters that print plain text.
var unescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
