package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"mongobot/store"
)

// The store refuses to hand the bot a record that fails its authentication (store/tags.go):
// one written or changed by whoever can write the journal's storage, not by a bot. Such a
// record is never acted on. The bot says so three ways: at once in its log, as a count in
// the metrics (TamperedRecords), and in the approvals channel at the next run of the timers,
// once per record and reason, so a person looks at the storage's access and runs
// `mongobot journal verify`.

// tamperLog keeps the records reported, and those not yet announced.
type tamperLog struct {
	mu    sync.Mutex
	seen  map[string]bool
	fresh []store.TamperError
}

// tampered is the store's report of a record failing its authentication. It may come
// inside a transaction, several times for one record: it only notes it.
func (b *Bot) tampered(e store.TamperError) {
	k := e.Kind + "\x00" + e.Key + "\x00" + e.Why
	t := &b.tamper
	t.mu.Lock()
	if t.seen == nil {
		t.seen = map[string]bool{}
	}
	first := !t.seen[k]
	if first {
		t.seen[k] = true
		t.fresh = append(t.fresh, e)
	}
	t.mu.Unlock()
	if first {
		b.log.Error("a journal record fails its authentication: the bot will not act on it; run mongobot journal verify",
			"kind", e.Kind, "key", e.Key, "why", e.Why)
	}
}

// TamperedRecords is how many distinct records (and reasons) the store refused so far.
func (b *Bot) TamperedRecords() int {
	b.tamper.mu.Lock()
	defer b.tamper.mu.Unlock()
	return len(b.tamper.seen)
}

// announceTampered posts the records refused since the last announcement, in one message.
func (b *Bot) announceTampered(ctx context.Context) {
	t := &b.tamper
	t.mu.Lock()
	fresh := t.fresh
	t.fresh = nil
	t.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	lines := []string{fmt.Sprintf(":rotating_light: %d journal record(s) fail their authentication: they were written or changed outside the bot, by whoever can write its storage. The bot will not act on them. Find who could write the journal, then run `mongobot journal verify`.", len(fresh))}
	for i, e := range fresh {
		if i == 10 {
			lines = append(lines, fmt.Sprintf("• and %d more", len(fresh)-i))
			break
		}
		lines = append(lines, fmt.Sprintf("• %s %s: %s", e.Kind, esc(e.Key), esc(e.Why)))
	}
	b.announceTo(ctx, b.cfg.Channel, strings.Join(lines, "\n"))
}
