// Package kubetest runs a real kube-apiserver on a real etcd on loopback ports, for tests, the
// way net/http/httptest runs an HTTP server.
//
// The binaries are built from the Go module proxy by tools/kube-apiserver.sh (kube-apiserver
// v1.37.2, etcd v3.7.3); BinDir finds them. The server has authentication (a static token file
// with an admin in system:masters, and service-account tokens signed with a key generated at
// start), RBAC authorization, admission and validation as in a cluster. It has no controllers,
// no scheduler and no nodes: objects are stored and served, nothing reconciles them, which is
// all a test of an API client needs. Start takes three to four seconds on two cores, so a test
// binary should start one server in TestMain and share it.
//
// The package's own requests (creating namespaces, roles and tokens, reading and editing
// Secrets behind the code under test's back) use plain net/http and encoding/json, never
// client-go: a test must not see the API server through the library whose use it is checking.
package kubetest
