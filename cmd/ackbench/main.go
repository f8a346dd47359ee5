// Command ackbench measures how fast the bot acknowledges Socket Mode envelopes under load.
//
// It builds cmd/bot, runs it as its own process against the Slack stand-in (bot/slacktest)
// and the MongoDB emulator, sends -n slash commands over the socket with -inflight of them
// unacknowledged at most, and reports the ack latency (p50, p99, max), the throughput of acks
// and of completed answers, and the bot process's peak RSS (VmHWM from /proc).
//
//	go run ./cmd/ackbench                # 2,000 commands, 50 in flight
//	go run ./cmd/ackbench -n 5000 -inflight 100 -rounds 5
//	ACKBENCH_TRACE=1 go run ./cmd/ackbench   # also list every ack slower than 4ms, by order
//
// Half the commands are read-only (help, requests), half create approval requests (a
// rotate-password that reads the user's state on the emulator and posts a card), so the acks
// are measured while the bot is busy with bbolt fsyncs, MongoDB reads and Web API calls. The
// goals on a 2-core machine: p99 ack under 10 ms, peak RSS under 60 MB.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

func main() {
	n := flag.Int("n", 2000, "slash commands to send")
	inflight := flag.Int("inflight", 50, "most commands sent and not yet acknowledged")
	rounds := flag.Int("rounds", 3, "times to run the whole benchmark, each with a fresh bot")
	flag.Parse()
	// The stand-in keeps every call it served; fewer collections in this process keep its
	// own pauses out of the latencies it measures. The bot's process is left as it ships.
	debug.SetGCPercent(400)
	var p99s []time.Duration
	for r := 1; r <= *rounds; r++ {
		fmt.Printf("round %d of %d\n", r, *rounds)
		p99, err := bench(*n, *inflight)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ackbench:", err)
			os.Exit(1)
		}
		p99s = append(p99s, p99)
	}
	sort.Slice(p99s, func(i, j int) bool { return p99s[i] < p99s[j] })
	fmt.Printf("p99 ack over %d rounds: median %s, best %s, worst %s (goal: < 10ms)\n",
		len(p99s), ms(p99s[len(p99s)/2]), ms(p99s[0]), ms(p99s[len(p99s)-1]))
}

// bench runs one round and returns its p99 ack latency.
func bench(n, inflight int) (time.Duration, error) {
	tmp, err := os.MkdirTemp("", "ackbench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bot")
	build := exec.Command("go", "build", "-o", bin, "./cmd/bot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("go build ./cmd/bot (run ackbench from the repository root): %w", err)
	}
	emu, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return 0, err
	}
	defer emu.Close()
	admin, err := connector.New(connector.Config{Name: "setup", URI: secret.New(emu.URI())})
	if err != nil {
		return 0, err
	}
	if _, _, err := admin.CreateUser(context.Background(), "create-user", connector.UserRef{User: "app", DB: "admin"}, nil); err != nil {
		return 0, err
	}
	admin.Close(context.Background())
	sl := slacktest.New()
	defer sl.Close()
	cfg := filepath.Join(tmp, "bot.yaml")
	os.WriteFile(cfg, []byte("connectors: [{name: prod, connection_string: '${MONGO_URI}'}]\n"+
		"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE, U0BOB]}}\nlog: {level: warn}\n"), 0o600)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "SLACK_APP_TOKEN="+sl.AppToken, "SLACK_BOT_TOKEN="+sl.BotToken, "SLACK_API_URL="+sl.URL(),
		"BOT_CONFIG="+cfg, "BOT_DATA_DIR="+filepath.Join(tmp, "data"), "MONGO_URI="+emu.URI())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	if err := sl.Wait(30*time.Second, "the bot to connect", func(s *slacktest.Server) bool { return s.Connected() }); err != nil {
		return 0, err
	}

	ids := make([]string, 0, n)
	start := time.Now()
	acked := 0
	for i := 0; i < n; i++ {
		// Keep at most inflight commands unacknowledged.
		for ; len(ids)-acked >= inflight; acked++ {
			if _, err := sl.WaitAck(ids[acked], 30*time.Second); err != nil {
				return 0, err
			}
		}
		text := "help"
		switch i % 4 {
		case 1:
			text = "requests"
		case 2, 3:
			text = "rotate-password prod app --reason load-" + strconv.Itoa(i)
		}
		id, err := sl.SlashCommand("U0DEV"+strconv.Itoa(i%20), "C0OPS", "/mongo", text)
		if err != nil {
			return 0, err
		}
		ids = append(ids, id)
	}
	for ; acked < len(ids); acked++ {
		if _, err := sl.WaitAck(ids[acked], 30*time.Second); err != nil {
			return 0, err
		}
	}
	ackTime := time.Since(start)
	// Every command gets an answer: an ephemeral reply, and a card for each request.
	answers := func(s *slacktest.Server) int {
		k := 0
		for _, c := range s.Calls() {
			if c.Method == "chat.postEphemeral" && c.Error == "" {
				k++
			}
		}
		return k
	}
	if err := sl.Wait(5*time.Minute, "every answer", func(s *slacktest.Server) bool { return answers(s) >= n }); err != nil {
		return 0, fmt.Errorf("%w (%d of %d answered)", err, answers(sl), n)
	}
	doneTime := time.Since(start)
	peak := peakRSS(cmd.Process.Pid)

	lat := make([]time.Duration, len(ids))
	for i, id := range ids {
		lat[i], _ = sl.AckLatency(id)
	}
	if os.Getenv("ACKBENCH_TRACE") != "" {
		for i, l := range lat {
			if l > 4*time.Millisecond {
				fmt.Printf("slow ack #%d: %s\n", i, ms(l))
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("ackbench: %d slash commands over Socket Mode, %d in flight, bot as its own process (stand-in Slack, emulator MongoDB)\n", n, inflight)
	fmt.Printf("ack latency    p50 %s   p99 %s   max %s   (goal: p99 < 10ms)\n", ms(q(0.50)), ms(q(0.99)), ms(lat[len(lat)-1]))
	fmt.Printf("throughput     %.0f acks/s; %.0f commands/s fully answered (%d requests created)\n",
		float64(n)/ackTime.Seconds(), float64(n)/doneTime.Seconds(), n/2)
	fmt.Printf("bot peak RSS   %s   (goal: < 60 MB)\n", peak)
	return q(0.99), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// peakRSS reads the process's high-water resident set size from /proc.
func peakRSS(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return fmt.Sprintf("%.1f MB", float64(kb)/1024)
		}
	}
	return "unknown"
}
