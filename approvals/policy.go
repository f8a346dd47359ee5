package approvals

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Who is a Slack user and the user groups they belong to.
type Who struct {
	User   string
	Groups []string
}

// Group is a set of people: listed users, and members of listed user groups.
type Group struct {
	Users      []string
	Usergroups []string
}

// Empty reports whether the group lists nobody.
func (g Group) Empty() bool { return len(g.Users) == 0 && len(g.Usergroups) == 0 }

// Has reports whether w is in the group.
func (g Group) Has(w Who) bool {
	if slices.Contains(g.Users, w.User) {
		return true
	}
	for _, ug := range w.Groups {
		if slices.Contains(g.Usergroups, ug) {
			return true
		}
	}
	return false
}

// Risk is how dangerous the bot judges one request to be, for rules that ask more of the
// dangerous ones. The zero value, RiskNormal, is a request not judged anything more.
type Risk string

// Risks. Only RiskHigh may be named by a rule: a rule for RiskNormal alone would apply to
// requests that are not high-risk, which no one has asked for.
const (
	RiskNormal Risk = ""
	RiskHigh   Risk = "high"
)

// RuleRisks are the risks a Rule may name (Validate refuses others).
var RuleRisks = []Risk{RiskHigh}

// Rule overrides the policy for some actions and connectors (both empty: all) and, with Risk
// set, only for requests of that risk. Unset fields (nil, zero) keep what the policy or an
// earlier rule said; rules apply in order.
type Rule struct {
	Actions    []string
	Connectors []string
	// Risk, when set, limits the rule to requests of that risk; empty applies it to all.
	Risk        Risk
	Approvers   *Group
	Quorum      int
	ExpireAfter time.Duration
	// AllowSelfApproval, Require and RequireReason override when not nil.
	AllowSelfApproval *bool
	Require           *bool
	RequireReason     *bool
}

func (r Rule) matches(action, connector string, risk Risk) bool {
	return (len(r.Actions) == 0 || slices.Contains(r.Actions, action)) &&
		(len(r.Connectors) == 0 || slices.Contains(r.Connectors, connector)) &&
		(r.Risk == RiskNormal || r.Risk == risk)
}

// Policy is the approvals and access part of the config.
type Policy struct {
	// Access lists who may request; empty means anyone in the workspace.
	Access            Group
	Approvers         Group
	Quorum            int
	ExpireAfter       time.Duration
	AllowSelfApproval bool
	// RequireReason refuses requests without --reason (a ticket, an incident).
	RequireReason bool
	// Require lists the actions that need approval; nil means DefaultRequire.
	Require []string
	Rules   []Rule
	// JIT is the just-in-time access policy, by connector (jit.go).
	JIT map[string]JIT
	// MaxOpen is how many requests one person may have open at once: waiting for approval,
	// or approved and not finished (0: DefaultMaxOpen). One person cannot fill the approvers'
	// queue or a connector's.
	MaxOpen int
}

// DefaultRequire is every action that changes something. Rollback is not in it: a rollback
// returns to a state an approved action started from; list "rollback" to make it need
// approval too.
var DefaultRequire = []string{"rotate-password", "grant-role", "revoke-role", "create-readonly-user",
	"drop-user", "lock-user", "unlock-user", "schedule", "unschedule", "access"}

// Defaults of the policy.
const (
	DefaultQuorum  = 1
	DefaultExpiry  = time.Hour
	DefaultMaxOpen = 10
)

// OpenBound is how many requests one person may have open at once.
func (p Policy) OpenBound() int {
	if p.MaxOpen > 0 {
		return p.MaxOpen
	}
	return DefaultMaxOpen
}

// Effective is the policy for one action on one connector, rules applied.
type Effective struct {
	Required          bool
	Approvers         Group
	Quorum            int
	ExpireAfter       time.Duration
	AllowSelfApproval bool
	RequireReason     bool
}

// For is the policy for action on connector, for a request not judged high-risk: rules with
// a Risk do not apply. It is ForRisk(action, connector, RiskNormal).
func (p Policy) For(action, connector string) Effective {
	return p.ForRisk(action, connector, RiskNormal)
}

// ForRisk is the policy for action on connector, for a request of the given risk: the rules
// without a Risk apply as in For, and those with one apply only when it is risk.
func (p Policy) ForRisk(action, connector string, risk Risk) Effective {
	req := p.Require
	if req == nil {
		req = DefaultRequire
	}
	e := Effective{Required: slices.Contains(req, action), Approvers: p.Approvers, Quorum: p.Quorum,
		ExpireAfter: p.ExpireAfter, AllowSelfApproval: p.AllowSelfApproval, RequireReason: p.RequireReason}
	for _, r := range p.Rules {
		if !r.matches(action, connector, risk) {
			continue
		}
		if r.Approvers != nil {
			e.Approvers = *r.Approvers
		}
		if r.Quorum > 0 {
			e.Quorum = r.Quorum
		}
		if r.ExpireAfter > 0 {
			e.ExpireAfter = r.ExpireAfter
		}
		if r.AllowSelfApproval != nil {
			e.AllowSelfApproval = *r.AllowSelfApproval
		}
		if r.RequireReason != nil {
			e.RequireReason = *r.RequireReason
		}
		if r.Require != nil {
			e.Required = *r.Require
		}
	}
	if e.Quorum < 1 {
		e.Quorum = DefaultQuorum
	}
	if e.ExpireAfter <= 0 {
		e.ExpireAfter = DefaultExpiry
	}
	return e
}

// ErrNotAllowed is returned by MayRequest for someone the access list leaves out.
var ErrNotAllowed = errors.New("you are not on the list of people who may use this bot; ask its operators")

