package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"mongobot/bot"
	"mongobot/bot/slack"
	"mongobot/config"
	"mongobot/connector/atlas"
	"mongobot/store"
)

// check validates the config and reports, per connector, version, topology and which bot
// actions its account can and cannot perform, and whether the journal is readable. It lists
// every finding and then gives one verdict, last, so that a reader (or a script) never sees
// "ok" above a problem; the exit code matches the verdict.
func check(ctx context.Context, args []string, env func(string) (string, bool), w io.Writer) error {
	if err := parse(flags("check"), args, 0); err != nil {
		return err
	}
	problems := 0
	problem := func(format string, a ...any) {
		fmt.Fprintf(w, format+"\n", a...)
		problems++
	}
	defer func() {
		if problems == 0 {
			fmt.Fprintln(w, "check: ok")
		} else {
			fmt.Fprintf(w, "check: %d problem(s)\n", problems)
		}
	}()
	path := getenv(env, "BOT_CONFIG", "bot.yaml")
	cfg, err := config.Load(path, env)
	var ms config.Mistakes
	switch {
	case errors.As(err, &ms):
		fmt.Fprintf(w, "config: %s has %d mistake(s):\n", path, len(ms))
		for _, m := range ms {
			problem("  %s", m)
		}
		return quietError{}
	case err != nil:
		problem("config: %v", err)
		return quietError{}
	}
	fmt.Fprintf(w, "config: %s read: %d connector(s), approvals in %s\n", getenv(env, "BOT_CONFIG", "bot.yaml"), len(cfg.Connectors), cfg.Approvals.Channel)
	if cfg.Store.Etcd != nil {
		checkShared(cfg.Store.Etcd, w, problem)
		checkRotation(env, cfg.Store.Etcd, w, problem)
	} else {
		checkData(env, w, problem)
	}
	checkSlack(ctx, cfg, env, w, problem)
	for _, r := range checkConnectors(ctx, cfg, os.Stderr) {
		for _, l := range r {
			if l.problem {
				problem("%s", l.text)
			} else {
				fmt.Fprintln(w, l.text)
			}
		}
	}
	checkTargets(ctx, cfg, w, problem)
	if problems > 0 {
		return quietError{}
	}
	return nil
}

// checkSlackTimeout bounds all of check's questions to Slack, as serve's start bounds its
// auth.test.
const checkSlackTimeout = 30 * time.Second

// checkSlack asks Slack what serve will need of it: both tokens, the scopes the config
// needs, the bot's place in each channel it posts to, and each user group it names. A token
// that is not set, or not of its kind, is a problem, because serve exits on it: slackTokens
// judges it for both, and such a token is not sent to Slack.
func checkSlack(ctx context.Context, cfg *config.Config, env func(string) (string, bool), w io.Writer, problem func(string, ...any)) {
	app, tok, mistakes := slackTokens(env)
	for _, m := range mistakes {
		problem("slack: %s", m)
	}
	if tok == "" && app == "" {
		return
	}
	need := slack.Need{Channels: []slack.NeedChannel{{Key: "approvals.channel", ID: cfg.Approvals.Channel}}, Usergroups: cfg.Usergroups()}
	if ch := cfg.Schedules.Channel; ch != "" && ch != cfg.Approvals.Channel {
		need.Channels = append(need.Channels, slack.NeedChannel{Key: "schedules.channel", ID: ch})
	}
	sctx, cancel := context.WithTimeout(ctx, checkSlackTimeout)
	defer cancel()
	sl := slack.New(slack.Config{AppToken: app, BotToken: tok, APIURL: getenv(env, "SLACK_API_URL", "")})
	for _, f := range sl.Preflight(sctx, need) {
		if f.Problem {
			problem("%s", f.Text)
		} else {
			fmt.Fprintln(w, f.Text)
		}
	}
}

// checkParallel is how many connectors check discovers at once: enough that a thousand take
// seconds, not minutes, when a few do not answer (each may take its whole 20s), few enough
// not to open a thousand connections at once.
const checkParallel = 8

// checkLine is one line of check's report on a connector; a problem counts against the verdict.
type checkLine struct {
	text    string
	problem bool
}

