package store

import (
	"bytes"
	"os"
	"testing"
	"time"

	"mongobot/ha"
	"mongobot/ha/etcdtest"
)

// BenchmarkBackupRestore measures a backup of a bbolt journal of 20,000 requests, its
// verification, and its restore into a new bbolt file and into etcd (one embedded member
// on loopback, max_txn_ops 128):
//
//	go test ./store -run '^$' -bench BackupRestore -benchtime 1x
func BenchmarkBackupRestore(b *testing.B) {
	const n = 20000
	src, err := Open(b.TempDir(), Options{NoSync: true, Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < n; i++ {
		if _, err := src.CreateRequest(Request{Action: "grant-role", Connector: "prod", Requester: "U0DEV",
			Args: map[string]string{"user": "app", "role": "read@shop"}, Reason: "a reason of ordinary length, for the approvers"}, "pending", "U0DEV"); err != nil {
			b.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "bench-restore-etcd-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cl, err := etcdtest.Launch(dir, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	c, err := ha.Dial(ha.ClientConfig{Endpoints: cl.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		t0 := time.Now()
		h, err := src.Backup(&buf, "")
		if err != nil {
			b.Fatal(err)
		}
		backup := time.Since(t0)
		t0 = time.Now()
		bk, err := ReadBackup(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		verify := time.Since(t0)
		t0 = time.Now()
		if err := RestoreFile(b.TempDir()+"/r", bk); err != nil {
			b.Fatal(err)
		}
		toBolt := time.Since(t0)
		t0 = time.Now()
		db := ha.NewKV(c, "/bench-restore/"+time.Now().Format("150405.000000")+"/", ha.KVOptions{Timeout: time.Minute})
		if err := RestoreShared(db, "etcd", bk, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		toEtcd := time.Since(t0)
		b.ReportMetric(float64(h.Records), "keys")
		b.ReportMetric(float64(buf.Len())/(1<<20), "MiB")
		b.ReportMetric(backup.Seconds(), "backup-s")
		b.ReportMetric(verify.Seconds(), "verify-s")
		b.ReportMetric(toBolt.Seconds(), "restore-bbolt-s")
		b.ReportMetric(toEtcd.Seconds(), "restore-etcd-s")
	}
}
