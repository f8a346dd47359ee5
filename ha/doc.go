// Package ha lets several bot replicas share the work that must happen once: it is the
// bot's only importer of the etcd client (go.etcd.io/etcd/client/v3).
//
// A replica joins with a session: an etcd lease it keeps alive. Through it, it
//   - campaigns to lead (concurrency.Election): exactly one replica at a time runs the
//     timers, and a leader whose lease it can no longer renew ends its term before the lease
//     can expire on the server, so before another replica can win;
//   - fences: a term's Cmp holds only while its leader key is the one it created, so a
//     transaction conditioned on it fails once the term is over, whatever the old leader
//     believes (a paused process, a partition);
//   - claims keys bound to its lease: the claim of an action being executed vanishes with a
//     replica that dies, and two replicas can never hold the same one.
//
// etcdtest starts real embedded etcd members for the tests; nothing here is mocked.
package ha
