package connector_test

import (
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/connector/mongotest"
)

// Every command carries maxTimeMS within the connector's command timeout (the driver derives
// it from the client's timeout), so a server slow to run a change abandons it at that deadline
// instead of applying it after the bot has given up. (A command held up on the network before
// the server starts it can still land late: the bot's reconciliation covers that.)
func TestNoChangeLandsLate(t *testing.T) {
	emu := startEmulator(t, mongotest.Options{})
	setup := connect(t, server{uri: emu.URI()}) // 5s per command
	u := connector.UserRef{User: "app", DB: "admin"}
	if _, _, err := setup.CreateUser(ctx(t), "create-user", u, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"usersInfo", "createUser"} {
		if d := emu.MaxTime(c); d <= 0 || d > 5*time.Second {
			t.Errorf("%s carried maxTimeMS %v; want within the 5s command timeout", c, d)
		}
	}
	m := connect(t, server{uri: emu.URI()}, func(c *connector.Config) { c.CommandTimeout = time.Second })
	emu.Inject(mongotest.Fault{Command: "grantRolesToUser", Slow: 3 * time.Second, Times: 1})
	start := time.Now()
	_, err := m.GrantRole(ctx(t), u, connector.Role{Name: "read", DB: "shop"})
	mustKind(t, err, connector.ErrTimeout)
	if d := emu.MaxTime("grantRolesToUser"); d <= 0 || d > time.Second {
		t.Errorf("grantRolesToUser carried maxTimeMS %v", d)
	}
	// Past the fault's delay: the change never landed.
	for emu.Faulted() > 0 && time.Since(start) < 15*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	if n := emu.Count("grantRolesToUser"); n != 0 {
		t.Errorf("grantRolesToUser was applied %d times after the bot gave up", n)
	}
	if st, _ := m.State(ctx(t), u); st.HasRole(connector.Role{Name: "read", DB: "shop"}) {
		t.Error("the role was granted after the bot gave up")
	}
}
