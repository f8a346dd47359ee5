package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"mongobot/commands"
)

// span is the range a duration field accepts.
type span struct{ min, max time.Duration }

// durationBounds are the ranges of the duration fields, by path with list indices left out.
// Each says why in its comment; every Duration field of the config must have one (a test
// checks), so that "0s" or "900d" gets a sentence saying what would do, not a surprise later.
var durationBounds = map[string]span{
	// Under 2s a replica on a busy network loses its session to one late renewal; past a
	// minute a dead leader leaves timers and claimed actions waiting that long.
	"store.etcd.session_ttl": {2 * time.Second, time.Minute},
	// A request needs time for an approver to see it and click; after a month the preview it
	// shows (the user as it was) is too old to approve on.
	"approvals.expire_after":         {time.Minute, 30 * 24 * time.Hour},
	"approvals.rules[].expire_after": {time.Minute, 30 * 24 * time.Hour},
	// The owner of a new password needs time to come and reveal it; longer than a week, an
	// unclaimed password is better rotated again than kept waiting in the store.
	"reveal_ttl": {time.Minute, 7 * 24 * time.Hour},
	// Under a minute every restart would skip the run it interrupted; past a month a run
	// rotates a password long after anyone expects it.
	"schedules.missed_run_window": {time.Minute, 30 * 24 * time.Hour},
	// Shorter than 10s a retry meets the same passing failure (an election, a network
	// blip); past a day it runs into the next scheduled run.
	"schedules.retry_delay": {10 * time.Second, 24 * time.Hour},
	// One call to a secret store or the Kubernetes API: under a second fails on any real
	// network; past five minutes a dead target holds a delivery attempt far too long (the bot
	// retries anyway).
	"deliveries[].targets[].vault_kv.timeout":          {time.Second, 5 * time.Minute},
	"deliveries[].targets[].kubernetes_secret.timeout": {time.Second, 5 * time.Minute},
	// A command may do more (call an API, restart a pod), but not hold a delivery for ages.
	"deliveries[].targets[].exec.timeout": {time.Second, 10 * time.Minute},
	// The journal is the audit trail: kept for less than a month it cannot answer "who did
	// this last month", which is a mistake, not a choice; ten years is longer than any audit.
	"retention.keep": {30 * 24 * time.Hour, maxSpan},
	// Just-in-time access is asked for by the hour; it is bounded like any --for.
	"connectors[].jit.max_for": {commands.MinFor, commands.MaxFor},
	// Under a minute a connector used now and then reconnects (TLS, login) for nearly every
	// operation; past a day an unused connector keeps its connections and heartbeats for good.
	"connector_idle_timeout": {time.Minute, 24 * time.Hour},
}

// maxSpan is the longest duration a config field may hold: ten years, for retention.keep.
// It is longer than commands.MaxSpan, which bounds the waits the bot measures; every field
// but retention has bounds well inside that.
const maxSpan = 3650 * 24 * time.Hour

// parseSpan is commands.ParseSpan, also reading spans longer than commands.MaxSpan up to
// maxSpan, which only retention.keep allows: the fields' bounds say which span fits which.
func parseSpan(v string) (time.Duration, error) {
	d, err := commands.ParseSpan(v)
	if errors.Is(err, commands.ErrSpanTooLong) {
		if long, ok := signedSpan(v); ok && long > 0 && long <= maxSpan {
			return long, nil
		}
	}
	return d, err
}

// fallbackBounds are those of a duration field missing from durationBounds: what any span
// the bot reads may be.
var fallbackBounds = span{time.Second, commands.MaxSpan}

var index = regexp.MustCompile(`\[[0-9]+\]`)

// durationProblem is what is wrong with the duration v of the field at path, or "" when
// nothing is; shown is v as the message may quote it. A message about the range starts with
// "must", to follow the field's name: "approvals.expire_after must be at least 1m".
func durationProblem(path, v, shown string) string {
	b, ok := durationBounds[index.ReplaceAllString(path, "[]")]
	if !ok {
		b = fallbackBounds
	}
	rng := fmt.Sprintf("must be at least %s and at most %s", commands.FormatDuration(b.min), commands.FormatDuration(b.max))
	d, err := parseSpan(v)
	if errors.Is(err, commands.ErrSpanTooLong) {
		return fmt.Sprintf("%s, not %s", rng, showSpan(v, shown))
	}
	if err != nil {
		// ParseSpan refuses zero and negative spans as not durations; they are durations,
		// only too short.
		if _, ok := signedSpan(v); ok {
			return fmt.Sprintf("%s, not %s", rng, showSpan(v, shown))
		}
		return fmt.Sprintf("%s is not a duration: write 30m, 4h or 2d (or 90s)", shown)
	}
	if d < b.min || d > b.max {
		return fmt.Sprintf("%s, not %s", rng, showSpan(v, shown))
	}
	return ""
}

// signedSpan reads a span in ParseSpan's syntax that may be zero or negative.
func signedSpan(v string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		return time.Duration(n) * 24 * time.Hour, err == nil
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// showSpan is a duration that was read as one, for a message: without quotes, unless it came
// from the environment, when shown names the variable instead.
func showSpan(v, shown string) string {
	if strings.HasPrefix(shown, `"`) {
		return v
	}
	return shown
}
