package approvals

import (
	"fmt"
	"strings"
)

// Why a request needs no vote. A request approved without one names the part of the config
// that let it through, so that its card, its result, the journal and the audit trail can say
// "approved by policy" and point at the line an operator would change.

// AutoRule is the part of the policy that approves a request without a vote: Field is its
// path in the config ("approvals.rules[2]", "connectors[prod].jit.auto_approve[0]"), Says what
// it says, in words. Both are made from the config, never from what a requester typed.
type AutoRule struct {
	Field string
	Says  string
}

// String is "connectors[prod].jit.auto_approve[0] (roles read@*)": stable, for the journal.
func (r AutoRule) String() string {
	if r.Says == "" {
		return r.Field
	}
	return r.Field + " (" + r.Says + ")"
}

// JITRule is the first auto-approval rule of connector's JIT policy that gives w every one
// of roles without a vote; false when none does (AutoApproved).
func (p Policy) JITRule(connector string, w Who, roles []string) (AutoRule, bool) {
	j, ok := p.JITFor(connector)
	if !ok {
		return AutoRule{}, false
	}
	i := j.autoRule(w, roles)
	if i < 0 {
		return AutoRule{}, false
	}
	return AutoRule{Field: fmt.Sprintf("connectors[%s].jit.auto_approve[%d]", connector, i),
		Says: "roles " + strings.Join(j.AutoApprove[i].Roles, ", ") + ", for the people it lists"}, true
}

// NoVoteRule names what makes action on connector, at risk, need no approval: the last rule
// that set require, or approvals.require (given or default) that does not list the action.
// It is meaningful only when ForRisk says the request is not Required.
func (p Policy) NoVoteRule(action, connector string, risk Risk) AutoRule {
	for i := len(p.Rules) - 1; i >= 0; i-- {
		if r := p.Rules[i]; r.Require != nil && r.matches(action, connector, risk) {
			return AutoRule{Field: fmt.Sprintf("approvals.rules[%d]", i), Says: "require: false"}
		}
	}
	if p.Require == nil {
		return AutoRule{Field: "approvals.require", Says: "by default, " + action + " needs no approval"}
	}
	return AutoRule{Field: "approvals.require", Says: action + " is not listed"}
}
