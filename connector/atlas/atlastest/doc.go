// Package atlastest is a stand-in for the Atlas Administration API's database-user
// operations, for tests. It validates every request it receives and every response it sends
// against Atlas's own OpenAPI document (spec/, its structure without prose) with
// github.com/getkin/kin-openapi, so a wrong field name, type, media type or status fails the
// test that started it. It authenticates as Atlas does (HTTP Digest with a nonce challenge;
// an OAuth 2.0 token endpoint whose tokens expire), pages lists, can rate-limit (429 with
// Retry-After), and applies each accepted change to a mongotest emulator, its "cluster",
// after a delay, as Atlas's clusters apply changes after the API accepts them.
package atlastest
