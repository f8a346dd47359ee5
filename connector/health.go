package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrNotSent marks an error returned before anything reached the server (the connector was
// marked down): unlike a timeout, it says for certain that nothing was changed.
var ErrNotSent = errors.New("not sent")

// DefaultProbeInterval is Config.ProbeInterval when it is not set.
const DefaultProbeInterval = 15 * time.Second

// tripAfter is how many operations in a row must go unanswered before the connector is marked
// down. Each one already waited a whole server selection or command timeout, so one could be
// enough; two keep a single lost connection from refusing everyone for a probe interval.
const tripAfter = 2

// Health is what the connector knows of its server's answers (the circuit breaker).
type Health struct {
	// Down: the last operations went unanswered, and new ones are refused at once, without
	// waiting on the server, until a probe gets an answer.
	Down bool
	// Since is when it was marked down; Why the last unanswered operation's sentence.
	Since time.Time
	Why   string
	// Failures is how many operations in a row went unanswered.
	Failures int
	// Probe is how often a down connector is tried again.
	Probe time.Duration
}

// breaker is the connector's circuit breaker: closed while the server answers, open (down)
// once tripAfter operations in a row went unanswered, and closed again by the first probe that
// gets an answer. While it is open, operations fail at once with ErrUnavailable and
// ErrNotSent, so a black-holed server costs each request nothing, and no caller's slot is held
// for a server that does not answer.
type breaker struct {
	mu       sync.Mutex
	failures int
	down     bool
	since    time.Time
	why      string
	stop     chan struct{} // closes the probe loop (at Close)
	probing  bool
}

// Health reports the connector's circuit breaker.
func (m *Mongo) Health() Health {
	b := &m.health
	b.mu.Lock()
	defer b.mu.Unlock()
	return Health{Down: b.down, Since: b.since, Why: b.why, Failures: b.failures, Probe: m.cfg.ProbeInterval}
}

// Sentence says, for people, that the connector named name is down and what happens next.
func (h Health) Sentence(name string) string {
	return fmt.Sprintf("Connector %s is not answering: %d operations in a row went unanswered, since %s (last: %s). The bot tries it again every %s and takes requests for it as soon as it answers.",
		name, h.Failures, h.Since.UTC().Format("2006-01-02 15:04:05 UTC"), strings.TrimSuffix(h.Why, "."), h.Probe)
}

// refuseIfDown returns the error for an operation the breaker does not let through.
func (m *Mongo) refuseIfDown(op string) error {
	h := m.Health()
	if !h.Down {
		return nil
	}
	return &Error{Kind: ErrUnavailable, Op: op, err: ErrNotSent, Msg: h.Sentence(m.name) + " Nothing was sent"}
}

// observe records how an operation ended. ctx is the caller's: an operation that its caller
// cancelled, or whose caller's deadline came before the connector's own timeouts, says
// nothing of the server (a command given milliseconds must not mark a healthy server down).
func (m *Mongo) observe(ctx context.Context, err error) {
	unanswered := errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
	if errors.Is(err, ErrNotSent) || (unanswered && ctx.Err() != nil) {
		return
	}
	b := &m.health
	b.mu.Lock()
	defer b.mu.Unlock()
	if answered(err) {
		b.failures, b.down = 0, false
		return
	}
	if !unanswered {
		return // a failure of the bot's own side (a client that cannot be made): no news
	}
	b.failures++
	b.why = m.unansweredWhy(err)
	if b.failures >= tripAfter && !b.down {
		b.down, b.since = true, time.Now()
		if !b.probing && b.stop != nil {
			b.probing = true
			go m.probe(b.stop)
		}
	}
}

// probe tries a down server every probe interval with a hello, until it answers or the
// connector is closed.
func (m *Mongo) probe(stop chan struct{}) {
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// A server that answers replies to hello in milliseconds: one that takes longer than
		// finding it may is still not answering.
		ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.ServerSelectionTimeout)
		err := m.send(ctx, "admin", bson.D{{Key: "hello", Value: 1}}, nil, "hello on admin", m.name)
		cancel()
		b := &m.health
		b.mu.Lock()
		if answered(err) {
			b.failures, b.down, b.probing = 0, false, false
			b.mu.Unlock()
			return
		}
		b.why = m.unansweredWhy(err)
		b.mu.Unlock()
	}
}

// answered reports whether err (nil included) came with a reply from the server: success, or
// an error the server itself returned (it has a code).
func answered(err error) bool {
	var ce *Error
	return err == nil || (errors.As(err, &ce) && ce.Code != 0)
}

// unansweredWhy says how an operation went unanswered, naming no command: the sentence is
// shown to everyone refused on the connector, and the command may name someone's user.
func (m *Mongo) unansweredWhy(err error) string {
	var ce *Error
	if errors.Is(err, ErrTimeout) || !errors.As(err, &ce) {
		return "it did not answer in time"
	}
	if rest, ok := strings.CutPrefix(ce.Msg, m.name+" is "); ok {
		return "it was " + rest
	}
	return ce.Msg
}
