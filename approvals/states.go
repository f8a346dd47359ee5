package approvals

// Request states.
const (
	Pending    = "pending"
	Approved   = "approved"
	Executing  = "executing"
	Done       = "done"
	Failed     = "failed"
	Denied     = "denied"
	Expired    = "expired"
	Cancelled  = "cancelled"
	RolledBack = "rolled_back"
)

var moves = map[string][]string{
	Pending:   {Approved, Denied, Expired, Cancelled},
	Approved:  {Executing},
	Executing: {Done, Failed},
	Done:      {RolledBack},
}

// CanMove reports whether a request may go from one state to the other.
func CanMove(from, to string) bool {
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Sources are the states from which a request may move to state: what a compare-and-set
// transition to it expects.
func Sources(state string) []string {
	var out []string
	for _, from := range []string{Pending, Approved, Executing, Done} {
		if CanMove(from, state) {
			out = append(out, from)
		}
	}
	return out
}

// Describe is a state in words, for cards and messages.
func Describe(state string) string {
	switch state {
	case Pending:
		return "waiting for approval"
	case Approved:
		return "approved"
	case Executing:
		return "running"
	case Done:
		return "done"
	case Failed:
		return "failed"
	case Denied:
		return "denied"
	case Expired:
		return "expired"
	case Cancelled:
		return "cancelled"
	case RolledBack:
		return "rolled back"
	}
	return state
}
