package connector_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"mongobot/connector"
	"mongobot/connector/mongotest"
	"mongobot/secret"
)

// BenchmarkRotate500 rotates 500 users with 8 in flight on a real FerretDB, through the
// connector and through the bare driver sending the same commands, and reports both rates and
// their ratio (connector time / bare time; goal <= 1.10).
//
// A connector rotation is: usersInfo (read the user), updateUser {pwd} with writeConcern,
// usersInfo (read it again), and a login with the new password on a fresh client. The bare
// baseline sends exactly those commands with the driver and nothing else, so the ratio is the
// connector's own cost. "bare-update-only" is the updateUser alone, for scale: the price of
// the reads and the verifying login.
//
//	go test ./connector -run '^$' -bench Rotate500 -benchtime 1x
func BenchmarkRotate500(b *testing.B) {
	const users, inFlight = 500, 8
	f, err := mongotest.StartFerretDB(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	admin, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Disconnect(ctx)
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("bench_%03d", i)
		if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "createUser", Value: names[i]},
			{Key: "pwd", Value: "initial-password-1"}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
			b.Fatal(err)
		}
	}
	m, err := connector.New(connector.Config{Name: "bench", URI: secret.New(f.URI())})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	pwd, _ := connector.PasswordPolicy{}.NewPassword()

	viaConnector := func(name string) error {
		_, _, err := m.RotatePassword(ctx, connector.RotateOptions{User: connector.UserRef{User: name, DB: "admin"}})
		return err
	}
	update := func(name string) error {
		return admin.Database("admin").RunCommand(ctx, bson.D{{Key: "updateUser", Value: name},
			{Key: "pwd", Value: pwd.Reveal()}, {Key: "digestPassword", Value: true},
			{Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: 10000}}}}).Err()
	}
	read := func(name string) error {
		return admin.Database("admin").RunCommand(ctx, bson.D{
			{Key: "usersInfo", Value: bson.D{{Key: "user", Value: name}, {Key: "db", Value: "admin"}}},
			{Key: "showAuthenticationRestrictions", Value: true}}).Err()
	}
	bare := func(name string) error {
		if err := read(name); err != nil {
			return err
		}
		if err := update(name); err != nil {
			return err
		}
		if err := read(name); err != nil {
			return err
		}
		c, err := mongo.Connect(options.Client().ApplyURI(f.URI()).SetAuth(options.Credential{Username: name, Password: pwd.Reveal(), AuthSource: "admin"}))
		if err != nil {
			return err
		}
		defer c.Disconnect(ctx)
		return c.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	}
	// Warm both paths (pools, first connections). Then an ABBA order over the two halves of
	// the users (connector, bare, bare, connector) so that drift as FerretDB's file grows
	// weighs on both sides alike.
	rotateAll(b, names[:inFlight], inFlight, viaConnector)
	rotateAll(b, names[:inFlight], inFlight, bare)
	total := map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		half := [][]string{names[:users/2], names[users/2:]}
		total["connector"] += rotateAll(b, half[0], inFlight, viaConnector)
		total["bare"] += rotateAll(b, half[0], inFlight, bare)
		total["bare"] += rotateAll(b, half[1], inFlight, bare)
		total["connector"] += rotateAll(b, half[1], inFlight, viaConnector)
		total["bare-update-only"] += rotateAll(b, names, inFlight, update)
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(users*b.N) / d.Seconds() }
	b.ReportMetric(rate(total["connector"]), "connector-rotations/s")
	b.ReportMetric(rate(total["bare"]), "bare-same-commands/s")
	b.ReportMetric(rate(total["bare-update-only"]), "bare-update-only/s")
	b.ReportMetric(total["connector"].Seconds()/total["bare"].Seconds(), "ratio")
}

// rotateAll runs f for every name with inFlight workers and returns the wall time.
func rotateAll(b *testing.B, names []string, inFlight int, f func(string) error) time.Duration {
	start := time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	var once sync.Once
	for w := 0; w < inFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := f(n); err != nil {
					once.Do(func() { b.Error(err) })
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}
