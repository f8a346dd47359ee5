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
//
// With -ha it also runs, in each round, the bot on a journal shared on etcd (an embedded
// 3-member cluster in this process, as the tests use): one replica, then three replicas on
// one stand-in, each with its own socket, the envelopes spread across them. It reports the
// p99 of each beside the bbolt bot's in the same round, and their ratios.
//
//	go run ./cmd/ackbench -ha -n 2000 -rounds 3
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
	"mongobot/ha/etcdtest"
	"mongobot/secret"
)

// setup is how one bench runs the bot: on its bbolt file, or as replicas on etcd.
type setup struct {
	name     string
	replicas int
	etcd     bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ackbench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 2000, "slash commands to send")
	inflight := flag.Int("inflight", 50, "most commands sent and not yet acknowledged")
	rounds := flag.Int("rounds", 3, "times to run the whole benchmark, each with a fresh bot")
	withHA := flag.Bool("ha", false, "also run one and three replicas sharing a journal on etcd, in each round")
	flag.Parse()
	// The stand-in keeps every call it served; fewer collections in this process keep its
	// own pauses out of the latencies it measures. The bot's process is left as it ships.
	debug.SetGCPercent(400)
	tmp, err := os.MkdirTemp("", "ackbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bot")
	build := exec.Command("go", "build", "-o", bin, "./cmd/bot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/bot (run ackbench from the repository root): %w", err)
	}
	setups := []setup{{name: "bbolt, 1 bot"}}
	var cluster *etcdtest.Cluster
	if *withHA {
		if cluster, err = etcdtest.Launch(filepath.Join(tmp, "etcd"), 3); err != nil {
			return err
		}
		defer cluster.Close()
		setups = append(setups, setup{"etcd, 1 replica", 1, true}, setup{"etcd, 3 replicas", 3, true})
	}
	p99s := make([][]time.Duration, len(setups))
	for r := 1; r <= *rounds; r++ {
		// Each round begins with another setup, so that none always runs first or last.
		for k := range setups {
			i := (k + r - 1) % len(setups)
			su := setups[i]
			fmt.Printf("round %d of %d: %s\n", r, *rounds, su.name)
			p99, err := bench(bin, cluster, su, fmt.Sprintf("/ackbench/%d/%d/", r, i), *n, *inflight)
			if err != nil {
				return err
			}
			p99s[i] = append(p99s[i], p99)
		}
	}
	median := make([]time.Duration, len(setups))
	for i, su := range setups {
		ps := p99s[i]
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		median[i] = ps[len(ps)/2]
		fmt.Printf("%s: p99 ack over %d rounds: median %s, best %s, worst %s (goal: < 10ms)\n",
			su.name, len(ps), ms(median[i]), ms(ps[0]), ms(ps[len(ps)-1]))
	}
	if *withHA {
		fmt.Printf("ratios of the median p99s, same run: 3 replicas / 1 replica on etcd %.2f×; 3 replicas on etcd / bbolt %.2f×; 1 replica on etcd / bbolt %.2f×\n",
			ratio(median[2], median[1]), ratio(median[2], median[0]), ratio(median[1], median[0]))
	}
	return nil
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// bench runs one round of su and returns its p99 ack latency; replicas on etcd use the group
// under prefix.
func bench(bin string, cluster *etcdtest.Cluster, su setup, prefix string, n, inflight int) (time.Duration, error) {
	tmp, err := os.MkdirTemp("", "ackbench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
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
	sl.SetSockets(max(su.replicas, 1), nil)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(os.Interrupt)
			p.Wait()
		}
	}()
	for i := range max(su.replicas, 1) {
		name := fmt.Sprintf("r%d", i)
		conf := "connectors: [{name: prod, connection_string: '${MONGO_URI}'}]\n" +
			"approvals: {channel: C0APPROVALS, approvers: {users: [U0ALICE, U0BOB]}}\nlog: {level: warn}\n"
		token, env := sl.AppToken, []string{}
		if su.etcd {
			conf += fmt.Sprintf("store: {etcd: {endpoints: [%s], prefix: %s, replica: %s}}\n", strings.Join(cluster.Endpoints(), ", "), prefix, name)
			token = sl.AppTokenFor(name)
			env = append(env, "BOT_ENCRYPTION_KEY="+strings.Repeat("ab", 32)) // the same on every replica
		}
		cfg := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return 0, err
		}
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "SLACK_APP_TOKEN="+token, "SLACK_BOT_TOKEN="+sl.BotToken, "SLACK_API_URL="+sl.URL(),
			"BOT_CONFIG="+cfg, "BOT_DATA_DIR="+filepath.Join(tmp, name), "MONGO_URI="+emu.URI())
		cmd.Env = append(cmd.Env, env...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		procs = append(procs, cmd)
		if err := sl.Wait(30*time.Second, "the bot to connect", func(s *slacktest.Server) bool {
			return s.Connected() && (!su.etcd || s.ConnectedAs(name))
		}); err != nil {
			return 0, err
		}
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
	var peaks []string
	for _, p := range procs {
		peaks = append(peaks, peakRSS(p.Process.Pid))
	}

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
	fmt.Printf("ackbench: %d slash commands over Socket Mode, %d in flight, %s, each bot its own process (stand-in Slack, emulator MongoDB)\n", n, inflight, su.name)
	fmt.Printf("ack latency    p50 %s   p99 %s   max %s   (goal: p99 < 10ms)\n", ms(q(0.50)), ms(q(0.99)), ms(lat[len(lat)-1]))
	fmt.Printf("throughput     %.0f acks/s; %.0f commands/s fully answered (%d requests created)\n",
		float64(n)/ackTime.Seconds(), float64(n)/doneTime.Seconds(), n/2)
	fmt.Printf("bot peak RSS   %s   (goal: < 60 MB)\n", strings.Join(peaks, ", "))
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
