package helm

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The plain manifests for people without Helm, rendered from the chart with the values beside
// them, release mongobot in namespace mongobot.
var golden = []struct{ manifest, values string }{
	{"single.yaml", "values-single.yaml"},
	{"ha.yaml", "values-ha.yaml"},
}

const goldenDir = "../kubernetes"

// TestPlainManifests re-renders deploy/kubernetes/*.yaml and fails on any difference
// (UPDATE_GOLDEN=1 rewrites them), then applies them to the real API server.
func TestPlainManifests(t *testing.T) {
	for _, g := range golden {
		t.Run(g.manifest, func(t *testing.T) {
			values, err := os.ReadFile(filepath.Join(goldenDir, g.values))
			if err != nil {
				t.Fatal(err)
			}
			r := mustRender(t, parseValues(t, string(values)), "mongobot")
			var b strings.Builder
			fmt.Fprintf(&b, `# Generated from the Helm chart deploy/helm/mongobot with deploy/kubernetes/%s
# (release mongobot, namespace mongobot): do not edit. To regenerate after changing the chart
# or the values:  UPDATE_GOLDEN=1 go test ./deploy/helm/ -run TestPlainManifests
`, g.values)
			for _, o := range r.Objects {
				b.WriteString("---\n" + o.Text + "\n")
			}
			path := filepath.Join(goldenDir, g.manifest)
			if os.Getenv("UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			have, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(have) != b.String() {
				t.Errorf("%s differs from the chart's rendering: run UPDATE_GOLDEN=1 go test ./deploy/helm/ -run TestPlainManifests", path)
			}
			// Both manifests are one release in one namespace, in different modes; a
			// StatefulSet's volumeClaimTemplates cannot change, so the other mode's goes first,
			// as the chart's README tells people switching modes.
			code, _, err := call(server(t).AdminToken(), http.MethodDelete, "/apis/apps/v1/namespaces/mongobot/statefulsets/mongobot", "", nil)
			if err != nil || code != http.StatusOK && code != http.StatusNotFound {
				t.Fatalf("deleting the StatefulSet of the other mode: %d, %v", code, err)
			}
			applyAll(t, r, []string{"mongobot"})
		})
	}
}
