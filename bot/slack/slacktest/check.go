package slacktest

import (
	"net/url"
	"slices"
	"strings"
)

// ManifestScopes are the bot scopes the shipped app manifest asks for: the stand-in's bot
// token has them until SetScopes says otherwise.
var ManifestScopes = []string{"commands", "chat:write", "im:write", "usergroups:read"}

// SetScopes sets the scopes the bot token was granted, which every answer to it names in
// its X-OAuth-Scopes header, as Slack's do.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = slices.Clone(scopes)
}

// Outside makes the bot not a member of channel (conversations.info says is_member false);
// every other channel that is not Missing has the bot in it.
func (s *Server) Outside(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outside[channel] = true
}

// DisableGroup disables a user group set with SetGroup: usergroups.list lists it only when
// asked to include disabled groups, with its date_delete set.
func (s *Server) DisableGroup(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disabled[group] = true
}

// RemoveGroup makes a user group unknown to the workspace, as a mistyped id is.
func (s *Server) RemoveGroup(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, group)
}

// ChannelName is the name the stand-in gives a channel: its id in lower case.
func ChannelName(id string) string { return strings.ToLower(id) }

// conversationsInfo answers as Slack does for a bot token: it needs channels:read (Slack
// asks groups:read for a private channel; the stand-in has only public ones).
func (s *Server) conversationsInfo(v url.Values) map[string]any {
	if !slices.Contains(s.scopes, "channels:read") {
		return map[string]any{"ok": false, "error": "missing_scope", "needed": "channels:read", "provided": strings.Join(s.scopes, ",")}
	}
	ch := v.Get("channel")
	if ch == "" || s.missing[ch] {
		return fail("channel_not_found")
	}
	return map[string]any{"ok": true, "channel": map[string]any{"id": ch, "name": ChannelName(ch), "is_channel": true,
		"is_member": !s.outside[ch], "is_archived": false}}
}

// usergroupsList lists the groups set with SetGroup; it needs usergroups:read.
func (s *Server) usergroupsList(v url.Values) map[string]any {
	if !slices.Contains(s.scopes, "usergroups:read") {
		return map[string]any{"ok": false, "error": "missing_scope", "needed": "usergroups:read", "provided": strings.Join(s.scopes, ",")}
	}
	withDisabled := v.Get("include_disabled") == "true"
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	gs := []map[string]any{}
	for _, id := range ids {
		if s.disabled[id] && !withDisabled {
			continue
		}
		g := map[string]any{"id": id, "team_id": Team, "is_usergroup": true, "name": id, "handle": strings.ToLower(id),
			"date_create": 1764230400, "date_delete": 0, "user_count": len(s.groups[id])}
		if s.disabled[id] {
			g["date_delete"] = 1764230500
		}
		gs = append(gs, g)
	}
	return map[string]any{"ok": true, "usergroups": gs}
}
