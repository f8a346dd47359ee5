// Package kv is the small key-value surface the journal is written against: transactions
// over named buckets of ordered keys, as bbolt has them. The store keeps its records, indexes
// and sequences through it, so the same store code runs on a bbolt file (one process, the
// default) and on etcd (several replicas, see package ha), and the same tests prove both.
//
// It holds interfaces only. The bbolt implementation lives in package store, bbolt's one
// importer; the etcd one in package ha, etcd's.
package kv
