package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"mongobot/kv"
	"mongobot/store/storetest"
)

// TestJournalFromV010 is the "newer bot, older journal" half of the upgrade rule
// (CHANGELOG.md) on a real journal the previous version wrote: every record decodes into this
// version's types without losing a field, the pending work (temporary ends, the schedule, the
// pending request, the sealed passwords) is found by this version's questions, and this
// version can go on writing to it.
func TestJournalFromV010(t *testing.T) {
	bboltOnly(t)
	key, err := ParseKey(storetest.V010Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := storetest.WriteV010(dir); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return storetest.V010Time }

	// Read-only first, as journal list and export would.
	ro, err := Open(dir, Options{ReadOnly: true, Key: key, Now: now})
	if err != nil {
		t.Fatalf("read-only open of v0.1.0's journal: %v", err)
	}
	// Every entry and request survives a decode into this version's types and back: a field
	// this version no longer knows would vanish here.
	roundTrip(t, "entry", bucketEntries, ro, func() any { return &Entry{} })
	roundTrip(t, "request", bucketRequests, ro, func() any { return &Request{} })
	roundTrip(t, "schedule", bucketSchedules, ro, func() any { return &Schedule{} })
	ro.Close()

	st, err := Open(dir, Options{Key: key, Now: now})
	if err != nil {
		t.Fatalf("open of v0.1.0's journal for writing: %v", err)
	}
	defer st.Close()
	if v, _ := st.Schema(); v != 1 {
		t.Errorf("schema %d after opening v0.1.0's journal, want 1", v)
	}
	if err := st.Check(); err != nil {
		t.Errorf("indexes after the upgrade: %v", err)
	}
	// Its records are not authenticated: nothing is taken for work until a person adopts it.
	if un, err := st.Unadopted(); err != nil || !un {
		t.Errorf("v0.1.0's journal unadopted: %v %v, want true", un, err)
	}
	var heard []TamperError
	st.WatchTamper(func(e TamperError) { heard = append(heard, e) })
	if temp, err := st.Temporary(); err != nil || len(temp) != 0 {
		t.Errorf("temporary entries before adoption: %+v %v, want none", temp, err)
	}
	if _, err := st.Request(1); !errors.Is(err, ErrUnadopted) || !strings.Contains(err.Error(), "mongobot journal adopt") {
		t.Errorf("a request before adoption: %v, want ErrUnadopted naming the command", err)
	}
	if len(heard) == 0 {
		t.Error("OnTamper heard nothing of the unadopted records read for work")
	}
	v, err := st.Verify()
	if err != nil || !v.Unadopted || len(v.Suspects) != v.Checked || v.Checked == 0 {
		t.Errorf("verify before adoption: %+v %v, want every record listed", v, err)
	}
	ad, err := st.Adopt("ops@example")
	if err != nil || ad.Tagged != v.Checked {
		t.Fatalf("adopt: %+v %v, want %d tagged", ad, err, v.Checked)
	}
	if _, err := st.Adopt("ops@example"); !errors.Is(err, ErrNothingToAdopt) {
		t.Errorf("adopt again: %v, want ErrNothingToAdopt", err)
	}
	if v, err := st.Verify(); err != nil || v.Unadopted || len(v.Suspects) != 0 {
		t.Errorf("verify after adoption: %+v %v", v, err)
	}
	var trail bytes.Buffer
	if _, err := st.ExportAudit(&trail, ExportOptions{}); err != nil || !strings.Contains(trail.String(), `"kind":"adopted"`) || !strings.Contains(trail.String(), `"by":"ops@example"`) {
		t.Errorf("the adoption is not in the audit trail (%v):\n%s", err, trail.String())
	}
	temp, err := st.Temporary()
	if err != nil {
		t.Fatal(err)
	}
	var ends []string
	for _, e := range temp {
		ends = append(ends, e.Action)
	}
	if len(temp) != 2 {
		t.Errorf("temporary entries still to end: %v, want the 8h grant and the 8h access", ends)
	}
	scs, err := st.Schedules()
	if err != nil || len(scs) != 1 || scs[0].Spec != "0 3 * * *" {
		t.Errorf("schedules: %+v %v, want the one v0.1.0 made", scs, err)
	}
	pending, _, err := st.Requests(0, 100, "pending")
	if err != nil || len(pending) != 1 || pending[0].Action != "lock-user" {
		t.Errorf("pending requests: %+v %v, want the lock-user", pending, err)
	}
	offers, err := st.OfferedTo("U0DEV")
	if err != nil || len(offers) != 2 {
		t.Fatalf("passwords offered to U0DEV: %+v %v, want the access's and the new user's", offers, err)
	}
	for _, o := range offers {
		if _, err := st.PeekSecret(o.ID, "U0DEV"); err != nil {
			t.Errorf("a password v0.1.0 sealed does not open with its key: %v", err)
		}
	}
	// This version writes to it as to its own.
	r, err := st.CreateRequest(Request{Action: "grant-role", Connector: "demo", Requester: "U0DEV"}, "pending", "U0DEV")
	if err != nil || r.ID <= pending[0].ID {
		t.Errorf("a new request on v0.1.0's journal: %+v %v", r, err)
	}
}

// roundTrip decodes every record of bucket into the type fresh makes and encodes it again,
// and fails when the two differ as JSON values.
func roundTrip(t *testing.T, what string, bucket []byte, s *Store, fresh func() any) {
	t.Helper()
	n := 0
	err := s.db.View(func(tx kv.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			n++
			typed := fresh()
			if err := json.Unmarshal(v, typed); err != nil {
				t.Errorf("%s %x does not decode: %v", what, k, err)
				return nil
			}
			again, _ := json.Marshal(typed)
			var a, b any
			json.Unmarshal(v, &a)
			json.Unmarshal(again, &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s %x changes in a decode and encode by this version:\n was %s\n now %s", what, k, v, again)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no %s in v0.1.0's journal: the golden file is not the one described", what)
	}
}
