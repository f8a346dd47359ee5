package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mongobot/approvals"
	"mongobot/kv"
)

// raw writes straight into the journal's buckets, as someone who can write the file or the
// etcd prefix would: no tag, no index, no audit event.
func raw(t *testing.T, s *Store, fn func(tx kv.Tx) error) {
	t.Helper()
	if err := s.db.Update(fn); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// Every way of writing a request behind the bot's back is refused when the bot reads it for
// work, reported to OnTamper, left out of the lists it works from, and listed by Verify: a
// forged record, one altered, one copied under another id, one moved into another bucket,
// and one whose tag claims a version the audit trail has not reached.
func TestTamperedRecordsAreRefused(t *testing.T) {
	c := newClock()
	var heard []TamperError
	st, err := openOpts(t.TempDir(), Options{Now: c.Now, OnTamper: func(e TamperError) { heard = append(heard, e) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // not checked: the indexes do not match a journal written behind their back
	mk := func(state string) Request {
		r, err := st.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV",
			Args: map[string]string{"user": "app", "role": "read@app"}}, state, "U0DEV")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	honest := mk(approvals.Pending)
	done := mk(approvals.Pending)
	if _, err := st.TransitionRequest(done.ID, []string{approvals.Pending}, Step{State: approvals.Denied, By: "U0ALICE"}, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Verify(); err != nil || len(v.Suspects) != 0 || v.Checked != 2 {
		t.Fatalf("verify of an honest journal: %+v %v", v, err)
	}

	// Forged: a new approved request, root for the attacker, one vote by an approver.
	forged := Request{ID: 90, Action: "grant-role", Connector: "prod", Requester: "U0EVE", State: approvals.Approved,
		Args:  map[string]string{"user": "eve", "role": "root@admin"},
		Votes: []Vote{{User: "U0ALICE", Approve: true, At: c.Now()}}}
	// Altered: the honest pending request, approved and pointed at root.
	var altered Request
	// Replayed: the denied request's bytes, tag and all, under a new id; and moved: the same
	// bytes under the entries bucket.
	raw(t, st, func(tx kv.Tx) error {
		b, _ := json.Marshal(forged)
		if err := tx.Bucket(bucketRequests).Put(u64(forged.ID), b); err != nil {
			return err
		}
		if err := json.Unmarshal(tx.Bucket(bucketRequests).Get(u64(honest.ID)), &altered); err != nil {
			return err
		}
		altered.State, altered.Args["role"] = approvals.Approved, "root@admin"
		b, _ = json.Marshal(altered)
		// The honest record's tag, kept: the bytes it covers changed.
		_, tg, _ := splitTag(tx.Bucket(bucketRequests).Get(u64(honest.ID)))
		if err := tx.Bucket(bucketRequests).Put(u64(honest.ID), withTag(b, tg)); err != nil {
			return err
		}
		v := slices.Clone(tx.Bucket(bucketRequests).Get(u64(done.ID)))
		if err := tx.Bucket(bucketRequests).Put(u64(91), v); err != nil {
			return err
		}
		return tx.Bucket(bucketEntries).Put(u64(done.ID), v)
	})
	for _, id := range []uint64{forged.ID, honest.ID, 91} {
		_, err := st.Request(id)
		var te *TamperError
		if !errors.As(err, &te) || !errors.Is(err, ErrTampered) || te.Key == "" {
			t.Errorf("request %d read for work: %v, want a TamperError", id, err)
			continue
		}
		if !strings.Contains(err.Error(), "mongobot journal verify") {
			t.Errorf("the refusal does not say what to run: %v", err)
		}
		// Nothing moves it: not a vote, not a transition.
		if _, err := st.TransitionRequest(id, []string{approvals.Approved, approvals.Pending}, Step{State: approvals.Executing}, nil); !errors.Is(err, ErrTampered) {
			t.Errorf("request %d moved on: %v", id, err)
		}
	}
	if _, err := st.Entry(done.ID); !errors.Is(err, ErrTampered) {
		t.Errorf("a request's bytes and tag moved into the entries: %v, want ErrTampered", err)
	}
	if _, err := st.Request(done.ID); err != nil {
		t.Errorf("the untouched request: %v", err)
	}
	// The lists the bot works from leave them out.
	for _, states := range [][]string{{approvals.Approved}, {approvals.Pending}, nil} {
		rs, _, err := st.Requests(0, 100, states...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.ID != done.ID {
				t.Errorf("requests %v list #%d (%s, %s)", states, r.ID, r.State, r.Args["role"])
			}
		}
	}
	if len(heard) == 0 {
		t.Error("OnTamper heard nothing")
	}
	v, err := st.Verify()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range v.Suspects {
		got = append(got, s.Kind+" "+s.Key)
	}
	want := []string{"request 1", "request 90", "request 91", "entry 2"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("verify lists %v, want %v (%+v)", got, want, v.Suspects)
	}

	// A tag claiming a version past the trail (a journal whose trail was cut back).
	raw(t, st, func(tx kv.Tx) error {
		r, _, _ := splitTag(tx.Bucket(bucketRequests).Get(u64(done.ID)))
		tg, err := makeTag(bucketRequests, u64(done.ID), r, tx.Bucket(bucketAudit).Sequence()+5, st.keys.id, st.keys.macs[st.keys.id])
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRequests).Put(u64(done.ID), withTag(r, tg))
	})
	if _, err := st.Request(done.ID); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "cut back") {
		t.Errorf("a record from past the trail: %v", err)
	}
	// Adopt never launders: this journal has tags, so untagged records are refused.
	if _, err := st.Adopt("U0OPS"); !errors.Is(err, ErrTampered) {
		t.Errorf("adopt over forged records: %v, want ErrTampered", err)
	}
	if _, err := st.Request(forged.ID); !errors.Is(err, ErrTampered) {
		t.Errorf("the forged request after a refused adoption: %v", err)
	}
}

// A key rotation remakes the tags with the new key, so the records are still the bot's with
// only the new key; it never vouches for a record whose tag failed under the old one.
func TestRekeyRetags(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	oldKey, newKey := bytes.Repeat([]byte{0xc3}, 32), bytes.Repeat([]byte{0xd4}, 32)
	st, err := openOpts(dir, Options{Now: c.Now, Key: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for range 30 { // more than a shared rotation's batch
		r, err := st.CreateRequest(Request{Action: "drop-user", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "old"}}, approvals.Pending, "U0DEV")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	raw(t, st, func(tx kv.Tx) error {
		var r Request
		v := tx.Bucket(bucketRequests).Get(u64(ids[3]))
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		r.Args["user"] = "admin"
		b, _ := json.Marshal(r)
		_, tg, _ := splitTag(v)
		return tx.Bucket(bucketRequests).Put(u64(ids[3]), withTag(b, tg))
	})
	if err := st.Rekey(newKey); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = openOpts(dir, Options{Now: c.Now, Key: newKey})
	st = checkOnCleanup(t, st, err)
	v, err := st.Verify()
	if err != nil || v.Checked != 30 || len(v.Suspects) != 1 || v.Suspects[0].Key != "4" {
		t.Fatalf("verify with the new key only: %+v %v, want the altered request 4 alone", v, err)
	}
	if _, err := st.Request(ids[0]); err != nil {
		t.Errorf("a record after the rotation: %v", err)
	}
}

// The indexes are not authenticated: an index key written outside the bot that names a
// record which does not give it (a done entry put among the temporary ones, to have it
// undone; among those executing, to have it reconciled) is reported and not followed.
func TestForgedIndexKeysAreNotFollowed(t *testing.T) {
	c := newClock()
	var heard []TamperError
	st, err := openOpts(t.TempDir(), Options{Now: c.Now, OnTamper: func(e TamperError) { heard = append(heard, e) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := st.BeginEntry(Entry{Action: "revoke-role", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "app", "role": "root@admin"}}, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TransitionEntry(e.ID, []string{EntryExecuting}, Step{State: EntryDone, By: "bot"}, nil); err != nil {
		t.Fatal(err)
	}
	raw(t, st, func(tx kv.Tx) error {
		if err := tx.Bucket(bucketTemporary).Put(append(timeKey(c.Now()), u64(e.ID)...), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketExecuting).Put(u64(e.ID), nil)
	})
	st.indexed = true // the bot's own open trusts its indexes; a foreign write is what is tested
	if temp, err := st.Temporary(); err != nil || len(temp) != 0 {
		t.Errorf("temporary entries after a forged index key: %+v %v, want none", temp, err)
	}
	if ex, err := st.Executing(); err != nil || len(ex) != 0 {
		t.Errorf("entries executing after a forged index key: %+v %v, want none", ex, err)
	}
	if len(heard) < 2 {
		t.Errorf("OnTamper heard %d reports, want the two forged keys: %+v", len(heard), heard)
	}
}

// A mark asking for adoption, set on a journal whose records carry tags, is refused: Adopt
// never vouches for an untagged record slipped into an authenticated journal.
func TestAdoptRefusesAMarkSetOutsideTheBot(t *testing.T) {
	c := newClock()
	st, err := openOpts(t.TempDir(), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateRequest(Request{Action: "drop-user", Connector: "prod", Requester: "U0DEV", Args: map[string]string{"user": "old"}}, approvals.Pending, "U0DEV"); err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(Request{ID: 50, Action: "grant-role", Connector: "prod", Requester: "U0EVE", State: approvals.Approved,
		Args: map[string]string{"user": "eve", "role": "root@admin"}})
	raw(t, st, func(tx kv.Tx) error {
		if err := tx.Bucket(bucketRequests).Put(u64(50), forged); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyUnadopted, []byte("now"))
	})
	if _, err := st.Adopt("U0OPS"); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "set outside the bot") {
		t.Fatalf("adopt after a forged mark: %v, want a refusal naming the mark", err)
	}
	raw(t, st, func(tx kv.Tx) error { return tx.Bucket(bucketMeta).Delete(keyUnadopted) })
	if _, err := st.Request(50); !errors.Is(err, ErrTampered) {
		t.Errorf("the forged request after the refused adoption: %v", err)
	}
}

// A record put back as an older copy of itself, tag and all, is refused: a request back to
// approved after it ran, a version record deleted, a record deleted (listed by Verify), and
// the whole versions bucket deleted (every record refused at the next open).
func TestOlderCopiesAreRefused(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	var heard []TamperError
	st, err := openOpts(dir, Options{Now: c.Now, OnTamper: func(e TamperError) { heard = append(heard, e) }})
	if err != nil {
		t.Fatal(err)
	}
	mk := func() Request {
		r, err := st.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV",
			Args: map[string]string{"user": "app", "role": "root@admin"}}, approvals.Approved, "U0DEV")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ran, other, gone := mk(), mk(), mk()
	var approved []byte // ran's record while it was approved
	raw(t, st, func(tx kv.Tx) error {
		approved = slices.Clone(tx.Bucket(bucketRequests).Get(u64(ran.ID)))
		return nil
	})
	for _, step := range [][2]string{{approvals.Approved, approvals.Executing}, {approvals.Executing, approvals.Done}} {
		if _, err := st.TransitionRequest(ran.ID, []string{step[0]}, Step{State: step[1], By: "bot"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	raw(t, st, func(tx kv.Tx) error {
		if err := tx.Bucket(bucketRequests).Put(u64(ran.ID), approved); err != nil {
			return err
		}
		if err := tx.Bucket(bucketVersions).Delete(versionKey(bucketRequests, u64(other.ID))); err != nil {
			return err
		}
		return tx.Bucket(bucketRequests).Delete(u64(gone.ID))
	})
	for id, why := range map[uint64]string{ran.ID: "put back to an older copy", other.ID: "holds no version of it", gone.ID: "deleted by something other than the bot"} {
		_, err := st.Request(id)
		if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), why) {
			t.Errorf("request %d read for work: %v, want a TamperError saying %q", id, err, why)
		}
		if _, err := st.TransitionRequest(id, []string{approvals.Approved}, Step{State: approvals.Executing, By: "bot"}, nil); !errors.Is(err, ErrTampered) {
			t.Errorf("request %d moved on: %v", id, err)
		}
	}
	if rs, _, err := st.Requests(0, 10, approvals.Approved); err != nil || len(rs) != 0 {
		t.Errorf("approved requests listed for work: %+v %v, want none", rs, err)
	}
	v, err := st.Verify()
	if err != nil {
		t.Fatal(err)
	}
	whys := map[string]string{}
	for _, s := range v.Suspects {
		whys[s.Key] = s.Why
	}
	for id, want := range map[uint64]string{ran.ID: "older copy", other.ID: "no version", gone.ID: "deleted by something other than the bot"} {
		if got := whys[fmt.Sprint(id)]; !strings.Contains(got, want) {
			t.Errorf("verify on request %d: %q, want %q (all: %+v)", id, got, want, v.Suspects)
		}
	}
	if len(heard) == 0 {
		t.Error("OnTamper heard nothing")
	}

	// The versions bucket deleted outside the bot: made again, empty, at the next open, so
	// nothing is vouched for again and every record fails.
	raw(t, st, func(tx kv.Tx) error { return tx.DeleteBucket(bucketVersions) })
	st.Close()
	heard = nil
	st, err = openOpts(dir, Options{Now: c.Now, OnTamper: func(e TamperError) { heard = append(heard, e) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !slices.ContainsFunc(heard, func(e TamperError) bool { return e.Key == "versions" }) {
		t.Errorf("the open did not report the lost versions: %+v", heard)
	}
	if v, err := st.Verify(); err != nil || len(v.Suspects) != 2 {
		t.Errorf("verify after the versions were deleted: %+v %v, want both remaining records", v, err)
	}
}

// A record planted where the bot's next record goes is replaced as if absent: the bot's
// request gets its own creation event, not a transition from what the planted one said.
func TestPlantedRecordIsReplacedAsAbsent(t *testing.T) {
	c := newClock()
	st := open(t, t.TempDir(), c)
	raw(t, st, func(tx kv.Tx) error {
		b, _ := json.Marshal(Request{ID: 1, Action: "grant-role", Connector: "prod", Requester: "U0EVE", State: approvals.Approved,
			Args: map[string]string{"user": "eve", "role": "root@admin"}, History: []Step{{State: approvals.Approved, By: "U0ALICE"}}})
		return tx.Bucket(bucketRequests).Put(u64(1), b)
	})
	r, err := st.CreateRequest(Request{Action: "lock-user", Connector: "prod", Requester: "U0DEV",
		Args: map[string]string{"user": "app"}}, approvals.Pending, "U0DEV")
	if err != nil || r.ID != 1 {
		t.Fatalf("create over the planted record: %+v %v", r, err)
	}
	lines, _ := trail(t, st, ExportOptions{})
	if got := kinds(lines); !slices.Contains(got, "request request_id=1 U0DEV") {
		t.Errorf("the trail: %q, want the request's creation by U0DEV", got)
	}
	if got, err := st.Request(1); err != nil || got.Requester != "U0DEV" {
		t.Errorf("request 1 now: %+v %v", got, err)
	}
}

// A pair of alternating users deleted behind the bot's back does not read as new: the next
// rotation would otherwise pick the user applications use now.
func TestDeletedPairIsRefused(t *testing.T) {
	st := open(t, t.TempDir(), newClock())
	if _, err := st.SwapPair("prod/app", "app_a", PairUser{User: "app_b", Entry: 1}); err != nil {
		t.Fatal(err)
	}
	raw(t, st, func(tx kv.Tx) error { return tx.Bucket(bucketPairs).Delete([]byte("prod/app")) })
	if _, ok, err := st.Pair("prod/app"); !errors.Is(err, ErrTampered) {
		t.Errorf("the deleted pair reads as ok=%v, %v; want ErrTampered", ok, err)
	}
	if _, err := st.SwapPair("prod/app", "app_a", PairUser{User: "app_b", Entry: 2}); !errors.Is(err, ErrTampered) {
		t.Errorf("a swap of the deleted pair: %v, want ErrTampered", err)
	}
	if _, ok, err := st.Pair("prod/other"); ok || err != nil {
		t.Errorf("a pair never made: ok=%v %v", ok, err)
	}
}

// Only a password the bot offered is revealed to a person: not its own copies (recovery,
// delivery, a pair's), whatever list or button points at them; and a copy's use cannot be
// changed without the key.
func TestOnlyOfferedPasswordsAreRevealed(t *testing.T) {
	c := newClock()
	st := open(t, t.TempDir(), c)
	own, err := st.PutSecret("U0DEV", []byte("kept-for-a-delivery"), RecoveryTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevealSecret(own, "U0DEV"); !errors.Is(err, ErrNotOffered) {
		t.Errorf("the bot's own copy revealed: %v, want ErrNotOffered", err)
	}
	if got, err := st.PeekSecret(own, "U0DEV"); err != nil || string(got) != "kept-for-a-delivery" {
		t.Errorf("the bot reading its own copy: %q %v", got, err)
	}
	if l, err := st.OfferedTo("U0DEV"); err != nil || len(l) != 0 {
		t.Errorf("the bot's own copy listed for a Reveal: %+v %v", l, err)
	}
	// Its use written as a reveal's, behind the bot's back: the seal no longer opens.
	raw(t, st, func(tx kv.Tx) error {
		var m map[string]any
		if err := json.Unmarshal(tx.Bucket(bucketSecrets).Get([]byte(own)), &m); err != nil {
			return err
		}
		m["use"] = "reveal"
		b, _ := json.Marshal(m)
		return tx.Bucket(bucketSecrets).Put([]byte(own), b)
	})
	if _, err := st.RevealSecret(own, "U0DEV"); !errors.Is(err, ErrBadKey) {
		t.Errorf("a copy whose use was rewritten: %v, want ErrBadKey", err)
	}
	// Offered (the bot's ExtendSecret), it is the owner's to reveal.
	offer, err := st.PutSecret("U0DEV", []byte("for-you"), RecoveryTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ExtendSecret(offer, "U0DEV", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := st.RevealSecret(offer, "U0DEV"); err != nil || string(got) != "for-you" {
		t.Errorf("the offered password: %q %v", got, err)
	}
}

// Every write of a record gives it a new version, events or not: a schedule paused by the
// bot, with no audit event between, cannot be put back active. A version counter set back
// stops the bot writing rather than hand out versions older copies carry.
func TestEveryWriteIsANewVersion(t *testing.T) {
	st := open(t, t.TempDir(), newClock())
	sc, err := st.CreateSchedule(Schedule{Connector: "prod", User: "app", DB: "admin", Spec: "@daily", Owner: "U0DEV"}, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	var active []byte
	raw(t, st, func(tx kv.Tx) error {
		active = slices.Clone(tx.Bucket(bucketSchedules).Get(u64(sc.ID)))
		return nil
	})
	if _, err := st.TransitionSchedule(sc.ID, []string{ScheduleActive}, Step{State: SchedulePaused, By: "bot"}, nil); err != nil {
		t.Fatal(err)
	}
	raw(t, st, func(tx kv.Tx) error { return tx.Bucket(bucketSchedules).Put(u64(sc.ID), active) })
	if _, err := st.Schedule(sc.ID); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "older copy") {
		t.Errorf("the active copy put back: %v, want refused as an older copy", err)
	}
	other, err := st.CreateSchedule(Schedule{Connector: "prod", User: "other", DB: "admin", Spec: "@daily", Owner: "U0DEV"}, "U0DEV")
	if err != nil {
		t.Fatal(err)
	}
	raw(t, st, func(tx kv.Tx) error { return tx.Bucket(bucketVersions).(kv.Sequencer).SetSequence(1) })
	if _, err := st.UpdateSchedule(other.ID, func(*Schedule) error { return nil }); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "back") {
		t.Errorf("a write after the counter was set back: %v, want refused", err)
	}
}
