// Package etcd holds no code: it is the home of setup.sh, which makes the etcd role and user
// the bot's replicas log in as, and of the test that runs that script, word for word, with a
// real etcdctl against a real etcd with auth and mutual TLS on, then proves that the bot
// serves with the user it made and that the user can do nothing outside the bot's prefix.
package etcd
