// Package toolbuild runs the project's tools/ scripts that build a test server from the Go
// module proxy (FerretDB, Vault, kube-apiserver) and print where it is. The test harnesses
// share it, so that finding the script, running it and reporting its failure is written once.
// The scripts cache what they build, and take a lock while building: go test runs several
// test binaries at once, and each may ask for the same server.
package toolbuild
