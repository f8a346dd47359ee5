package connector_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"mongobot/connector"
	"mongobot/secret"
)

// TestMain says first what the suite runs against: the emulator and FerretDB always, and the
// real server of MONGODB_URI, named with its version and topology, when it is set.
func TestMain(m *testing.M) {
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		fmt.Println("connector tests: against the emulator (mongotest) and FerretDB v1.24.2; MONGODB_URI is not set, so the real-MongoDB subtests skip and say so")
		os.Exit(m.Run())
	}
	c, err := connector.New(connector.Config{Name: "MONGODB_URI", URI: secret.New(uri)})
	if err != nil {
		fmt.Println("connector tests: MONGODB_URI:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	info, err := c.Discover(ctx)
	cancel()
	c.Close(context.Background())
	if err != nil {
		fmt.Println("connector tests: MONGODB_URI does not answer:", err)
		os.Exit(2)
	}
	fmt.Printf("connector tests: against the emulator, FerretDB v1.24.2 and MONGODB_URI: %s, logged in as %s\n", info, info.Privileges.User)
	os.Exit(m.Run())
}
