package bot_test

import (
	"context"
	"errors"
	"net/http"
	"time"

	"mongobot/bot"
	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/connector/atlas/atlastest"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// The checker's second connector, "cloud": an Atlas project. Its Administration API is the
// stand-in (every request and response validated against Atlas's OpenAPI document), and its
// cluster another emulator, where accepted changes land after a delay. The ground truth is
// that cluster's record of what was applied after the setup: the journal must account for it
// as for prod's.

const (
	cloudClientID     = "mdb_sa_id_checker"
	cloudClientSecret = "mdb_sa_sk_checker-secret-value"
)

// cloudSide is what the checker keeps of the Atlas project across bot restarts.
type cloudSide struct {
	api     *atlastest.Server
	cluster *mongotest.Server
	base    uint64 // the cluster's applied changes up to here are the setup's
}

func newCloud(w *world) (*cloudSide, error) {
	cluster, err := mongotest.NewServer(mongotest.Options{})
	if err != nil {
		return nil, err
	}
	api := atlastest.New(w.t, atlastest.Options{ClientID: cloudClientID, ClientSecret: cloudClientSecret, Cluster: cluster, ApplyDelay: 30 * time.Millisecond})
	client, err := atlas.New(atlas.Config{BaseURL: api.URL(), ProjectID: atlastest.ProjectID, ClientID: cloudClientID, ClientSecret: secret.New(cloudClientSecret)})
	if err != nil {
		return nil, err
	}
	for _, u := range targets[:4] {
		du := atlas.DatabaseUser{DatabaseName: "admin", Username: u, Password: "setup-" + u + "-password",
			Roles: []atlas.Role{{DatabaseName: "shop", RoleName: "read"}}, Scopes: []atlas.Scope{{Name: "cluster0", Type: "CLUSTER"}}}
		if _, err := client.CreateUser(context.Background(), du); err != nil {
			return nil, err
		}
	}
	api.WaitApplied()
	w.secrets = append(w.secrets, cloudClientSecret, cluster.AdminPassword())
	return &cloudSide{api: api, cluster: cluster, base: uint64(len(cluster.Applied()))}, nil
}

// connector is the bot process's Atlas connector. Its HTTP transport dies with the process
// (alive), as its wire client does: a killed process sends Atlas nothing more.
func (c *cloudSide) connector(w *world, alive func() bool) (bot.Mongo, *connector.Mongo, error) {
	client, err := atlas.New(atlas.Config{BaseURL: c.api.URL(), ProjectID: atlastest.ProjectID, ClientID: cloudClientID,
		ClientSecret: secret.New(cloudClientSecret), RetryBase: 10 * time.Millisecond, Transport: deadTransport{alive}})
	if err != nil {
		return nil, nil, err
	}
	wire, err := connector.New(connector.Config{Name: "cloud-cluster0", URI: secret.New(c.cluster.URI()), ServerSelectionTimeout: 200 * time.Millisecond, CommandTimeout: 2 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	return atlas.NewConnector(atlas.ConnectorConfig{Name: "cloud", Client: client, Clusters: []string{"cluster0"}, Verify: wire,
		VerifyWithin: time.Second, VerifyEvery: 10 * time.Millisecond, Now: w.clock.Now}), wire, nil
}

func (c *cloudSide) close() {
	c.api.Close()
	c.cluster.Close()
}

type deadTransport struct{ alive func() bool }

var errDead = errors.New("the process is dead")

func (d deadTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !d.alive() {
		return nil, errDead
	}
	return http.DefaultTransport.RoundTrip(r)
}
