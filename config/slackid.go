package config

import (
	"fmt"
	"regexp"
	"strings"
)

// idKind is one kind of Slack id the config names. The bot compares ids, never names: a
// channel given by name gets no post, and a user given by name can never approve, with no
// error anywhere. So the shape is checked here. Slack ids are a type letter and capital letters
// and digits; their length is not fixed (Slack has lengthened them before), so it is not checked.
type idKind struct {
	noun    string
	shape   *regexp.Regexp
	example string
	find    string
}

var (
	channelID = idKind{"channel", regexp.MustCompile(`^[CG][A-Z0-9]+$`), "C0123456789 (or G… for an older private channel)",
		"open the channel's details in Slack, the id is at the bottom"}
	userID = idKind{"user", regexp.MustCompile(`^[UW][A-Z0-9]+$`), "U0123456789 (or W… in an Enterprise Grid org)",
		`open the person's profile in Slack, choose ⋮ (More), then "Copy member ID"`}
	usergroupID = idKind{"user group", regexp.MustCompile(`^S[A-Z0-9]+$`), "S0123456789",
		`Slack's usergroups.list API method gives each group's id, next to its handle`}
)

// anyID is the shape of every Slack id, whatever its kind.
var anyID = regexp.MustCompile(`^[A-Z][A-Z0-9]+$`)

// slackID is what is wrong with the id v at path, or "" when its shape is right.
func (s *source) slackID(path, v string, k idKind) string {
	if k.shape.MatchString(v) {
		return ""
	}
	why := ""
	switch {
	case v == "":
		return fmt.Sprintf("%s is empty: give a Slack %s id, like %s; %s", path, k.noun, k.example, k.find)
	case strings.HasPrefix(v, "#") || strings.HasPrefix(v, "@"):
		why = ", not a name"
	case k.shape.MatchString(strings.ToUpper(v)) && strings.ContainsAny(v, "0123456789"):
		// An id typed in lower case ("c0123456789"); a word ("general") is a name.
		why = ", in capital letters"
	case anyID.MatchString(v):
		// Another kind of id (a user's where a channel goes): the sentence says which kind.
	default:
		why = ", not a name"
	}
	return fmt.Sprintf("%s: %s is not a Slack %s id: the bot needs the id, like %s%s; %s", path, s.show(path, v), k.noun, k.example, why, k.find)
}

// slackIDs checks the ids of a group of people under path ("access").
func (s *source) slackIDs(path string, g Group, add func(string)) {
	for i, u := range g.Users {
		if m := s.slackID(fmt.Sprintf("%s.users[%d]", path, i), u, userID); m != "" {
			add(m)
		}
	}
	for i, u := range g.Usergroups {
		if m := s.slackID(fmt.Sprintf("%s.usergroups[%d]", path, i), u, usergroupID); m != "" {
			add(m)
		}
	}
}
