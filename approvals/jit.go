package approvals

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// JIT is the just-in-time access policy of one connector: which roles a person may ask to
// have for themselves, for how long, and which of those requests need no vote. A connector
// without one refuses access requests.
type JIT struct {
	// Roles are the roles that may be asked for, as role@db patterns where either side may
	// be * (read@*: read on any database; *@analytics: any role on analytics). A role
	// without @ is in admin.
	Roles []string
	// MaxFor is the longest access (default DefaultJITMaxFor).
	MaxFor time.Duration
	// AutoApprove lists who gets which roles without a vote: a request is auto-approved when
	// one rule covers every role it asks for and has the requester in it. It is still
	// journaled and posted.
	AutoApprove []JITAuto
	// UserTemplate names the user created: {handle} is the requester's chat id, lower case
	// (never a name its owner can change), {random} six random letters and digits (default
	// DefaultJITTemplate).
	UserTemplate string
}

// JITAuto is one auto-approval rule: these roles, for these people.
type JITAuto struct {
	Roles []string
	Who   Group
}

// Defaults of a JIT policy.
const (
	DefaultJITMaxFor   = 8 * time.Hour
	DefaultJITTemplate = "jit-{handle}-{random}"
)

// JITFor is the JIT policy of connector, defaults applied; false when it has none.
func (p Policy) JITFor(connector string) (JIT, bool) {
	j, ok := p.JIT[connector]
	if !ok {
		return JIT{}, false
	}
	if j.MaxFor <= 0 {
		j.MaxFor = DefaultJITMaxFor
	}
	if j.UserTemplate == "" {
		j.UserTemplate = DefaultJITTemplate
	}
	return j, true
}

// Check says why roles (each role@db) for d may not be asked for under j, or nil.
func (j JIT) Check(roles []string, d time.Duration) error {
	if d > j.MaxFor {
		return fmt.Errorf("access on this connector lasts at most %s, not %s", span(j.MaxFor), span(d))
	}
	var refused []string
	for _, r := range roles {
		if !matchAny(j.Roles, r) {
			refused = append(refused, r)
		}
	}
	if len(refused) > 0 {
		allowed := "none"
		if len(j.Roles) > 0 {
			allowed = strings.Join(j.Roles, ", ")
		}
		what := "role " + refused[0] + " is"
		if len(refused) > 1 {
			what = "roles " + strings.Join(refused, ", ") + " are"
		}
		return fmt.Errorf("the %s not offered for just-in-time access on this connector (offered: %s)", what, allowed)
	}
	return nil
}

// AutoApproved reports whether a request by w for roles needs no vote under j.
func (j JIT) AutoApproved(w Who, roles []string) bool { return j.autoRule(w, roles) >= 0 }

// autoRule is the index of the first rule of j.AutoApprove that gives w every one of roles,
// or -1.
func (j JIT) autoRule(w Who, roles []string) int {
	for i, a := range j.AutoApprove {
		if !a.Who.Has(w) {
			continue
		}
		all := true
		for _, r := range roles {
			all = all && matchAny(a.Roles, r)
		}
		if all && len(roles) > 0 {
			return i
		}
	}
	return -1
}

// matchAny reports whether role (role@db) matches one of patterns.
func matchAny(patterns []string, role string) bool {
	name, db := splitRole(role)
	for _, p := range patterns {
		pn, pd := splitRole(p)
		if glob(pn, name) && glob(pd, db) {
			return true
		}
	}
	return false
}

// splitRole cuts role@db at its last @ (admin when there is none), as connector.ParseRole
// does: a role name may hold an @, a database name may not.
func splitRole(r string) (name, db string) {
	i := strings.LastIndexByte(r, '@')
	if i < 0 {
		return r, "admin"
	}
	return r[:i], r[i+1:]
}

// glob matches a name against a pattern where * stands for any run of characters; a name
// with pattern characters of its own never matches one that has none.
func glob(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if !strings.Contains(pattern, "*") {
		return pattern == name
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok && !strings.ContainsAny(name, "/")
}

// validateJIT checks the JIT policies for what would make them useless or dangerous.
func (p Policy) validateJIT(connectors []string, add func(string, ...any)) {
	for name, j := range p.JIT {
		field := "connectors[" + name + "].jit"
		if !slices.Contains(connectors, name) {
			add("%s: %q is not a configured connector", field, name)
		}
		if len(j.Roles) == 0 {
			add("%s.roles lists no role, so nobody could ask for access", field)
		}
		for _, r := range j.Roles {
			if strings.Count(r, "@") > 1 || strings.HasPrefix(r, "@") || strings.HasSuffix(r, "@") {
				add("%s.roles: %q is not role@db", field, r)
			}
		}
		if j.MaxFor < 0 {
			add("%s.max_for must be positive", field)
		}
		// Without approval every person allowed to use the bot could give themselves any
		// role of jit.roles: auto_approve is the way to say who needs no vote, for what.
		if !p.ForRisk("access", name, RiskNormal).Required {
			add("%s: access needs no approval on %s (approvals.require or a rule), so anyone allowed could give themselves any role of jit.roles without a vote; require it, and list in jit.auto_approve who may have what without one", field, name)
		}
		if j.UserTemplate != "" && !strings.Contains(j.UserTemplate, "{random}") {
			add("%s.user_template must contain {random}: two accesses of one person would otherwise need the same user", field)
		}
		for i, a := range j.AutoApprove {
			if a.Who.Empty() {
				add("%s.auto_approve[%d] names nobody (users or usergroups)", field, i)
			}
			for _, r := range a.Roles {
				if !matchAny(j.Roles, r) && !strings.Contains(r, "*") {
					add("%s.auto_approve[%d].roles: %q is not among the roles that may be asked for", field, i, r)
				}
			}
		}
	}
}

func span(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}
