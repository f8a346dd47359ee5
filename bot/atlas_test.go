package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mongobot/bot"
	"mongobot/bot/slack/slacktest"
	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/connector/atlas/atlastest"
	"mongobot/secret"
)

// The whole flow once on an Atlas connector: the Administration API stand-in (validating
// every call against Atlas's OpenAPI document) in front of the emulator as its cluster.
// Request → approval → PATCH → verified live on the cluster over the wire → Roll back; a
// rotation revealed and logged in with; what Atlas cannot do refused before anyone votes.
func TestAtlasEndToEnd(t *testing.T) {
	var api *atlastest.Server
	e := newEnv(t, envOptions{extra: func(e *env) map[string]bot.Mongo {
		if api == nil {
			api = atlastest.New(t, atlastest.Options{ClientID: "mdb_sa_id_e2e", ClientSecret: "mdb_sa_sk_e2e-secret-value",
				Cluster: e.emu, ApplyDelay: 100 * time.Millisecond})
		}
		client, err := atlas.New(atlas.Config{BaseURL: api.URL(), ProjectID: atlastest.ProjectID, ClientID: "mdb_sa_id_e2e",
			ClientSecret: secret.New("mdb_sa_sk_e2e-secret-value")})
		if err != nil {
			t.Fatal(err)
		}
		wire, err := connector.New(connector.Config{Name: "cluster0", URI: secret.New(e.uri)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = wire.Close(context.Background()) })
		return map[string]bot.Mongo{"prod-atlas": atlas.NewConnector(atlas.ConnectorConfig{Name: "prod-atlas", Client: client,
			Clusters: []string{"cluster0"}, Verify: wire, VerifyEvery: 20 * time.Millisecond, VerifyWithin: 10 * time.Second})}
	}})
	e.secrets = append(e.secrets, "mdb_sa_sk_e2e-secret-value")
	e.command(dev, "create-readonly-user prod-atlas app shop")
	card := e.card("Request #1", "create-readonly-user `app@admin`", "on prod-atlas")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*", "accepted by Atlas; live on the cluster after")
	e.reveal(dev, "app")

	e.command(dev, "grant-role prod-atlas app readWrite@shop")
	card = e.card("Request #2", "grant-role `app@admin` role `readWrite@shop` on prod-atlas")
	e.click(alice, card, bot.TextApprove)
	res := e.result(card, "*Done*", "accepted by Atlas; live on the cluster after", "usersInfo shows it")
	if !e.state("app").HasRole(connector.Role{Name: "readWrite", DB: "shop"}) {
		t.Fatal("the cluster does not have the grant the bot reported live")
	}
	e.click(dev, res, bot.TextRollback)
	rc := e.approveRollback(2, alice)
	e.result(rc, "*Done*", "rollback of #2")
	if e.state("app").HasRole(connector.Role{Name: "readWrite", DB: "shop"}) {
		t.Fatal("the rollback did not reach the cluster")
	}

	e.command(dev, "rotate-password prod-atlas app")
	card = e.card("rotate-password `app@admin` on prod-atlas")
	e.click(alice, card, bot.TextApprove)
	e.result(card, "*Done*", "logged in as app@admin with the new password")
	if err := e.login("app", e.reveal(dev, "app")); err != nil {
		t.Fatalf("the revealed password does not log in to the cluster: %v", err)
	}

	// Atlas fails a grant with a 502 after applying it: the bot does not call it failed; the
	// periodic check reads the user back and settles it as done, with its Roll back.
	api.FailNext("PATCH", 502, true)
	e.command(dev, "grant-role prod-atlas app readWrite@shop")
	card = e.card("Request #5", "grant-role `app@admin` role `readWrite@shop` on prod-atlas")
	e.click(alice, card, bot.TextApprove)
	e.private(dev, "Journal #5", "stopped answering in the middle")
	e.checkUntil("the outcome", slacktest.Containing("Journal #5", "it is now done"))
	waitUntil(t, "the cluster to have the grant Atlas applied", func() bool {
		return e.state("app").HasRole(connector.Role{Name: "readWrite", DB: "shop"})
	})

	e.command(dev, "lock-user prod-atlas app")
	e.private(dev, "no login restriction for database users", "Nothing was requested")
	e.command(dev, "rotate-password prod-atlas app --kill-sessions")
	e.private(dev, "no way to end a user's sessions", "Nothing was requested")
	for _, c := range api.Calls() {
		if strings.Contains(c, "mdb_sa_sk") {
			t.Fatal("a secret in a call's path")
		}
	}
	e.checkNoSecrets()
}
