package config

import (
	"fmt"

	"mongobot/commands"
)

// durationProblem is what is wrong with the duration v of a field, or "" when nothing is;
// shown is v as the message may quote it.
func durationProblem(v, shown string) string {
	if _, err := commands.ParseSpan(v); err != nil {
		return fmt.Sprintf("%s is not a duration: write 30m, 4h or 2d (or 90s)", shown)
	}
	return ""
}
