package observe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the bot's Prometheus metrics.
type Metrics struct {
	reg       *prometheus.Registry
	commands  *prometheus.CounterVec
	decisions *prometheus.CounterVec
	actions   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// New registers the bot's metrics (and the Go runtime's) in a registry of their own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mongobot_commands_total",
			Help: "Slash commands received, by verb (\"invalid\" for ones that did not parse)."}, []string{"verb"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mongobot_approvals_total",
			Help: "Approval requests decided, by outcome: approved, auto_approved, denied, expired, cancelled."}, []string{"outcome"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mongobot_actions_total",
			Help: "Actions run on MongoDB, by connector, action and result (done, failed, unknown)."}, []string{"connector", "action", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mongobot_action_duration_seconds",
			Help: "Time from the write-ahead journal entry to the recorded outcome.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)},
			[]string{"connector", "action"}),
	}
	m.reg.MustRegister(m.commands, m.decisions, m.actions, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Command counts a slash command.
func (m *Metrics) Command(verb string) { m.commands.WithLabelValues(verb).Inc() }

// Decision counts a decided request.
func (m *Metrics) Decision(outcome string) { m.decisions.WithLabelValues(outcome).Inc() }

// Action counts an action's outcome and how long it took.
func (m *Metrics) Action(connector, action, result string, d time.Duration) {
	m.actions.WithLabelValues(connector, action, result).Inc()
	m.latency.WithLabelValues(connector, action).Observe(d.Seconds())
}

// GaugeFunc adds a gauge read at each scrape (pending requests).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc adds a counter read at each scrape (Socket Mode reconnects).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// Handler serves /healthz, /readyz (ready says what is not ready) and /metrics.
func (m *Metrics) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}

// Address turns a configured listen value into an address: a bare port ("9090" or ":9090")
// listens on loopback only; a host must be given to listen elsewhere.
func Address(listen string) string {
	if !strings.Contains(listen, ":") {
		listen = ":" + listen
	}
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}

// Serve listens on addr until ctx ends. It returns once listening has failed or stopped.
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("http listener %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), done, nil
}
