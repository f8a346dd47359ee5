package ha

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Client is the etcd client Dial makes, named here so that the bot's code and tests hold one
// without importing etcd (ha is its one importer).
type Client = clientv3.Client

// Expire ends r's session through c, another client, as the lapse of its lease's TTL would:
// its claims and its term end at once. A test kills a replica by closing the replica's own
// client (so nothing more is sent from it) and then expires it, instead of waiting the TTL.
func Expire(ctx context.Context, c *Client, r *Replica) error {
	_, err := c.Revoke(ctx, r.lease())
	return err
}

// Raw is every key and value under prefix, concatenated: what an attacker reading etcd's
// data would see, for a check that no secret is stored unsealed.
func Raw(ctx context.Context, c *Client, prefix string) ([]byte, error) {
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, kv := range resp.Kvs {
		out = append(out, kv.Key...)
		out = append(out, '\n')
		out = append(out, kv.Value...)
		out = append(out, '\n')
	}
	return out, nil
}
