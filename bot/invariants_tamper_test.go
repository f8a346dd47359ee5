package bot_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"mongobot/approvals"
	"mongobot/store"
	"mongobot/store/storetest"
)

// Tampering: steps that write the journal's storage behind the bot's back, as whoever can
// write the bbolt file or the etcd prefix could (store/tags.go). On bbolt the file is written
// while the bot is down (a crash, then the write, then the restart: bbolt holds the file
// while it runs); on etcd, straight into the prefix while the replicas serve.
//
// Four kinds, each aimed at making the bot act on what nobody approved:
//   - forge: a new request, approved, with an approver's vote, granting root to "victim";
//   - alter: an existing request's bytes changed: approved, and aimed at "victim" with root;
//   - replay: an existing request's bytes, tag and all, copied under a new id;
//   - roll back: a request put back as an older copy of itself, tag and all, taken while it
//     was pending (an approver's vote would run it again).
//
// The invariant: no journal entry ever acts on "victim", names a forged or copied request,
// or runs a request put back again, and MongoDB applies nothing the journal cannot account
// for (check, 1). A record put back together with its version record is not tried: the
// store does not claim to notice it (store/versions.go).

// tamperVictim is the user a tampered request aims at: no legitimate step names it.
const tamperVictim = "victim"

// tamperStats counts what the tamper steps did, over the test binary's run.
var tamperStats struct{ forged, altered, replayed, rolledBack atomic.Int64 }

// tamperCounts is tamperStats now, to log what one test added.
func tamperCounts() [4]int64 {
	return [4]int64{tamperStats.forged.Load(), tamperStats.altered.Load(), tamperStats.replayed.Load(), tamperStats.rolledBack.Load()}
}

// withTampering inserts tamper steps into steps: about one in forty, from their own stream so
// that the other steps stay what the seed made them.
func withTampering(seed uint64, steps []Step) []Step {
	r := rand.New(rand.NewPCG(seed, 0x7a3e))
	var out []Step
	for _, s := range steps {
		if r.IntN(40) == 0 {
			out = append(out, Step{Kind: "tamper", N: r.IntN(4), M: r.IntN(1 << 20)})
		}
		out = append(out, s)
	}
	return out[:len(steps)]
}

