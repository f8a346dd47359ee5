package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/internal/syncbuf"
)

// botProc is cmd/bot serve running as its own process against the Slack stand-in.
type botProc struct {
	cmd     *exec.Cmd
	sl      *slacktest.Server
	metrics string // the /metrics address
	// startup is from exec to the Socket Mode connection being open (the bot answers from then).
	startup time.Duration
	stderr  *syncbuf.Buffer
}

// buildBot builds cmd/bot into dir.
func buildBot(dir string) (string, error) {
	bin := filepath.Join(dir, "bot")
	build := exec.Command("go", "build", "-o", bin, "./cmd/bot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bot (run scalebench from the repository root): %w", err)
	}
	return bin, nil
}

// startBot writes config (YAML) beside data and runs bin serve on them with env, and waits
// until the bot's socket is connected to sl.
func startBot(bin, data, config string, env []string, sl *slacktest.Server) (*botProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(filepath.Dir(data), "bot.yaml")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		return nil, err
	}
	config += fmt.Sprintf("http: {listen: '127.0.0.1:%d'}\nlog: {level: warn}\n", port)
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return nil, err
	}
	p := &botProc{sl: sl, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), stderr: &syncbuf.Buffer{}}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(os.Environ(), append(env, "SLACK_APP_TOKEN="+sl.AppToken, "SLACK_BOT_TOKEN="+sl.BotToken,
		"SLACK_API_URL="+sl.URL(), "BOT_CONFIG="+cfg, "BOT_DATA_DIR="+data)...)
	p.cmd.Stderr = p.stderr
	before := sl.Connections()
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	if err := sl.Wait(60*time.Second, "the bot to connect", func(s *slacktest.Server) bool { return s.Connections() > before && s.Connected() }); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\nbot's log:\n%s", err, p.stderr.String())
	}
	p.startup = time.Since(start)
	return p, nil
}

// stop ends the bot as SIGINT does (it finishes work in flight) and waits for it.
func (p *botProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// rss is the process's resident set now and its peak (VmRSS, VmHWM), in bytes.
func (p *botProc) rss() (now, peak int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1, -1
	}
	kb := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n * 1024
	}
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			now = kb(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			peak = kb(v)
		}
	}
	return now, peak
}

// cpu is the CPU time the process has used (user and system), from /proc/<pid>/stat.
func (p *botProc) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// The fields after the command name (which may hold spaces) start after its ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

// gauge reads one metric of the bot's /metrics.
func (p *botProc) gauge(name string) (float64, error) {
	resp, err := http.Get(p.metrics)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /metrics", name)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// reply sends one slash command as user (who sends nothing else) and returns the time from
// sending it to the bot's first answer to user being posted (as the stand-in received it).
func reply(sl *slacktest.Server, user, text string) (time.Duration, error) {
	from := sl.CallCount()
	sent := time.Now()
	if _, err := sl.SlashCommand(user, "C0OPS", "/mongo", text); err != nil {
		return 0, err
	}
	var at time.Time
	err := sl.Wait(60*time.Second, "an answer to "+user, func(s *slacktest.Server) bool {
		for _, c := range s.CallsSince(from) {
			if (c.Method == "chat.postEphemeral" && c.Args.Get("user") == user) || (c.Method == "chat.postMessage" && c.Args.Get("channel") == "D"+user) {
				at = c.At
				return true
			}
		}
		return false
	})
	return at.Sub(sent), err
}

// acks sends n commands (texts in turn), at most inflight of them unacknowledged, and
// returns their ack latencies once every command has been answered (so that what is measured
// next does not wait behind them).
func acks(sl *slacktest.Server, n, inflight int, user func(int) string, texts ...string) ([]time.Duration, error) {
	from := sl.CallCount()
	ids := make([]string, 0, n)
	acked := 0
	for i := range n {
		for ; len(ids)-acked >= inflight; acked++ {
			if _, err := sl.WaitAck(ids[acked], 30*time.Second); err != nil {
				return nil, err
			}
		}
		id, err := sl.SlashCommand(user(i), "C0OPS", "/mongo", texts[i%len(texts)])
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	for ; acked < len(ids); acked++ {
		if _, err := sl.WaitAck(ids[acked], 30*time.Second); err != nil {
			return nil, err
		}
	}
	answered := func(s *slacktest.Server) bool {
		k := 0
		for _, c := range s.CallsSince(from) {
			if c.Method == "chat.postEphemeral" {
				k++
			}
		}
		return k >= n
	}
	if err := sl.Wait(2*time.Minute, "every command answered", answered); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, len(ids))
	for i, id := range ids {
		lat[i], _ = sl.AckLatency(id)
	}
	return lat, nil
}

// quantile is the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
func mib(b int64) string        { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
