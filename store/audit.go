package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mongobot/approvals"
	"mongobot/kv"
)

// The audit trail: every decision the bot made or refused, one event each, in the order
// they happened. Events are appended to an append-only bucket, keyed by the bucket's
// sequence (the event's cursor), in the transaction that makes the change they record: a
// change and its event are committed together or not at all, so none is lost or doubled,
// and a transaction run again (etcd) draws its sequence again with everything else.
//
// Request and entry events are derived in put from the record before and after the write,
// so no caller can change a request or an entry without its event. Refused clicks and
// reveals change no record: the bot records them (RecordRefusal, Revealed).
//
// History from before this version kept the trail (a journal an older version wrote) is not
// rewritten: the export reconstructs it from the records, as cursor 0 lines before the
// others (see ExportAudit). The legacy mark in meta says where the records the trail covers
// begin.

// AuditSchema is the version of the export's line format, carried by every line as
// "schema". It changes only when a field changes meaning or disappears; fields and kinds
// are added without changing it.
const AuditSchema = 1

// Event kinds.
const (
	EventRequest      = "request"       // a request was made
	EventVote         = "vote"          // an approver voted
	EventVoteLapsed   = "vote_lapsed"   // a vote stopped counting: its voter is no longer an approver
	EventApproved     = "approved"      // approved: by quorum, or by a policy rule (policy set)
	EventDenied       = "denied"        // denied by an approver
	EventExpired      = "expired"       // nobody decided in time
	EventCancelled    = "cancelled"     // withdrawn by its requester
	EventRequestState = "request_state" // the request's later states: executing, done, failed, rolled_back
	EventEntry        = "entry"         // a journal entry, as it was when its state changed
	EventRefused      = "refused"       // a click the bot refused
	EventReveal       = "reveal"        // a password was revealed to its owner (never the value)
	EventAdopted      = "adopted"       // a journal older than record tags was adopted (Store.Adopt)
)

var (
	bucketAudit = []byte("audit")
	// keyAuditLegacy (meta) marks where the trail begins: the request and entry sequences
	// when the audit bucket was made, and the time then. Records up to them are legacy.
	keyAuditLegacy = []byte("audit-legacy")
)

