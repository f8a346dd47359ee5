package ha

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrClaimed is the answer to a claim another replica holds.
var ErrClaimed = errors.New("ha: claimed by another replica")

// Claim is a key held by one replica's lease: an action being executed, a schedule slot.
type Claim struct {
	Key string
	Rev int64 // the key's create revision
	r   *Replica
}

// Claim takes name (under the prefix's claims/) for this replica, bound to its lease: it is
// released by Release or when the replica's session ends. Another replica's holding it is
// ErrClaimed, naming the holder.
func (r *Replica) Claim(ctx context.Context, name string) (Claim, error) {
	k := r.cfg.Prefix + "claims/" + name
	resp, err := r.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, r.cfg.Name, clientv3.WithLease(r.session.Lease()))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return Claim{}, fmt.Errorf("ha: claim %s: %w", name, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		holder := "?"
		if len(kvs) > 0 {
			holder = string(kvs[0].Value)
			if kvs[0].Lease == int64(r.session.Lease()) {
				holder = "this replica" // claims are not shared, even within one process
			}
		}
		return Claim{}, fmt.Errorf("%w: %s holds %s", ErrClaimed, holder, name)
	}
	return Claim{Key: k, Rev: resp.Header.Revision, r: r}, nil
}

// Cmp holds while the claim does.
func (c Claim) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(c.Key), "=", c.Rev)
}

// ErrClaimLost says a claim was gone before its release: its holder's session ended.
var ErrClaimLost = errors.New("ha: the claim was lost before its release")

// Release gives the claim up, if it is still this one.
func (c Claim) Release(ctx context.Context) error {
	if c.r == nil || c.Rev == 0 {
		return ErrClaimLost
	}
	resp, err := c.r.cfg.Client.Txn(ctx).If(c.Cmp()).Then(clientv3.OpDelete(c.Key)).Commit()
	switch {
	case err != nil:
		return err
	case !resp.Succeeded:
		return ErrClaimLost
	}
	return nil
}
