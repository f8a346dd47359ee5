package commands

import (
	"fmt"
	"strings"
)

// HelpText is the list of verbs (topic "") or the usage and details of one verb, for the
// slash command slash (like "/mongo").
func HelpText(slash, topic string) string {
	if slash == "" {
		slash = "/mongo"
	}
	if v, ok := lookup(topic); ok {
		var b strings.Builder
		fmt.Fprintf(&b, "Usage: `%s %s", slash, v.name)
		if v.usage != "" {
			b.WriteString(" " + v.usage)
		}
		if v.mutating {
			b.WriteString(` [--reason "<text>"]`)
		}
		b.WriteString("`\n" + v.summary + ".")
		if v.details != "" {
			b.WriteString("\n" + v.details)
		}
		if v.mutating {
			b.WriteString("\nIt goes to the approvers first when the policy says so.")
		} else {
			b.WriteString("\nThe answer is private; add `--public` to post it in the channel.")
		}
		return b.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Manage MongoDB users, with approval and rollback. Usage: `%s <verb> …`\n", slash)
	for _, v := range verbs {
		line := v.name
		if v.usage != "" {
			line += " " + v.usage
		}
		fmt.Fprintf(&b, "• `%s` — %s\n", line, v.summary)
	}
	b.WriteString("Every changing verb takes `--reason \"<text>\"`. ")
	fmt.Fprintf(&b, "`%s help <verb>` says more.", slash)
	return b.String()
}
