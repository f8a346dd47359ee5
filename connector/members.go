package connector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Some effects of a user change stay on the server that made them:
//
//   - Each mongos caches users and reads them again only every
//     userCacheInvalidationIntervalSecs (30 s by default;
//     user_cache_invalidator_job_parameters.idl). Until then another router goes on accepting
//     the old password, ignoring a lock, or granting a revoked role; the router that made the
//     change drops its own copy at once (cluster_user_management_commands.cpp). After every
//     change the connector sends invalidateUserCache to every router it knows (each its own
//     direct connection): it needs invalidateUserCache on the cluster, which
//     userAdminAnyDatabase and hostManager have.
//   - killAllSessions ends sessions only on the mongod that receives it
//     (kill_all_sessions_command.cpp, killSessionsLocal); on a mongos it reaches every shard
//     member (kill_sessions_remote.cpp) but not the other routers. So the connector sends it to
//     every data-bearing member of a replica set and to every router.
//
// Which servers there are comes from the driver's own discovery (its topology description):
// the routers of the seed list (or of a mongodb+srv record), the members a replica set's hello
// lists as hosts and passives (arbiters hold no sessions; hidden members are not listed, and
// so not reached).

// deployment is what the driver last knew of the servers behind the connection string.
type deployment struct {
	sharded bool     // routers: every server is a mongos
	hosts   []string // routers, or data-bearing replica set members; none for a standalone
}

// watchTopology keeps the driver's latest description of the deployment.
func (m *Mongo) watchTopology(e *event.TopologyDescriptionChangedEvent) {
	d := deployment{}
	servers := e.NewDescription.Servers
	if e.NewDescription.Kind == "Sharded" || slices.ContainsFunc(servers, func(s event.ServerDescription) bool { return s.Kind == "Mongos" }) {
		d.sharded = true
		for _, s := range servers {
			d.hosts = append(d.hosts, s.Addr.String())
		}
	} else {
		seen := map[string]bool{}
		add := func(h string) {
			if h != "" && !seen[h] {
				seen[h] = true
				d.hosts = append(d.hosts, h)
			}
		}
		for _, s := range servers {
			if s.Kind == "RSPrimary" || s.Kind == "RSSecondary" {
				add(s.Addr.String())
				for _, h := range append(slices.Clone(s.Hosts), s.Passives...) {
					add(h)
				}
			}
		}
	}
	slices.Sort(d.hosts)
	m.topo.Store(&d)
}

func (m *Mongo) deployment() deployment {
	if d := m.topo.Load(); d != nil {
		return *d
	}
	return deployment{}
}

// hostResult is one server's answer to a command sent to each.
type hostResult struct {
	host string
	err  error
}

// eachHost sends cmd to admin on every host, each over its own direct connection, at once.
func (m *Mongo) eachHost(ctx context.Context, hosts []string, cmd bson.D) []hostResult {
	base := m.clientOptions(nil)
	out := make([]hostResult, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		out[i].host = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The connection string's options that concern one server carry over: TLS,
			// credentials, compression, the dialer, the server API. (A SOCKS5 proxy given in
			// the connection string does not: the driver keeps it internal.)
			o := options.Client().SetHosts([]string{h}).SetDirect(true).SetAppName("mongobot").
				SetServerSelectionTimeout(m.cfg.ServerSelectionTimeout).SetConnectTimeout(m.cfg.ServerSelectionTimeout).
				SetTimeout(m.cfg.CommandTimeout)
			o.TLSConfig, o.Auth, o.Compressors, o.ZlibLevel, o.ZstdLevel = base.TLSConfig, base.Auth, base.Compressors, base.ZlibLevel, base.ZstdLevel
			o.Dialer, o.ServerAPIOptions, o.HTTPClient = base.Dialer, base.ServerAPIOptions, base.HTTPClient
			o.DisableOCSPEndpointCheck, o.DisableCertificateRevocationCheck = base.DisableOCSPEndpointCheck, base.DisableCertificateRevocationCheck
			c, err := mongo.Connect(o)
			if err != nil {
				out[i].err = m.mapErr(err, fmt.Sprintf("%s on %s", cmd[0].Key, h), m.name)
				return
			}
			defer c.Disconnect(context.WithoutCancel(ctx))
			cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
			defer cancel()
			out[i].err = m.mapErr(c.Database("admin").RunCommand(cctx, cmd).Err(), fmt.Sprintf("%s on %s", cmd[0].Key, h), m.name)
		}()
	}
	wg.Wait()
	return out
}