// checkConnectors discovers every configured connector, checkParallel at a time, each within
// 20s, and returns their reports in config order. While it runs it shows how far it got on
// progress, when that is a terminal.
func checkConnectors(ctx context.Context, cfg *config.Config, progress *os.File) [][]checkLine {
	out := make([][]checkLine, len(cfg.Connectors))
	show := isTerminal(progress)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, checkParallel)
	for i, cn := range cfg.Connectors {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = checkConnector(ctx, cfg, i, cn)
			if show {
				mu.Lock()
				done++
				fmt.Fprintf(progress, "\rchecked %d/%d", done, len(cfg.Connectors))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if show && len(cfg.Connectors) > 0 {
		fmt.Fprintln(progress)
	}
	return out
}

// checkConnector is the report on one connector: its server, and what its account may do.
func checkConnector(ctx context.Context, cfg *config.Config, i int, cn config.Connector) []checkLine {
	if cn.Type == "atlas" {
		return checkAtlas(ctx, cfg, i, cn)
	}
	m, err := newConnector(cn, cfg)
	if err != nil {
		return []checkLine{{fmt.Sprintf("%s: config: connectors[%d]: %v", cn.Name, i, err), true}}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	info, err := m.Discover(cctx)
	cancel()
	closeAll(map[string]bot.Mongo{cn.Name: m})
	if err != nil {
		return []checkLine{{fmt.Sprintf("%s: cannot check: %v", cn.Name, err), true}}
	}
	out := []checkLine{{text: fmt.Sprintf("%s: %s", cn.Name, info)}}
	for _, a := range info.Privileges.Actions {
		if a.Allowed != "" {
			out = append(out, checkLine{text: fmt.Sprintf("  %-32s %s", a.Action, a.Allowed)})
		} else {
			out = append(out, checkLine{fmt.Sprintf("  %-32s cannot: missing %s", a.Action, strings.Join(a.Missing, ", ")), true})
		}
	}
	return out
}

// checkAtlas checks an Atlas connector without changing anything: the credential reads the
// project's users, may manage them (a create Atlas refuses either way, telling which), and
// the cluster answers a login, when its address is configured.
func checkAtlas(ctx context.Context, cfg *config.Config, i int, cn config.Connector) []checkLine {
	client, err := atlas.New(atlas.Config{BaseURL: cn.BaseURL, ProjectID: cn.ProjectID, ClientID: cn.ClientID, ClientSecret: cn.ClientSecret,
		PublicKey: cn.PublicKey, PrivateKey: cn.PrivateKey, Timeout: 20 * time.Second})
	if err != nil {
		return []checkLine{{fmt.Sprintf("%s: config: connectors[%d]: %v", cn.Name, i, err), true}}
	}
	users, err := client.Users(ctx)
	if err != nil {
		return []checkLine{{fmt.Sprintf("%s: cannot check: %v", cn.Name, err), true}}
	}
	out := []checkLine{{text: fmt.Sprintf("%s: MongoDB Atlas project %s, %d database users; users it creates reach %s", cn.Name, cn.ProjectID, len(users), strings.Join(cn.Clusters, ", "))}}
	switch ok, err := client.CanManage(ctx); {
	case err != nil:
		out = append(out, checkLine{fmt.Sprintf("  manage database users         cannot tell: %v", err), true})
	case ok:
		out = append(out, checkLine{text: "  manage database users         yes"})
	default:
		out = append(out, checkLine{"  manage database users         cannot: give the credential Project Owner, or Project Database Access Admin, on the project", true})
	}
	out = append(out, checkLine{text: "  lock-user, unlock-user        not on Atlas: it has no login restriction for database users"})
	if cn.ConnectionString.Empty() {
		out = append(out, checkLine{text: "  verify on the cluster         no connection_string: changes are reported as accepted by Atlas, not as live"})
	}
	return out
}

// checkData reports on the journal in BOT_DATA_DIR without creating anything. A data folder
// that does not exist yet is normal before the first start, so it is said, not counted.
func checkData(env func(string) (string, bool), w io.Writer, problem func(string, ...any)) {
	dir := dataDir(env)
	abs, _ := filepath.Abs(dir)
	st, err := openStore(env, dir, store.Options{ReadOnly: true, LockTimeout: time.Second})
	switch {
	case err == nil:
		defer st.Close()
		if v, err := st.Schema(); err != nil {
			problem("data: %s: %v", st.Path(), err)
		} else {
			fmt.Fprintf(w, "data: %s readable (schema %d)\n", st.Path(), v)
		}
		// Records the bot will not act on are a problem to see before serve starts.
		if vf, err := st.Verify(); err == nil {
			switch {
			case vf.Unadopted:
				problem("data: the journal was written by an older version and awaits adoption: serve refuses it until you run mongobot journal adopt (look at it first with mongobot journal list)")
			case len(vf.Suspects) > 0:
				problem("data: %d journal record(s) fail their authentication (written or changed outside the bot), and the bot will not act on them: run mongobot journal verify", len(vf.Suspects))
			default:
				fmt.Fprintf(w, "data: %d records, each written by the bot\n", vf.Checked)
			}
		}
	case errors.Is(err, store.ErrNoJournal):
		fmt.Fprintf(w, "data: no journal in %s yet: serve creates it there on its first start (set BOT_DATA_DIR if the bot keeps it elsewhere)\n", abs)
	case errors.Is(err, store.ErrLocked):
		fmt.Fprintf(w, "data: %s is in use by a running bot\n", filepath.Join(abs, store.FileName))
	default:
		problem("data: %v", err)
	}
}

// openJournal opens the journal in BOT_DATA_DIR for reading: it creates nothing, and a missing
// folder or file is one sentence naming the folder and BOT_DATA_DIR. what is the verb the
// caller is for ("read the journal"), used when a running bot holds the file.
func openJournal(env func(string) (string, bool), what string) (*store.Store, error) {
	dir := dataDir(env)
	st, err := openStore(env, dir, store.Options{ReadOnly: true, LockTimeout: 2 * time.Second})
	if err == nil {
		return st, nil
	}
	abs, _ := filepath.Abs(dir)
	switch {
	case errors.Is(err, store.ErrNoJournal):
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("there is no data folder %s: set BOT_DATA_DIR to the folder the bot keeps its journal in (default ./data)", abs)
		}
		return nil, fmt.Errorf("there is no journal in %s (no %s): set BOT_DATA_DIR to the folder the bot keeps its journal in (default ./data)", abs, store.FileName)
	case errors.Is(err, store.ErrLocked):
		return nil, fmt.Errorf("%w: stop the bot to %s", err, what)
	}
	return nil, err
}

// journal reads the journal file; it works while the bot is stopped, and says so clearly when
// a running bot holds the file.
func journal(args []string, env func(string) (string, bool), stdin io.Reader, w, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"journal needs list, show <id>, export, backup, restore <file>, verify, adopt, reindex or compact; run mongobot journal --help for its usage"}
	}
	sub := args[0]
	switch sub {
	case "backup":
		return journalBackup(args[1:], env, w, stderr)
	case "restore":
		return journalRestore(args[1:], env, stdin, w)
	case "verify":
		return journalVerify(args[1:], env, w, stderr)
	case "adopt":
		return journalAdopt(args[1:], env, stdin, w)
	}
	maxArgs := map[string]int{"list": 1, "show": 1, "export": 0, "reindex": 0, "compact": 0}
	n, ok := maxArgs[sub]
	if !ok {
		return usageError{fmt.Sprintf("journal %s: use list, show <id>, export, backup, restore <file>, verify, adopt, reindex or compact; run mongobot journal --help for its usage", sub)}
	}
	fs := flags("journal " + sub)
	yes := fs.Bool("yes", false, "go ahead without asking (compact)")
	since := fs.String("since", "", "only events after this cursor, or at or after this date or this long ago (export)")
	cursorFile := fs.String("cursor-file", "", "resume after the cursor kept in this file, and keep the last one there (export)")
	if err := parse(fs, args[1:], n); err != nil {
		return err
	}
	// Each flag belongs to one subcommand: given to another, it is a mistake, not ignored.
	var wrong string
	fs.Visit(func(f *flag.Flag) {
		if (f.Name == "yes") != (sub == "compact") || (f.Name == "since" || f.Name == "cursor-file") != (sub == "export") {
			wrong = f.Name
		}
	})
	if wrong != "" {
		return usageError{fmt.Sprintf("journal %s: flag provided but not defined: -%s; run mongobot journal %s --help for its usage", sub, wrong, sub)}
	}
	switch sub {
	case "reindex":
		return reindex(env, w)
	case "compact":
		return compact(env, *yes, stdin, w)
	}
	var from store.ExportOptions
	if *since != "" {
		var err error
		if from, err = parseExportSince(*since, time.Now()); err != nil {
			return usageError{fmt.Sprintf("journal export --since: %v; run mongobot journal export --help for its usage", err)}
		}
	}
	var cursors *cursorFileOf
	if *cursorFile != "" {
		var err error
		if cursors, err = readCursorFile(*cursorFile); err != nil {
			return err
		}
		if cursors.found {
			// The file's cursor is where the last export stopped: --since only chooses
			// where the first one starts.
			from = store.ExportOptions{After: cursors.after, ByCursor: true}
		}
	}
	args = append([]string{sub}, fs.Args()...)
	// The arguments are checked before the file is opened: a typo is a usage error even
	// while the bot runs.
	count := 20
	var id uint64
	switch {
	case sub == "list" && len(args) > 1:
		var err error
		if count, err = strconv.Atoi(args[1]); err != nil || count < 1 {
			return usageError{fmt.Sprintf("journal list: %q is not a count; run mongobot journal list --help for its usage", args[1])}
		}
	case sub == "show" && len(args) < 2:
		return usageError{"journal show needs an id; run mongobot journal show --help for its usage"}
	case sub == "show":
		var err error
		if id, err = strconv.ParseUint(strings.TrimPrefix(args[1], "#"), 10, 64); err != nil {
			return usageError{fmt.Sprintf("journal show: %q is not an id; run mongobot journal show --help for its usage", args[1])}
		}
	}
	st, closeJournal, err := openReader(env, stderr)
	if err != nil {
		return err
	}
	defer closeJournal()
	switch sub {
	case "list":
		es, _, err := st.History(0, count)
		if err != nil {
			return err
		}
		rs := newRecorder(st)
		for _, e := range es {
			rs.record(e).print(w)
		}
		if len(es) == 0 {
			fmt.Fprintln(w, "the journal is empty")
		}
		// What is listed is what the journal holds; say when some of it is not the bot's.
		if v, err := st.Verify(); err == nil && (v.Unadopted || len(v.Suspects) > 0) {
			if v.Unadopted {
				fmt.Fprintln(stderr, "note: this journal was written by an older version and awaits adoption (mongobot journal adopt); the bot acts on none of it until then")
			} else {
				fmt.Fprintf(stderr, "note: %d record(s) of this journal fail their authentication and the bot will not act on them: run mongobot journal verify\n", len(v.Suspects))
			}
		}
	case "show":
		e, err := st.Entry(id)
		if err != nil {
			return fmt.Errorf("journal entry #%d: %v", id, err)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(newRecorder(st).record(e))
	case "export":
		return export(st, from, cursors, w)
	}
	return nil
}

