// Package observe is the bot's optional HTTP listener: /healthz (the process is up), /readyz
// (Slack connected and the store open) and /metrics in Prometheus format. It is the only
// importer of the Prometheus client library; the bot counts through the small Metrics
// interface it declares, which *Metrics implements.
package observe
