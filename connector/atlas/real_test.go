package atlas_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/connector/atlas"
	"mongobot/secret"
)

// With ATLAS_CLIENT_ID, ATLAS_CLIENT_SECRET and ATLAS_PROJECT_ID set (and optionally
// ATLAS_CLUSTER, ATLAS_BASE_URL), the connector runs against a real Atlas project: it
// creates a short-lived user (deleteAfterDate in an hour, so Atlas removes it even if the test
// dies), grants and revokes a role, rotates its password and drops it.
func TestRealAtlas(t *testing.T) {
	id, sec, project := os.Getenv("ATLAS_CLIENT_ID"), os.Getenv("ATLAS_CLIENT_SECRET"), os.Getenv("ATLAS_PROJECT_ID")
	if id == "" || sec == "" || project == "" {
		t.Skip("real Atlas: not run (ATLAS_CLIENT_ID, ATLAS_CLIENT_SECRET and ATLAS_PROJECT_ID are not set); the stand-in tests ran instead")
	}
	client, err := atlas.New(atlas.Config{BaseURL: os.Getenv("ATLAS_BASE_URL"), ProjectID: project, ClientID: id, ClientSecret: secret.New(sec)})
	if err != nil {
		t.Fatal(err)
	}
	cluster := os.Getenv("ATLAS_CLUSTER")
	if cluster == "" {
		cluster = "Cluster0"
	}
	t.Logf("real Atlas: project %s, cluster %s", project, cluster)
	ok, err := client.CanManage(t.Context())
	if err != nil || !ok {
		t.Fatalf("the service account may not manage users (%v, %v)", ok, err)
	}
	c := atlas.NewConnector(atlas.ConnectorConfig{Name: "real-atlas", Client: client, Clusters: []string{cluster}})
	u := connector.UserRef{User: fmt.Sprintf("mongobot-test-%d", time.Now().Unix()), DB: "admin"}
	if _, _, err := c.CreateAccessUser(t.Context(), u, []connector.Role{{Name: "read", DB: "mongobot_test"}},
		connector.AccessOwner{ChatUser: "test", Until: time.Now().Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := c.DropUser(t.Context(), u, nil); err != nil && !errors.Is(err, connector.ErrUserNotFound) {
			t.Errorf("cleanup: %v (Atlas deletes it within the hour anyway)", err)
		}
	}()
	rw := connector.Role{Name: "readWrite", DB: "mongobot_test"}
	g, err := c.GrantRole(t.Context(), u, rw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Undo(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.RotatePassword(t.Context(), connector.RotateOptions{User: u}); err != nil {
		t.Fatal(err)
	}
}