// refreshRouters makes every router of a sharded cluster read users again, so the change ch
// describes holds on each at once; on other deployments it does nothing.
func (m *Mongo) refreshRouters(ctx context.Context, ch *Change) {
	d := m.deployment()
	if !d.sharded || len(d.hosts) == 0 {
		return
	}
	var done []string
	for _, r := range m.eachHost(ctx, d.hosts, bson.D{{Key: "invalidateUserCache", Value: 1}}) {
		if r.err != nil {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("router %s did not refresh its user cache (%s): it may go on using the user as it was for up to 30 s (userCacheInvalidationIntervalSecs)", r.host, sentenceOf(r.err)))
			continue
		}
		done = append(done, r.host)
	}
	if len(done) > 0 {
		ch.Notes = append(ch.Notes, fmt.Sprintf("user cache refreshed on %d of %d routers (invalidateUserCache: %s): the change holds on each now", len(done), len(d.hosts), strings.Join(done, ", ")))
	}
}

// killSessions ends u's sessions, in-flight operations and cursors on every server that holds
// them: each data-bearing member of a replica set, each router of a sharded cluster, or the
// one server. Its failures are warnings: it runs after the change it accompanies was applied.
func (m *Mongo) killSessions(ctx context.Context, ch *Change) {
	u := ch.User
	cmd := bson.D{{Key: "killAllSessions", Value: bson.A{bson.D{{Key: "user", Value: u.User}, {Key: "db", Value: u.DB}}}}}
	d := m.deployment()
	if len(d.hosts) == 0 {
		if err := m.run(ctx, "admin", cmd, nil, "user "+u.String()); err != nil {
			ch.Warnings = append(ch.Warnings, "ending the user's sessions failed: "+sentenceOf(err))
			return
		}
		ch.Notes = append(ch.Notes, "in-flight operations and cursors of "+u.String()+" were ended (killAllSessions)")
		return
	}
	what := "members"
	if d.sharded {
		what = "routers (each reaches every shard)"
	}
	var done []string
	for _, r := range m.eachHost(ctx, d.hosts, cmd) {
		if r.err != nil {
			ch.Warnings = append(ch.Warnings, fmt.Sprintf("ending the user's sessions on %s failed (%s): they run on there until they end", r.host, sentenceOf(r.err)))
			continue
		}
		done = append(done, r.host)
	}
	if len(done) > 0 {
		ch.Notes = append(ch.Notes, fmt.Sprintf("in-flight operations and cursors of %s were ended (killAllSessions) on %d of %d %s: %s", u, len(done), len(d.hosts), what, strings.Join(done, ", ")))
	}
}

// sentenceOf is an error's sentence without the connector's prefix.
func sentenceOf(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Msg
	}
	return err.Error()
}

// Aftercare does, for a change found applied after its action was interrupted (and settled by
// the caller's reconciliation), what the action does after its write: every router reads users
// again, and, with killSessions, the user's sessions end everywhere. It returns the notes and
// warnings to record with it.
func (m *Mongo) Aftercare(ctx context.Context, u UserRef, killSessions bool) []string {
	ch := Change{User: u}
	m.refreshRouters(ctx, &ch)
	if killSessions {
		m.killSessions(ctx, &ch)
	}
	return append(ch.Notes, ch.Warnings...)
}