// Event is one line of the audit trail as stored (without schema and cursor). Kinds use the
// fields they need; an entry event is instead an AuditEntry (see auditEntryEvent).
type Event struct {
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"`
	By        string    `json:"by,omitempty"`
	RequestID uint64    `json:"request_id,omitempty"`
	EntryID   uint64    `json:"entry_id,omitempty"`
	// A request event's what.
	Action    string            `json:"action,omitempty"`
	Connector string            `json:"connector,omitempty"`
	Args      map[string]string `json:"args,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
	// A vote's decision; Lapsed marks a vote that no longer counts.
	Approve *bool `json:"approve,omitempty"`
	Lapsed  bool  `json:"lapsed,omitempty"`
	// VoteAt is, for vote_lapsed, when the vote that stopped counting was cast.
	VoteAt time.Time `json:"vote_at,omitzero"`
	// State is the request's state after the event; Note the bot's words on it.
	State string `json:"state,omitempty"`
	Note  string `json:"note,omitempty"`
	// Approvers are, for approved, the votes that made the quorum.
	Approvers []string `json:"approvers,omitempty"`
	// Policy is, for approved without a vote, the rule that approved it.
	Policy string `json:"policy,omitempty"`
	// Refusal is, for refused, a stable code; Why the sentence the clicker was told.
	Refusal string `json:"refusal,omitempty"`
	Why     string `json:"why,omitempty"`
	// Button is, for refused, the button pressed (one of the bot's, or "unknown").
	Button string `json:"button,omitempty"`
	// User is, for reveal, whose password it was ("connector/user@db").
	User string `json:"user,omitempty"`
	// Legacy marks a line reconstructed from the records of a journal older than the trail.
	Legacy bool `json:"legacy,omitempty"`
}

// AuditEntry is a journal entry as the audit trail shows it: the entry (without its button
// token) plus what an audit reader needs that it only points to. Its fields are those
// `journal export` has always printed.
type AuditEntry struct {
	Entry
	// Reason is the requester's --reason, from the request, or from the entry's arguments
	// for a rollback run at once.
	Reason string `json:"reason,omitempty"`
	// Votes are the approvers' decisions with their times, lapsed ones marked.
	Votes []Vote `json:"votes,omitempty"`
	// RolledBackByUser and RolledBackAt say who started the rollback RolledBackBy, and when.
	RolledBackByUser string    `json:"rolled_back_by_user,omitempty"`
	RolledBackAt     time.Time `json:"rolled_back_at,omitzero"`
}

// auditEntry joins e with its request and its rollback as tx sees them. A request or entry
// that is gone (purged) leaves its fields empty.
func auditEntry(tx kv.Tx, e Entry) AuditEntry {
	e.Token = "" // the Roll back button's proof of origin stays in the journal
	a := AuditEntry{Entry: e, Reason: e.Args["reason"]}
	if e.RequestID != 0 {
		if r, err := decode[Request](tx, bucketRequests, e.RequestID); err == nil {
			if r.Reason != "" {
				a.Reason = r.Reason
			}
			a.Votes = r.Votes
		}
	}
	if e.RolledBackBy != 0 {
		if rb, err := decode[Entry](tx, bucketEntries, e.RolledBackBy); err == nil {
			a.RolledBackByUser, a.RolledBackAt = rb.Requester, rb.CreatedAt
		}
	}
	return a
}

// auditEntryEvent is the stored form of an entry event: kind and at, then a's fields.
func auditEntryEvent(a AuditEntry, at time.Time, legacy bool) ([]byte, error) {
	head, err := json.Marshal(struct {
		Kind   string    `json:"kind"`
		At     time.Time `json:"at"`
		Legacy bool      `json:"legacy,omitempty"`
	}{EventEntry, at, legacy})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return splice(head, body), nil
}

// splice joins two JSON objects into one: a's fields, then b's.
func splice(a, b []byte) []byte {
	if len(b) <= 2 {
		return a
	}
	out := append(bytes.TrimSuffix(slices.Clip(a), []byte("}")), ',')
	return append(out, b[1:]...)
}

// appendEvent adds one event to the trail in tx. On a journal whose trail is absent (opened
// by a version without it), nothing is added: migrate makes the bucket at the next open.
func appendEvent(tx kv.Tx, raw []byte) error {
	b := tx.Bucket(bucketAudit)
	if b == nil {
		return nil
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(u64(seq), raw)
}

func appendEvents(tx kv.Tx, evs []Event) error {
	for _, ev := range evs {
		raw, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := appendEvent(tx, raw); err != nil {
			return err
		}
	}
	return nil
}

// auditPut appends the events of writing rec (a *Request or *Entry) over old (its stored
// form, nil for a new record). Other records have no events.
func auditPut(tx kv.Tx, old []byte, rec any) error {
	switch r := rec.(type) {
	case *Request:
		var was Request
		if old != nil {
			if err := json.Unmarshal(old, &was); err != nil {
				return fmt.Errorf("store: decode request %d: %w", r.ID, err)
			}
		}
		return appendEvents(tx, requestEvents(old == nil, &was, r))
	case *Entry:
		var was Entry
		if old != nil {
			if err := json.Unmarshal(old, &was); err != nil {
				return fmt.Errorf("store: decode entry %d: %w", r.ID, err)
			}
		}
		if len(r.History) <= len(was.History) {
			return nil // not a state change: notes, deliveries, tries
		}
		raw, err := auditEntryEvent(auditEntry(tx, *r), r.History[len(r.History)-1].At, false)
		if err != nil {
			return err
		}
		return appendEvent(tx, raw)
	}
	return nil
}

// requestEvents are the events of request r replacing was (created when isNew): in the
// order they happened within the write, lapses before the vote that found them, the vote
// before the state it brought.
func requestEvents(isNew bool, was, r *Request) []Event {
	var out []Event
	steps := r.History
	if isNew {
		out = append(out, Event{Kind: EventRequest, At: r.CreatedAt, By: r.Requester, RequestID: r.ID, Action: r.Action,
			Connector: r.Connector, Args: r.Args, Reason: r.Reason, ExpiresAt: r.ExpiresAt})
		if len(steps) > 0 {
			steps = steps[1:] // the first step is the creation itself, unless it was approved
			if first := r.History[0]; first.State == approvals.Approved {
				out = append(out, Event{Kind: EventApproved, At: first.At, By: first.By, RequestID: r.ID, State: first.State, Policy: r.AutoApproved})
			}
		}
	} else {
		steps = steps[min(len(was.History), len(steps)):]
	}
	for i, v := range r.Votes {
		if i < len(was.Votes) && v.Lapsed && !was.Votes[i].Lapsed {
			out = append(out, Event{Kind: EventVoteLapsed, At: lastAt(r, v.At), By: v.User, RequestID: r.ID, VoteAt: v.At, Approve: &v.Approve})
		}
	}
	for _, v := range r.Votes[min(len(was.Votes), len(r.Votes)):] {
		out = append(out, Event{Kind: EventVote, At: v.At, By: v.User, RequestID: r.ID, Approve: &v.Approve, Lapsed: v.Lapsed})
	}
	for _, st := range steps {
		out = append(out, stepEvent(r, st))
	}
	return out
}

// lastAt is when the newest vote of r was cast, the moment a lapse was found; else def.
func lastAt(r *Request, def time.Time) time.Time {
	if n := len(r.Votes); n > 0 && r.Votes[n-1].At.After(def) {
		return r.Votes[n-1].At
	}
	return def
}

// stepEvent is the event of request r entering step st.
func stepEvent(r *Request, st Step) Event {
	ev := Event{At: st.At, By: st.By, RequestID: r.ID, State: st.State, Note: st.Note}
	switch st.State {
	case approvals.Approved:
		ev.Kind = EventApproved
		for _, v := range r.Votes {
			if v.Approve && !v.Lapsed && !v.At.After(st.At) {
				ev.Approvers = append(ev.Approvers, v.User)
			}
		}
		if len(ev.Approvers) == 0 {
			ev.Policy = r.AutoApproved
		}
	case approvals.Denied:
		ev.Kind = EventDenied
	case approvals.Expired:
		ev.Kind = EventExpired
	case approvals.Cancelled:
		ev.Kind = EventCancelled
	default:
		ev.Kind = EventRequestState
	}
	return ev
}

// Refusal codes: why the bot refused a click.
const (
	RefusedForged       = "forged_or_stale" // the value names no record, or not with its token
	RefusedWrongMessage = "wrong_message"   // not pressed on the record's own card
	RefusedNoCard       = "no_card"         // the request's card was never recorded
	RefusedNotApprover  = "not_approver"
	RefusedSelfApproval = "self_approval"
	RefusedDecided      = "already_decided" // the request is no longer pending
	RefusedExpired      = "expired"
	RefusedAlreadyVoted = "already_voted"
	RefusedNotOwner     = "not_owner"     // a Reveal pressed by someone else than the owner
	RefusedNotAllowed   = "not_allowed"   // the clicker may not use the bot
	RefusedUnverified   = "cannot_verify" // the clicker's standing could not be read (user groups)
	RefusedUnknown      = "unknown_button"
	RefusedOther        = "other"
)

// Refusal is a click the bot refused, as RecordRefusal keeps it. Every text field comes,
// in part, from whoever clicked: it is cut short and its control and direction characters
// are written as escapes before it is stored.
type Refusal struct {
	By        string // the clicker's user id
	Button    string // the button's action id
	RequestID uint64
	EntryID   uint64
	Code      string // a Refused* code
	Why       string // the sentence the clicker was told
}

// RecordRefusal appends a refused click to the audit trail, now.
func (s *Store) RecordRefusal(r Refusal) error {
	if s.readOnly {
		return ErrReadOnly
	}
	ev := Event{Kind: EventRefused, At: s.now(), By: clean(r.By, 64), Button: clean(r.Button, 40), RequestID: r.RequestID,
		EntryID: r.EntryID, Refusal: clean(r.Code, 40), Why: clean(r.Why, 400)}
	if ev.Refusal == "" {
		ev.Refusal = RefusedOther
	}
	return s.update(func(tx kv.Tx) error { return appendEvents(tx, []Event{ev}) })
}

// Revealed records that secret id was revealed to owner: it deletes the secret (if it is
// still there and owner's) and appends the reveal to the audit trail, in one transaction.
// Call it once the password was shown. The event names whose password it was and the entry
// that made it, never the password or the secret's id.
func (s *Store) Revealed(id, owner string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	now := s.now()
	return s.update(func(tx kv.Tx) error {
		ev := Event{Kind: EventReveal, At: now, By: clean(owner, 64)}
		b := tx.Bucket(bucketSecrets)
		if rec, err := getSealed(b, id); err == nil && rec.Owner == owner {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		err := tx.Bucket(bucketOffers).ForEach(func(label, _ []byte) error {
			list, err := readOffers(tx.Bucket(bucketOffers), string(label))
			if err != nil {
				return nil
			}
			for _, o := range list {
				if o.ID == id {
					ev.User, ev.EntryID = string(label), o.Entry
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return appendEvents(tx, []Event{ev})
	})
}

// clean is s made safe to keep and show: at most n runes, control characters, invalid
// UTF-8 and bidirectional overrides written as \x.. or \u.... escapes.
// escapeBidi writes, in a JSON line, the characters that reorder or hide text on a terminal
// (bidirectional controls: U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) as \u
// escapes. encoding/json keeps them raw, and an auditor reading the trail with cat would see a
// requester's reason reordered ("Trojan Source"). They can only stand inside JSON strings,
// where the escape means the same character, so a JSON reader sees no difference.
func escapeBidi(line []byte) []byte {
	if !bytes.ContainsFunc(line, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }) {
		return line
	}
	out := make([]byte, 0, len(line)+16)
	for _, r := range string(line) {
		if unicode.Is(unicode.Bidi_Control, r) {
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func clean(s string, n int) string {
	var b strings.Builder
	count := 0
	for i, r := range s {
		if count == n {
			b.WriteString("…")
			break
		}
		count++
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			if r < 0x100 {
				fmt.Fprintf(&b, "\\x%02x", r)
			} else {
				fmt.Fprintf(&b, "\\u%04x", r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// markLegacy records, as the audit bucket is made in tx, where the trail begins.
func markLegacy(tx kv.Tx, now time.Time) error {
	v := binary.BigEndian.AppendUint64(u64(tx.Bucket(bucketRequests).Sequence()), tx.Bucket(bucketEntries).Sequence())
	v = binary.BigEndian.AppendUint64(v, uint64(now.UnixNano()))
	return tx.Bucket(bucketMeta).Put(keyAuditLegacy, v)
}

// legacyMark is where the trail of tx's journal begins: records up to requests and entries
// are older than it, and their history before since is reconstructed. A journal without the
// trail is legacy throughout.
func legacyMark(tx kv.Tx) (requests, entries uint64, since time.Time) {
	if tx.Bucket(bucketAudit) == nil {
		return 1<<64 - 1, 1<<64 - 1, time.Unix(1<<62, 0)
	}
	v := tx.Bucket(bucketMeta).Get(keyAuditLegacy)
	if len(v) != 24 {
		return 0, 0, time.Time{}
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(v[16:])))
}

// ExportOptions choose what ExportAudit writes.
type ExportOptions struct {
	// After, with ByCursor, writes only the events whose cursor is greater: what is new
	// since a reader's last line. Lines reconstructed from before the trail (cursor 0) are
	// then left out, however small After is.
	After    uint64
	ByCursor bool
	// Since, when not zero, writes only the events at or after it.
	Since time.Time
}

// ExportAudit writes the audit trail to w as JSON lines, oldest first: first, on a journal
// older than the trail, its history reconstructed from the records (cursor 0), then every
// event with its cursor. Each line begins with "schema" (AuditSchema) and "cursor". It returns
// the trail's last cursor as of this read (o.After when it holds nothing newer), whether or
// not Since wrote that event: a reader that resumes after it misses nothing and repeats
// nothing.
func (s *Store) ExportAudit(w io.Writer, o ExportOptions) (last uint64, err error) {
	last = o.After
	err = s.db.View(func(tx kv.Tx) error {
		last = o.After // a read run again starts afresh
		line := func(cursor uint64, raw []byte) error {
			var head struct {
				At time.Time `json:"at"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("store: audit event %d does not decode: %w", cursor, err)
			}
			if !o.Since.IsZero() && head.At.Before(o.Since) {
				return nil
			}
			out := splice([]byte(fmt.Sprintf(`{"schema":%d,"cursor":%d}`, AuditSchema, cursor)), raw)
			_, err := w.Write(append(escapeBidi(out), '\n'))
			return err
		}
		if !o.ByCursor {
			if err := exportLegacy(tx, line); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		if o.After == math.MaxUint64 {
			return nil // nothing can come after it (and After+1 would wrap to everything)
		}
		c := b.Cursor()
		k, v := c.Seek(u64(o.After + 1))
		for ; k != nil; k, v = c.Next() {
			last = binary.BigEndian.Uint64(k)
			if err := line(last, v); err != nil {
				return err
			}
		}
		return nil
	})
	return last, err
}