// MayRequest checks the access list.
func (p Policy) MayRequest(w Who) error {
	if p.Access.Empty() || p.Access.Has(w) {
		return nil
	}
	return ErrNotAllowed
}

// Validate checks a policy for the mistakes that would leave requests stuck (no approvers, a
// quorum the listed approvers cannot reach) and for names that mean nothing. actions are the
// valid action names, connectors the configured connector names. Messages name the field.
func (p Policy) Validate(actions, connectors []string) error {
	var errs []string
	add := func(format string, a ...any) {
		if m := fmt.Sprintf(format, a...); !slices.Contains(errs, m) {
			errs = append(errs, m)
		}
	}
	if p.Quorum < 0 {
		add("approvals.quorum must be at least 1")
	}
	if p.MaxOpen < 0 || p.MaxOpen > 1000 {
		add("approvals.max_open_per_requester must be between 1 and 1000")
	}
	for _, a := range p.Require {
		if !slices.Contains(actions, a) {
			add("approvals.require: %q is not an action (%s)", a, strings.Join(actions, ", "))
		}
	}
	for i, r := range p.Rules {
		for _, a := range r.Actions {
			if !slices.Contains(actions, a) {
				add("approvals.rules[%d].actions: %q is not an action", i, a)
			}
		}
		for _, c := range r.Connectors {
			if !slices.Contains(connectors, c) {
				add("approvals.rules[%d].connectors: %q is not a configured connector", i, c)
			}
		}
		if r.Quorum < 0 {
			add("approvals.rules[%d].quorum must be at least 1", i)
		}
		if r.Risk != RiskNormal && !slices.Contains(RuleRisks, r.Risk) {
			add("approvals.rules[%d].risk: %q is not a risk a rule may name: the risks are %s", i, r.Risk, joinRisks(RuleRisks))
		}
	}
	p.validateJIT(connectors, add)
	// A policy that leaves nobody able to approve is one mistake, however many actions and
	// connectors it strands: say it once, naming them.
	// A high-risk request is checked too, as rules for it may strand it alone; when it is
	// stranded by the same mistake as every request, that mistake is said once.
	var stuck []stranded
	for _, a := range actions {
		for _, c := range connectors {
			if _, ok := p.JIT[c]; a == "access" && !ok {
				continue // access is refused on a connector without a jit policy
			}
			var normal string
			for _, risk := range []Risk{RiskNormal, RiskHigh} {
				e := p.ForRisk(a, c, risk)
				if !e.Required {
					continue
				}
				var why, field string
				switch {
				case e.Approvers.Empty():
					why, field = "approvers lists nobody", p.source(a, c, risk, false)
				case len(e.Approvers.Usergroups) == 0 && len(e.Approvers.Users) < e.Quorum:
					why = fmt.Sprintf("quorum is %d but only %d approver(s) are listed", e.Quorum, len(e.Approvers.Users))
					field = p.source(a, c, risk, true)
				default:
					continue
				}
				if risk == RiskNormal {
					normal = field + why
				} else if normal == field+why {
					continue
				}
				i := slices.IndexFunc(stuck, func(s stranded) bool { return s.field == field && s.why == why && s.risk == risk })
				if i < 0 {
					stuck = append(stuck, stranded{field: field, why: why, risk: risk})
					i = len(stuck) - 1
				}
				stuck[i].add(a, c)
			}
		}
	}
	for _, s := range stuck {
		add("%s: %s, so %s could never be approved", s.field, s.why, s.what())
	}
	if len(errs) > 0 {
		return problems(errs)
	}
	return nil
}

// problems is Validate's error: one sentence per mistake, in one line. Unwrap gives them one
// by one, for a caller that adds to them (the config names their lines).
type problems []string

func (ps problems) Error() string { return strings.Join(ps, "; ") }

func (ps problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = errors.New(p)
	}
	return out
}

// stranded is the actions and connectors that one mistake leaves without approval.
type stranded struct {
	field, why string
	risk       Risk // RiskNormal: every request; else only requests of this risk
	actions    []string
	on         [][]string // on[i] are the connectors of actions[i]
}

func (s *stranded) add(action, connector string) {
	i := slices.Index(s.actions, action)
	if i < 0 {
		s.actions, s.on = append(s.actions, action), append(s.on, nil)
		i = len(s.actions) - 1
	}
	s.on[i] = append(s.on[i], connector)
}

// what names the stranded requests, actions with the same connectors together:
// "drop-user, lock-user on prod, staging and grant-role on prod".
func (s *stranded) what() string {
	var parts []string
	done := make([]bool, len(s.actions))
	for i := range s.actions {
		if done[i] {
			continue
		}
		same := []string{s.actions[i]}
		for j := i + 1; j < len(s.actions); j++ {
			if !done[j] && slices.Equal(s.on[i], s.on[j]) {
				same, done[j] = append(same, s.actions[j]), true
			}
		}
		parts = append(parts, strings.Join(same, ", ")+" on "+strings.Join(s.on[i], ", "))
	}
	if s.risk != RiskNormal {
		return string(s.risk) + "-risk " + strings.Join(parts, " and ")
	}
	return strings.Join(parts, " and ")
}

func joinRisks(rs []Risk) string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r))
	}
	return strings.Join(out, ", ")
}

// source names the config field that decided the approvers (and with quorum, the quorum too)
// of action on connector for a request of the given risk.
func (p Policy) source(action, connector string, risk Risk, quorum bool) string {
	field := "approvals"
	for i, r := range p.Rules {
		if r.matches(action, connector, risk) && (r.Approvers != nil || quorum && r.Quorum > 0) {
			field = fmt.Sprintf("approvals.rules[%d]", i)
		}
	}
	return field
}
