package etcdtest

import (
	"net"
	"testing"
)

// A port taken between picking it and binding it is recognised, so Launch starts again.
func TestPortTakenIsRecognised(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = net.Listen("tcp", l.Addr().String())
	if err == nil || !portTaken(err) {
		t.Fatalf("binding a taken port: %v; portTaken says no", err)
	}
}