// rawWrite is one write behind the bot's back.
type rawWrite struct {
	bucket string
	key    []byte
	value  []byte
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// tamper applies tamper step kind (0 forge, 1 alter, 2 replay, 3 roll back) on the request
// m picks.
func (w *world) tamper(kind, m int) error {
	if w.forgedIDs == nil {
		w.forgedIDs, w.pendingCopies, w.putBack = map[uint64]string{}, map[uint64][]byte{}, map[uint64]int{}
	}
	rs, _, err := w.journal().Requests(0, 1<<20)
	if err != nil {
		return err
	}
	var pick store.Request
	if len(rs) > 0 {
		pick = rs[m%len(rs)]
	} else if kind != 0 {
		kind = 0 // nothing to alter or copy yet
	}
	// A rollback puts back a copy taken by an earlier step while its request was pending,
	// once the request has moved on; with none, the step forges.
	var back []store.Request
	for _, r := range rs {
		if _, ok := w.pendingCopies[r.ID]; ok && r.State != approvals.Pending {
			back = append(back, r)
		}
	}
	if kind == 3 && len(back) == 0 {
		kind = 0
	}
	if kind == 3 {
		r := back[m%len(back)]
		if w.altered == nil {
			w.altered = map[uint64]store.Request{}
		}
		if _, ok := w.altered[r.ID]; !ok {
			w.altered[r.ID] = r
		}
		if _, ok := w.putBack[r.ID]; !ok {
			w.putBack[r.ID] = len(slices.DeleteFunc(w.entries(), func(e store.Entry) bool { return e.RequestID != r.ID }))
		}
	}
	newID := uint64(5000 + w.stepNo)
	build := func(get func(bucket string, key []byte) ([]byte, error)) ([]rawWrite, error) {
		// Copies for later rollbacks: a few pending requests, as stored now.
		for _, r := range rs {
			if _, ok := w.pendingCopies[r.ID]; !ok && r.State == approvals.Pending && len(w.pendingCopies) < 64 {
				raw, err := get("requests", u64(r.ID))
				if err != nil {
					return nil, err
				}
				w.pendingCopies[r.ID] = raw
			}
		}
		switch kind {
		case 3:
			r := back[m%len(back)]
			tamperStats.rolledBack.Add(1)
			return []rawWrite{{"requests", u64(r.ID), w.pendingCopies[r.ID]}}, nil
		case 0:
			now := w.clock.Now()
			r := store.Request{ID: newID, Action: "grant-role", Connector: "prod", Requester: dev, State: approvals.Approved,
				Args:      map[string]string{"user": tamperVictim, "db": "admin", "role": "root@admin", "reason": "forged"},
				Votes:     []store.Vote{{User: alice, Approve: true, At: now}, {User: bob, Approve: true, At: now}},
				History:   []store.Step{{State: approvals.Pending, At: now, By: dev}, {State: approvals.Approved, At: now, By: alice}},
				CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			raw, err := json.Marshal(r)
			w.forgedIDs[newID] = "forged"
			tamperStats.forged.Add(1)
			return []rawWrite{{"requests", u64(newID), raw}}, err
		case 1:
			if w.altered == nil {
				w.altered = map[uint64]store.Request{}
			}
			if _, ok := w.altered[pick.ID]; !ok {
				w.altered[pick.ID] = pick
			}
			raw, err := get("requests", u64(pick.ID))
			if err != nil || raw == nil {
				return nil, err
			}
			var r map[string]any
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, err
			}
			args, _ := r["args"].(map[string]any)
			if args == nil {
				args = map[string]any{}
			}
			args["user"], args["role"], args["roles"] = tamperVictim, "root@admin", "root@admin"
			r["args"], r["state"] = args, approvals.Approved
			tag, _ := r["_tag"].(string)
			delete(r, "_tag")
			out, err := json.Marshal(r)
			if err == nil && tag != "" {
				// The record's own tag, kept last where the store looks for it.
				out = append(out[:len(out)-1], `,"_tag":"`+tag+`"}`...)
			}
			tamperStats.altered.Add(1)
			return []rawWrite{{"requests", u64(pick.ID), out}}, err
		default:
			raw, err := get("requests", u64(pick.ID))
			if err != nil || raw == nil {
				return nil, err
			}
			// The record's bytes, its tag with them (the last field of its JSON).
			w.forgedIDs[newID] = fmt.Sprintf("a copy of request #%d", pick.ID)
			tamperStats.replayed.Add(1)
			return []rawWrite{{"requests", u64(newID), raw}}, nil
		}
	}
	w.tampers++
	if w.ha != nil {
		return w.ha.tamper(build)
	}
	return w.crashThen(0, func() error {
		ws, err := build(func(bucket string, key []byte) ([]byte, error) { return storetest.Get(w.dir, bucket, key) })
		if err != nil {
			return err
		}
		for _, x := range ws {
			if err := storetest.Put(w.dir, x.bucket, x.key, x.value); err != nil {
				return err
			}
		}
		return nil
	})
}

// tamper writes into the journal's prefix directly, with the replicas serving.
func (h *haSide) tamper(build func(get func(bucket string, key []byte) ([]byte, error)) ([]rawWrite, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	path := func(bucket string, key []byte) string { return h.prefix + "journal/k/" + bucket + "\x00" + string(key) }
	ws, err := build(func(bucket string, key []byte) ([]byte, error) {
		resp, err := h.admin.Get(ctx, path(bucket, key))
		if err != nil || len(resp.Kvs) == 0 {
			return nil, err
		}
		return resp.Kvs[0].Value, nil
	})
	if err != nil {
		return err
	}
	for _, x := range ws {
		if _, err := h.admin.Put(ctx, path(x.bucket, x.key), string(x.value)); err != nil {
			return err
		}
	}
	return nil
}

// checkTampered: nothing written behind the bot's back was acted on.
func (w *world) checkTampered(es []store.Entry) {
	for id, before := range w.putBack {
		if n := len(slices.DeleteFunc(slices.Clone(es), func(e store.Entry) bool { return e.RequestID != id })); n > before {
			w.problem("request #%d ran again (%d entries, %d before) after it was put back to an older copy of itself behind the bot's back", id, n, before)
		}
	}
	for _, e := range es {
		if what, ok := w.forgedIDs[e.RequestID]; ok {
			w.problem("journal #%d ran request #%d, which is %s written into the journal's storage behind the bot's back", e.ID, e.RequestID, what)
		}
		if slices.Contains([]string{e.Args["user"], e.Args["target"]}, tamperVictim) {
			w.problem("journal #%d (%s) acted on %q, which only tampered records name", e.ID, e.Action, tamperVictim)
		}
	}
}

// request is request id as the checks judge it: as it was before a tamper step altered it
// (the bot, refusing the altered record, acted only on what it was), else the journal's.
func (w *world) request(id uint64) (store.Request, error) {
	if r, ok := w.altered[id]; ok {
		return r, nil
	}
	return w.journal().Request(id)
}
