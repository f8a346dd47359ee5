// Package atlas is a small typed client of the MongoDB Atlas Administration API v2 for the
// bot's needs: database users (users.go), each request with the
// versioned media type the API defines for it (application/vnd.atlas.2023-01-01+json).
//
// It authenticates with a service account (OAuth 2.0 client credentials, through
// golang.org/x/oauth2/clientcredentials) or an API key pair (HTTP Digest, through
// github.com/mongodb-forks/digest, which Atlas's own Go SDK uses); it is the only importer of
// both. Neither credential appears in an error: errors say which call failed and what Atlas
// answered, in words (errors.go). 429 answers are retried with backoff, honouring
// Retry-After.
//
// The API's OpenAPI document is the reference: the stand-in in atlastest validates every
// request this client sends and every response it gets against it. Where the document is
// silent or odd, the code says so and follows Atlas's documentation.
package atlas
