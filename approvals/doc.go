// Package approvals is the policy and the state machine of an approval request: who may ask,
// who may approve, how many approvals are needed (quorum), when a request expires, whether a
// requester may approve their own request, and which states a request may move between.
//
// It is pure logic over plain data: no Slack, no MongoDB, no bbolt, no clock (the time is
// always passed in). The bot stores the states this package decides with the store's
// compare-and-set transitions, so a decision made here is applied at most once.
//
// The life of a request:
//
//	pending ──▶ approved ──▶ executing ──▶ done ──▶ rolled_back
//	   │                          └──────▶ failed
//	   ├──▶ denied
//	   ├──▶ expired
//	   └──▶ cancelled
//
// A decided request (anything but pending) never goes back, and never changes except along
// the arrows.
package approvals
