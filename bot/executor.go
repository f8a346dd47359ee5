package bot

import (
	"context"
	"fmt"
	"sync"
	"time"

	"mongobot/connector"
	"mongobot/store"
)

// Limits bound the work one connector is given at once, so that a slow or dead MongoDB holds
// up only the requests for it.
type Limits struct {
	// Concurrency is how many approved actions run on the connector at once (default 4).
	Concurrency int
	// Queue is how many more approved actions may wait for a turn (default 100); a request
	// approved beyond that fails at once, saying so, rather than waiting without bound.
	Queue int
}

// Default limits of a connector.
const (
	DefaultConcurrency = 4
	DefaultQueue       = 100
	// readsPerConnector bounds the reads made for people waiting on an answer (previews,
	// `users`): each holds one of the chat adapter's few work slots while it waits, so one
	// connector that does not answer may take at most this many of them. A read waits for a
	// turn at most readWait, then is refused as busy.
	readsPerConnector = 4
	readWait          = 5 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.Concurrency <= 0 {
		l.Concurrency = DefaultConcurrency
	}
	if l.Queue <= 0 {
		l.Queue = DefaultQueue
	}
	return l
}

// executors are the connectors' action queues. An approved action runs on its connector's
// executor, never in the chat adapter's work slot of the click that approved it: a MongoDB
// that stops answering holds its own executor's turns, and every other connector and every
// other click goes on.
type executors struct {
	mu  sync.Mutex
	by  map[string]*executor
	lim map[string]Limits
}

type executor struct {
	limits  Limits
	running int
	waiting []uint64      // approved requests, oldest first
	reads   chan struct{} // read turns (readsPerConnector)
}

func (xs *executors) get(conn string) *executor {
	if xs.by == nil {
		xs.by = map[string]*executor{}
	}
	x := xs.by[conn]
	if x == nil {
		x = &executor{limits: xs.lim[conn].withDefaults(), reads: make(chan struct{}, readsPerConnector)}
		xs.by[conn] = x
	}
	return x
}

// Queued is the state of one connector's executor, for `connectors` and metrics.
type Queued struct {
	Running, Waiting int
	Limits           Limits
}

// queued reports conn's executor.
func (b *Bot) queued(conn string) Queued {
	xs := &b.execs
	xs.mu.Lock()
	defer xs.mu.Unlock()
	x := xs.get(conn)
	return Queued{Running: x.running, Waiting: len(x.waiting), Limits: x.limits}
}

// errBusy is a connector whose executor has no room left.
type errBusy struct {
	conn             string
	running, waiting int
}

func (e errBusy) Error() string {
	return fmt.Sprintf("connector %s is busy: %d actions are running on it and %d more are waiting, the most it queues", e.conn, e.running, e.waiting)
}

// runQueued runs approved request id on conn's executor: at once if one of its turns is free,
// otherwise after the actions queued before it. tell is called first with how many actions
// are ahead of it (0: it runs now; -1: the bot is stopping, and it runs at the next start).
// errBusy says the queue is full and id was not taken. A
// queued request stays approved in the journal: if the bot stops before its turn, the next
// start runs it.
func (b *Bot) runQueued(ctx context.Context, conn string, id uint64, force bool, tell func(ahead int)) error {
	// The action outlives whatever delivered its approval: only Shutdown stops the executor.
	ctx = context.WithoutCancel(ctx)
	xs := &b.execs
	xs.mu.Lock()
	x := xs.get(conn)
	switch {
	case x.running < x.limits.Concurrency:
		x.running++
	case len(x.waiting) >= x.limits.Queue && !force:
		err := errBusy{conn: conn, running: x.running, waiting: len(x.waiting)}
		xs.mu.Unlock()
		return err
	default:
		x.waiting = append(x.waiting, id)
		ahead := x.running + len(x.waiting) - 1
		xs.mu.Unlock()
		tell(ahead)
		return nil
	}
	xs.mu.Unlock()
	if !b.begin() {
		// Shutting down: the request stays approved, for the next start.
		xs.mu.Lock()
		x.running--
		xs.mu.Unlock()
		tell(-1)
		return nil
	}
	tell(0)
	go func() {
		defer b.done()
		for {
			b.safely("execute", func() { b.execute(ctx, id) })
			xs.mu.Lock()
			if len(x.waiting) == 0 || b.stopping() {
				// What still waits at shutdown stays approved in the journal.
				x.running--
				x.waiting = x.waiting[:0]
				xs.mu.Unlock()
				return
			}
			id = x.waiting[0]
			x.waiting = x.waiting[1:]
			xs.mu.Unlock()
		}
	}()
	return nil
}

// start hands approved request r to its connector's executor and tells its requester, with
// the words of lead ("Request #7 (…) is approved"), whether it runs now or waits its turn.
// force queues it even beyond the queue's bound: a request approved before a restart is not
// refused for the backlog the restart found.
func (b *Bot) start(ctx context.Context, r store.Request, force bool, lead string, tell func(Message)) {
	err := b.runQueued(ctx, r.Connector, r.ID, force, func(ahead int) {
		switch {
		case ahead < 0:
			tell(text("%s; the bot is stopping, so it runs when the bot starts again.", lead))
			return
		case ahead == 0:
			tell(text("%s: running it now.", lead))
			return
		}
		tell(text("%s, and queued: connector %s is busy (%d actions ahead of it). It runs when a turn frees; `%s requests` shows it.", lead, r.Connector, ahead, b.cfg.Slash))
	})
	if err != nil {
		b.failRequest(ctx, r, 0, err.Error()+"; it was not run and nothing was changed: ask again later")
	}
}

// stopping reports whether Shutdown has begun.
func (b *Bot) stopping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// reading takes one of conn's read turns for someone waiting on an answer, waiting readWait
// at most, or returns nil and the sentence to send: nobody's work slot waits long on a server
// that already keeps others waiting, and none waits at all on one marked down.
func (b *Bot) reading(ctx context.Context, m Mongo) (release func(), why string) {
	if h := m.Health(); h.Down {
		return nil, downSentence(m.Name(), h)
	}
	xs := &b.execs
	xs.mu.Lock()
	x := xs.get(m.Name())
	xs.mu.Unlock()
	t := time.NewTimer(readWait)
	defer t.Stop()
	select {
	case x.reads <- struct{}{}:
		return func() { <-x.reads }, ""
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, fmt.Sprintf("Connector %s is busy: %d requests were already waiting on it for an answer, for over %s. Try again in a minute; `%s connectors` shows its state.",
		m.Name(), readsPerConnector, readWait, b.cfg.Slash)
}

// downSentence says that a connector is marked down, and what happens next.
func downSentence(name string, h connector.Health) string { return esc(h.Sentence(name)) }

// ConnectorsDown is how many connectors are marked down now (the mongobot_connectors_down gauge).
func (b *Bot) ConnectorsDown() int {
	n := 0
	for _, m := range b.cfg.Connectors {
		if m.Health().Down {
			n++
		}
	}
	return n
}

// ActionsWaiting is how many approved actions wait for a turn on their connector, over all
// connectors (the mongobot_actions_waiting gauge).
func (b *Bot) ActionsWaiting() int {
	xs := &b.execs
	xs.mu.Lock()
	defer xs.mu.Unlock()
	n := 0
	for _, x := range xs.by {
		n += len(x.waiting)
	}
	return n
}
