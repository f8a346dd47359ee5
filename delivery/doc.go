// Package delivery is what the delivery targets share: the credential a rotation hands to the
// place an application reads it from, and the errors that tell the bot whether to try again.
//
// Each target is its own package beside this one, owning its one outside library and its
// rendering of itself: vaultkv (a Vault KV v2 secret, hashicorp/vault/api), kubesecret (a
// Kubernetes Secret, k8s.io/client-go) and command (a program that reads the credential as
// JSON on its standard input). The bot declares the interface it needs from them; this
// package only holds the words they all speak.
//
// Every target writes with optimistic concurrency (Vault's check-and-set, Kubernetes'
// resourceVersion): it reads the secret, changes only its own fields, and writes on the
// condition that nobody wrote in between; an edit that lands in between is detected, and the
// next attempt starts from it instead of overwriting it. Every target reads back what it
// wrote, where it can, before a delivery counts as verified.
package delivery