// exportLegacy writes, as cursor 0 lines, the history of the records older than the trail:
// each request's creation, votes and decisions before the trail began, and each entry as it
// is now (the line journal export printed before the trail), entries in id order with the
// request events merged in by time.
func exportLegacy(tx kv.Tx, line func(uint64, []byte) error) error {
	maxReq, maxEntry, since := legacyMark(tx)
	if maxReq == 0 && maxEntry == 0 {
		return nil
	}
	var evs []Event
	err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		if binary.BigEndian.Uint64(k) > maxReq {
			return nil
		}
		var r Request
		if json.Unmarshal(v, &r) != nil {
			return nil // Check reports it; the trail goes on
		}
		var mine []Event
		for _, ev := range requestEvents(true, &Request{}, &r) {
			if ev.At.Before(since) {
				ev.Legacy = true
				mine = append(mine, ev)
			}
		}
		slices.SortStableFunc(mine, func(a, b Event) int { return a.At.Compare(b.At) })
		evs = append(evs, mine...)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return a.At.Compare(b.At) })
	next := 0
	flush := func(before time.Time, all bool) error {
		for ; next < len(evs) && (all || evs[next].At.Before(before)); next++ {
			raw, err := json.Marshal(evs[next])
			if err != nil {
				return err
			}
			if err := line(0, raw); err != nil {
				return err
			}
		}
		return nil
	}
	err = tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
		if binary.BigEndian.Uint64(k) > maxEntry {
			return nil
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("store: entry %d does not decode", binary.BigEndian.Uint64(k))
		}
		if err := flush(e.CreatedAt, false); err != nil {
			return err
		}
		raw, err := auditEntryEvent(auditEntry(tx, e), e.CreatedAt, true)
		if err != nil {
			return err
		}
		return line(0, raw)
	})
	if err != nil {
		return err
	}
	return flush(time.Time{}, true)
}

// purgeEvents deletes up to batch events older than cutoff, oldest first, stopping at the
// first one at or after it: the trail is kept as long as the records it speaks of.
func purgeEvents(tx kv.Tx, cutoff time.Time, batch int) (int, error) {
	b := tx.Bucket(bucketAudit)
	if b == nil {
		return 0, nil
	}
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(doomed) < batch; k, v = c.Next() {
		var head struct {
			At time.Time `json:"at"`
		}
		if json.Unmarshal(v, &head) == nil && !head.At.Before(cutoff) {
			break
		}
		doomed = append(doomed, append([]byte(nil), k...))
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// errNoTrail is returned by AuditCursor on a journal without a trail.
var errNoTrail = errors.New("store: this journal has no audit trail yet")

// AuditCursor is the cursor of the newest event, 0 when there is none.
func (s *Store) AuditCursor() (uint64, error) {
	var n uint64
	err := s.db.View(func(tx kv.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return errNoTrail
		}
		n = b.Sequence()
		return nil
	})
	if errors.Is(err, errNoTrail) {
		return 0, nil
	}
	return n, err
}