// record is a journal entry as the journal commands show it: the entry as stored, plus what an
// audit reader needs that the entry only points to: its request's reason and votes (with
// their times), and who rolled it back. The entry's own fields keep their names, so a record
// decodes as a store.Entry.
type record struct {
	store.Entry
	// Reason is the requester's --reason, from the request (a schedule's run: the
	// schedule's request), or from the entry's arguments for a rollback run at once.
	Reason string `json:"reason,omitempty"`
	// Votes are the approvers' decisions with their times, lapsed ones marked.
	Votes []store.Vote `json:"votes,omitempty"`
	// RolledBackByUser and RolledBackAt say who started the rollback RolledBackBy, and when.
	RolledBackByUser string    `json:"rolled_back_by_user,omitempty"`
	RolledBackAt     time.Time `json:"rolled_back_at,omitzero"`
}

// recorder makes records, reading each request and rollback entry once.
type recorder struct {
	st       *store.Store
	requests map[uint64]*store.Request
	entries  map[uint64]*store.Entry
}

func newRecorder(st *store.Store) *recorder {
	return &recorder{st: st, requests: map[uint64]*store.Request{}, entries: map[uint64]*store.Entry{}}
}

// record joins e with its request and its rollback. A request or entry that is gone (purged)
// leaves its fields empty: the entry is still shown.
func (rc *recorder) record(e store.Entry) record {
	// The token is the Roll back button's proof of origin: it stays in the journal, not in
	// the audit trail handed around.
	e.Token = ""
	r := record{Entry: e, Reason: e.Args["reason"]}
	if e.RequestID != 0 {
		req, ok := rc.requests[e.RequestID]
		if !ok {
			if got, err := rc.st.Request(e.RequestID); err == nil {
				req = &got
			}
			rc.requests[e.RequestID] = req
		}
		if req != nil {
			if req.Reason != "" {
				r.Reason = req.Reason
			}
			r.Votes = req.Votes
		}
	}
	if e.RolledBackBy != 0 {
		rb, ok := rc.entries[e.RolledBackBy]
		if !ok {
			if got, err := rc.st.Entry(e.RolledBackBy); err == nil {
				rb = &got
			}
			rc.entries[e.RolledBackBy] = rb
		}
		if rb != nil {
			r.RolledBackByUser, r.RolledBackAt = rb.Requester, rb.CreatedAt
		}
	}
	return r
}

