// Package kubesecret delivers a rotated MongoDB password into a Kubernetes Secret, the place an
// application on Kubernetes reads its login from (as environment variables or a mounted file).
//
// It is the only package that imports k8s.io/client-go. A Target owns two keys of one Secret,
// the user name and the password; everything else in the Secret belongs to someone else (other
// keys, labels, annotations, the type), and a delivery keeps it as it was.
//
// Writes use optimistic concurrency: Deliver reads the Secret and writes it back carrying the
// resourceVersion it read, so the API server refuses the write (409 Conflict) if anyone wrote in
// between. That refusal wraps delivery.ErrConflict: nothing of theirs was overwritten, and the
// next attempt starts from their version. A Secret that does not exist yet is created; a create
// that loses a race to another creator is the same conflict.
//
// Errors wrap delivery.ErrRejected when trying again will not help by itself (403 Forbidden, 401
// Unauthorized, a namespace that does not exist, a Secret the API server finds invalid or that
// is immutable, a certificate that does not verify), delivery.ErrMismatch when Verify reads back
// something else, and nothing when the API server could not be reached or did not answer in
// time, so the bot retries. No error text holds the password (in clear or in base64) or the bot's
// bearer token: every message is scrubbed with secret.Scrub, and client-go's own logging (klog)
// is left at its default verbosity, at which it never prints request bodies or headers.
//
// The tests run against a real kube-apiserver on a real etcd (package kubetest); nothing here
// is tested against a fake clientset, since a fake would not enforce resourceVersions, RBAC or
// validation the way the API server does.
package kubesecret
