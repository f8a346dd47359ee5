package connector_test

import (
	"strings"
	"testing"

	"mongobot/connector"
	"mongobot/connector/mongotest"
)

// The driver speaks to MongoDB 4.4 and later only: an older server is refused with a sentence
// that names its release, before any user command is sent.
func TestOlderThan44IsRefusedClearly(t *testing.T) {
	for _, v := range []string{"4.2.25", "4.0.28", "3.6.23"} {
		t.Run(v, func(t *testing.T) {
			emu := startEmulator(t, mongotest.Options{Version: v})
			m := connect(t, server{uri: emu.URI()})
			_, err := m.Discover(ctx(t))
			mustKind(t, err, connector.ErrTooOld)
			want := "MongoDB " + v[:3] + ", which is older than 4.4, the oldest this bot supports"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("sentence %q does not say %q", err, want)
			}
			_, err = m.GrantRole(ctx(t), connector.UserRef{User: "app", DB: "admin"}, connector.Role{Name: "read", DB: "shop"})
			mustKind(t, err, connector.ErrTooOld)
			for _, c := range []string{"usersInfo", "grantRolesToUser", "buildInfo"} {
				if n := emu.Count(c); n != 0 {
					t.Errorf("%s sent %d times to a server the driver cannot use", c, n)
				}
			}
		})
	}
}

// hello exists from 4.4.2: discovery of 4.4.0 and 4.4.1 falls back to isMaster, and every
// release this bot supports is discovered with the wire version it advertises.
func TestDiscoverEverySupportedRelease(t *testing.T) {
	for _, c := range []struct {
		version string
		wire    int
		hello   bool
	}{{"4.4.0", 9, false}, {"4.4.1", 9, false}, {"4.4.29", 9, true}, {"5.0.31", 13, true},
		{"6.0.20", 17, true}, {"7.0.14", 21, true}, {"8.0.4", 25, true}} {
		t.Run(c.version, func(t *testing.T) {
			emu := startEmulator(t, mongotest.Options{Version: c.version, Topology: mongotest.Primary})
			m := connect(t, server{uri: emu.URI()})
			info, err := m.Discover(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if info.Version != c.version || info.MaxWireVersion != c.wire || info.Topology != connector.TopologyPrimary {
				t.Errorf("discovered %+v; want %s, wire %d, a primary", info, c.version, c.wire)
			}
			// Without the fallback, discovery of 4.4.0 fails: the emulator answers hello with
			// CommandNotFound, as those releases do.
			if c.hello && emu.Count("hello") == 0 {
				t.Error("hello was never sent to a release that has it")
			}
			// Every action works on every release: the commands and options the connector
			// sends exist there (showCustomData, for one, is refused before 5.0).
			u := connector.UserRef{User: "app", DB: "admin"}
			if _, _, err := m.CreateReadOnlyUser(ctx(t), u, "shop", nil); err != nil {
				t.Fatalf("create: %v", err)
			}
			steps := []func() error{
				func() error {
					_, err := m.GrantRole(ctx(t), u, connector.Role{Name: "readWrite", DB: "shop"})
					return err
				},
				func() error { _, err := m.RevokeRole(ctx(t), u, connector.Role{Name: "read", DB: "shop"}); return err },
				func() error { _, err := m.LockUser(ctx(t), u); return err },
				func() error { _, err := m.UnlockUser(ctx(t), u, nil); return err },
				func() error {
					_, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, KillSessions: true})
					return err
				},
				func() error {
					_, _, err := m.RotatePassword(ctx(t), connector.RotateOptions{User: u, LogoutAll: true})
					return err
				},
				func() error { _, err := m.Users(ctx(t), ""); return err },
				func() error { _, err := m.DropUser(ctx(t), u, nil); return err },
			}
			for i, f := range steps {
				if err := f(); err != nil {
					t.Fatalf("step %d on %s: %v", i, c.version, err)
				}
			}
		})
	}
}