// print writes r for journal list: its line, then one indented line per fact it has.
func (r record) print(w io.Writer) {
	what := r.Args["user"]
	if role := r.Args["role"]; role != "" {
		what += " " + role
	}
	line := fmt.Sprintf("#%d  %s  %-10s  %s %s on %s  by %s", r.ID, stamp(r.CreatedAt), r.State, r.Action, what, r.Connector, r.Requester)
	if via := r.Args["via"]; via != "" {
		line += " (via " + via + ", not verified by Slack)"
	}
	if r.Error != "" {
		line += "  error: " + r.Error
	}
	// Names and errors come from people and from servers: shown, never obeyed by the terminal.
	fmt.Fprintln(w, printable(line))
	fact := func(k, v string) { fmt.Fprintf(w, "      %-15s %s\n", k+":", printable(v)) }
	if r.Reason != "" {
		fact("reason", strconv.Quote(r.Reason))
	}
	if len(r.Votes) > 0 {
		var vs []string
		for _, v := range r.Votes {
			s := fmt.Sprintf("%s %s at %s", v.User, map[bool]string{true: "approved", false: "denied"}[v.Approve], stamp(v.At))
			if v.Lapsed {
				s += " (no longer an approver; not counted)"
			}
			vs = append(vs, s)
		}
		fact("votes", strings.Join(vs, ", "))
	} else if len(r.Approvers) > 0 {
		fact("approvers", strings.Join(r.Approvers, ", "))
	}
	if r.AutoApproved != "" {
		fact("approved by", "policy: "+r.AutoApproved)
	}
	if r.ScheduleID != 0 {
		s := fmt.Sprintf("#%d", r.ScheduleID)
		if !r.Slot.IsZero() {
			s += ", slot " + stamp(r.Slot)
		}
		fact("schedule", s)
	}
	if r.RollbackOf != 0 {
		fact("rollback of", fmt.Sprintf("#%d", r.RollbackOf))
	}
	if r.RolledBackBy != 0 {
		s := fmt.Sprintf("#%d", r.RolledBackBy)
		if r.RolledBackByUser != "" {
			s += fmt.Sprintf(", by %s at %s", r.RolledBackByUser, stamp(r.RolledBackAt))
		}
		fact("rolled back by", s)
	}
	if !r.UndoAt.IsZero() {
		// Set only while the end is still to come: the obligation an operator checks after a
		// restore or a failover.
		fact("ends", stamp(r.UndoAt)+" (temporary: the bot undoes it then)")
	}
	if r.Server != "" {
		fact("server", r.Server)
	}
	for _, d := range r.Deliveries {
		s := d.Target + ": " + d.State
		switch {
		case d.State == store.DeliveryVerified:
			s += " (" + strings.TrimPrefix(strings.TrimSpace(d.Version+"; "+d.Verified), "; ") + ")"
		case d.Error != "":
			s += fmt.Sprintf(" (%d failed attempt(s), the last: %s)", d.Tries, d.Error)
		}
		fact("delivery", s)
	}
	if r.AwaitsDelivery() {
		fact("next attempt", stamp(r.DeliverAt))
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// printable shows control characters (escape sequences, bells, carriage returns), invalid
// UTF-8 and bidirectional overrides escaped, so that text from the journal cannot move the
// cursor, clear the screen or reorder a line on the reader's terminal.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && len(s[i:]) > 0 && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			if r < 0x100 {
				fmt.Fprintf(&b, "\\x%02x", r)
			} else {
				fmt.Fprintf(&b, "\\u%04x", r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// export writes the audit trail (docs/audit.md): every decision and every journal entry,
// one JSON line each, oldest first, chosen by o; then, with a cursor file, keeps the last
// cursor in it.
func export(st *store.Store, o store.ExportOptions, cursors *cursorFileOf, w io.Writer) error {
	last, err := st.ExportAudit(w, o)
	if err != nil || cursors == nil {
		return err
	}
	return cursors.keep(last)
}

// parseExportSince reads export's --since: a cursor (the "cursor" of the last line a reader
// kept: only later events are written), or a time as parseSince reads it.
func parseExportSince(v string, now time.Time) (store.ExportOptions, error) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return store.ExportOptions{After: n, ByCursor: true}, nil
	}
	t, err := parseSince(v, now)
	if err != nil {
		return store.ExportOptions{}, fmt.Errorf("%v, or a cursor (the \"cursor\" of the last line you kept: 1234)", err)
	}
	return store.ExportOptions{Since: t}, nil
}

// parseSince reads export's --since: a date (2026-01-01, midnight UTC), a time in RFC 3339
// (2026-01-01T00:00:00Z), or a span back from now (30d, 12h), which may be longer than a year:
// an archive is often of everything the retention is about to delete.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return time.Time{}, fmt.Errorf("%q is not a date (2026-01-01), a time (2026-01-01T00:00:00Z) or a span (30d)", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if parsed, err := time.ParseDuration(v); err == nil && parsed > 0 {
		d = parsed
	} else {
		return time.Time{}, fmt.Errorf("%q is not a date (2026-01-01), a time (2026-01-01T00:00:00Z) or a span (30d)", v)
	}
	return now.Add(-d), nil
}

// compact rewrites the journal file to give back the space of purged records. It needs the
// bot stopped, and, since it replaces the file, asks like rekey: --yes, or "yes" typed at a
// terminal; until then nothing is written.
func compact(env func(string) (string, bool), yes bool, stdin io.Reader, w io.Writer) error {
	// Look first, read-only: a missing journal is reported, not created, and a running bot
	// is named before anything is asked.
	ro, err := openJournal(env, "compact the journal")
	if err != nil {
		return err
	}
	path := ro.Path()
	ro.Close()
	before := int64(0)
	if fi, err := os.Stat(path); err == nil {
		before = fi.Size()
	}
	fmt.Fprintf(w, "compact will rewrite %s (%s) into a new file holding only its live records, and put it in its place;\n"+
		"take a backup (or mongobot journal export) first if you want one.\n", path, size(before))
	if err := confirm(stdin, w, yes, "journal compact", "replaces the journal file"); err != nil {
		return err
	}
	st, err := store.Compact(dataDir(env), 2*time.Second)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%v: stop the bot to compact the journal", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "compacted %s: %s before, %s after\n", path, size(st.Before), size(st.After))
	return nil
}

// size is a file size for people: 8.0 MiB, 64 KiB, 512 bytes.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// reindex rebuilds the journal's indexes from its records and says what it rebuilt. It
// changes no record, and a running bot would rebuild the same at its next start anyway, so it
// asks nothing; like the other journal commands it needs the bot stopped, and creates nothing
// where there is no journal.
func reindex(env func(string) (string, bool), w io.Writer) error {
	// Look first, read-only: a missing journal is reported, not created, and a running bot
	// is named before anything is opened for writing.
	ro, err := openJournal(env, "rebuild the indexes")
	if err != nil {
		return err
	}
	noKeyFile := ro.KeyFile() == ""
	ro.Close()
	opts := store.Options{LockTimeout: 2 * time.Second}
	if noKeyFile && getenv(env, "BOT_ENCRYPTION_KEY", "") == "" {
		// A writable open without a key makes a key file; reindex seals nothing, so a key
		// used for this open only leaves the data folder as it was.
		opts.Key, _ = store.ParseKey(store.NewKey())
	}
	st, err := openStore(env, dataDir(env), opts)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%v: stop the bot to rebuild the indexes", err)
		}
		return err
	}
	stats, err := st.Reindex()
	if err != nil {
		st.Close()
		return err
	}
	fmt.Fprintf(w, "rebuilt the indexes of %s from %d entries and %d requests:\n", st.Path(), stats.Entries, stats.Requests)
	for _, ix := range stats.Indexes {
		fmt.Fprintf(w, "  %-20s %d key(s)\n", ix.Name, ix.Keys)
	}
	return st.Close()
}

// confirm asks the person at a terminal to type yes before command, which does, goes ahead;
// given yes (--yes) it asks nothing, and with no terminal and no --yes it refuses.
func confirm(stdin io.Reader, w io.Writer, yes bool, command, does string) error {
	if yes {
		return nil
	}
	if !isTerminal(stdin) {
		return usageError{fmt.Sprintf("%s %s, so it needs --yes to go ahead; nothing was changed", command, does)}
	}
	fmt.Fprint(w, "Type yes to go ahead: ")
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("%s was not confirmed; nothing was changed", command)
	}
	return nil
}
