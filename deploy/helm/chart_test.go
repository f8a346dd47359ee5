package helm

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"mongobot/config"
	"mongobot/delivery/kubesecret/kubetest"
)

const chartDir = "mongobot"

// srv is the real API server every object is applied to, started by the first test that
// needs one (starting takes seconds; rendering needs none) and stopped by TestMain.
var (
	srv     *kubetest.Server
	srvErr  error
	srvOnce sync.Once
	srvDir  string
)

// server returns the shared API server, failing the test (never skipping it) without one: a
// green run must mean the chart met a real API server.
func server(t *testing.T) *kubetest.Server {
	t.Helper()
	srvOnce.Do(func() {
		if srvDir, srvErr = os.MkdirTemp("", "helm-chart-test-"); srvErr == nil {
			srv, srvErr = kubetest.Start(srvDir)
		}
	})
	if srvErr != nil {
		t.Fatalf("the chart's tests need a real kube-apiserver: %v", srvErr)
	}
	return srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if code != 0 {
			fmt.Fprint(os.Stderr, srv.Logs())
		}
		srv.Stop()
	}
	if srvDir != "" {
		os.RemoveAll(srvDir)
	}
	os.Exit(code)
}

// object is one rendered Kubernetes object: its text as the template wrote it, and decoded.
type object struct {
	Kind, Name, Namespace string
	Text                  string
	Raw                   map[string]any
}

// rendered is one rendering of the chart.
type rendered struct {
	Objects []object
	Notes   string
}

// installOrder is the order Helm installs these kinds in, which the plain manifests follow.
var installOrder = []string{"ServiceAccount", "Secret", "ConfigMap", "Role", "RoleBinding", "Service", "StatefulSet", "PodDisruptionBudget"}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// parseValues reads values as helm reads a -f file.
func parseValues(t *testing.T, text string) map[string]any {
	t.Helper()
	v, err := loader.LoadValues(strings.NewReader(text))
	if err != nil {
		t.Fatalf("values: %v\n%s", err, text)
	}
	return v
}

// render renders the chart as `helm install mongobot -n ns` would, schema validation included.
func render(t *testing.T, values map[string]any, ns string) (*rendered, error) {
	t.Helper()
	ch := loadChart(t)
	opts := common.ReleaseOptions{Name: "mongobot", Namespace: ns, Revision: 1, IsInstall: true}
	top, err := util.ToRenderValues(ch, values, opts, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, top)
	if err != nil {
		return nil, err
	}
	r := &rendered{}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		text := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.Notes = text
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for doc := range strings.SplitSeq("\n"+text, "\n---") {
			var raw map[string]any
			if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if raw == nil {
				continue // only comments, or nothing
			}
			o := object{Text: strings.TrimSpace(doc), Raw: raw}
			o.Kind, _ = raw["kind"].(string)
			md, _ := raw["metadata"].(map[string]any)
			o.Name, _ = md["name"].(string)
			o.Namespace, _ = md["namespace"].(string)
			if o.Kind == "" || o.Name == "" || o.Namespace == "" {
				t.Fatalf("%s: an object without kind, name or namespace:\n%s", name, doc)
			}
			r.Objects = append(r.Objects, o)
		}
	}
	slices.SortStableFunc(r.Objects, func(a, b object) int {
		return slices.Index(installOrder, a.Kind) - slices.Index(installOrder, b.Kind)
	})
	return r, nil
}

func mustRender(t *testing.T, values map[string]any, ns string) *rendered {
	t.Helper()
	r, err := render(t, values, ns)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	return r
}

// all returns the objects of a kind.
func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one decodes the only object of its type's kind, failing on any field the type lacks (a
// misspelt field would otherwise be dropped by the API server without a word).
func one[T any](t *testing.T, r *rendered, kind string) *T {
	t.Helper()
	objs := r.all(kind)
	if len(objs) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(objs), kind)
	}
	return decode[T](t, objs[0])
}

func decode[T any](t *testing.T, o object) *T {
	t.Helper()
	b, err := json.Marshal(o.Raw)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	v := new(T)
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
	}
	return v
}

// The values of the cases. Dummy credentials: long enough to be recognisable if they leaked.
const secretValues = `
secret:
  data:
    SLACK_APP_TOKEN: xapp-1-dummy-app-token-0001
    SLACK_BOT_TOKEN: xoxb-dummy-bot-token-0002
    BOT_ENCRYPTION_KEY: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
    PROD_MONGO_URI: mongodb://bot:dummy-mongo-password-0003@mongo-0.mongo:27017/?tls=true
`

const minimalConfig = `
config:
  connectors:
    - name: prod
      connection_string: ${PROD_MONGO_URI}
  approvals:
    channel: C0APPROVALS
    approvers: {usergroups: [S0DBAS]}
`

const haValues = minimalConfig + `    # (approvals above)
  store:
    etcd:
      endpoints: [https://etcd-0.etcd:2379, https://etcd-1.etcd:2379, https://etcd-2.etcd:2379]
      username: mongobot
      password: ${ETCD_PASSWORD}
      tls: {ca_file: /etc/etcd/ca.pem}
replicas: 3
extraVolumes:
  - name: etcd-ca
    secret: {secretName: etcd-client-tls}
extraVolumeMounts:
  - {name: etcd-ca, mountPath: /etc/etcd, readOnly: true}
` + secretValues + `    ETCD_PASSWORD: dummy-etcd-password-0004
`

// rbacValues has kubernetes_secret targets in the release's namespace and in another.
func rbacValues(ns, other string) string {
	return minimalConfig + fmt.Sprintf(`  deliveries:
    - connector: prod
      user: orders
      targets:
        - kubernetes_secret: {namespace: %[1]s, name: orders-db}
    - connector: prod
      user: billing
      targets:
        - kubernetes_secret: {namespace: %[2]s, name: billing-db}
        - kubernetes_secret: {namespace: %[1]s, name: reports-db}
    - connector: prod
      strategy: alternating
      users: [app-a, app-b]
      targets:
        - kubernetes_secret: {namespace: %[1]s, name: orders-db, password_key: alt}
`, ns, other) + secretValues
}

// goodCase is a values case that must render, and be accepted by the API server.
type goodCase struct {
	name, ns, values string
	others           []string // other namespaces the chart writes into
	check            func(t *testing.T, r *rendered)
}

func goodCases() []goodCase {
	return []goodCase{
		{name: "single", ns: "case-single", values: minimalConfig + secretValues, check: checkSingle},
		{name: "ha", ns: "case-ha", values: haValues, check: checkHA},
		{name: "existing", ns: "case-existing", values: "existingSecret: mongobot-env\nexistingConfigMap: my-bot-config\n", check: checkExisting},
		{name: "rbac", ns: "case-rbac", values: rbacValues("case-rbac", "case-rbac-other"), others: []string{"case-rbac-other"},
			check: func(t *testing.T, r *rendered) {
				checkRoles(t, r, map[string][]string{"case-rbac": {"orders-db", "reports-db"}, "case-rbac-other": {"billing-db"}})
			}},
	}
}

func TestRender(t *testing.T) {
	for _, c := range goodCases() {
		t.Run(c.name, func(t *testing.T) {
			values := parseValues(t, c.values)
			r := mustRender(t, values, c.ns)
			checkPod(t, r, values)
			checkConfig(t, r, values)
			c.check(t, r)
			if !strings.Contains(r.Notes, "mongobot") {
				t.Errorf("NOTES.txt: %q", r.Notes)
			}
			// helm lint's own rules, on the same values: chart file, values, templates.
			l := lint.RunAll(chartDir, values, c.ns)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				}
			}
		})
	}
}

// TestRefused: values that cannot work are refused at rendering, with a message saying why.
func TestRefused(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"replicas without etcd", minimalConfig + secretValues + "replicas: 3\n", "replicas is 3 but config.store.etcd is not set"},
		{"bare port", minimalConfig + "  http: {listen: \":9090\"}\n", `config.http.listen is ":9090": in a pod it must be 0.0.0.0:9090`},
		{"loopback", minimalConfig + "  http: {listen: \"127.0.0.1:9090\"}\n", "in a pod it must be 0.0.0.0:9090"},
		{"no config", "", "config is empty"},
		{"misspelt value", minimalConfig + "replica: 3\n", "additional properties 'replica' not allowed"},
		{"replicas zero", minimalConfig + "replicas: 0\n", "minimum"},
		{"secret key not a variable", minimalConfig + "secret: {data: {slack-token: x}}\n", "slack-token"},
		// Credentials written into the config would be readable in the ConfigMap.
		{"password in a connection string", strings.Replace(minimalConfig, "${PROD_MONGO_URI}", "mongodb://admin:hunter2@db:27017/", 1), "config.connectors[0].connection_string holds a password"},
		{"literal client secret", "config:\n  connectors: [{name: cloud, type: atlas, project_id: p, cluster: c, client_id: i, client_secret: s3cret}]\n  approvals: {channel: C0APPROVALS, approvers: {usergroups: [S0DBAS]}}\n", "config.connectors[0].client_secret is written in the config"},
		{"literal etcd password", strings.Replace(haValues, "${ETCD_PASSWORD}", "s3cret", 1), "config.store.etcd.password is written in the config"},
		{"literal vault token", minimalConfig + "  deliveries: [{connector: prod, user: app, targets: [{vault_kv: {address: https://vault:8200, path: secret/data/x, auth: {token: hvs.literal}}}]}]\n", "vault_kv.auth.token is written in the config"},
		// The Role must not go to an account every pod of the namespace runs as.
		{"rbac on the default account", rbacValues("default", "other") + "serviceAccount: {create: false}\n", "default service account"},
		// Several replicas on a ConfigMap the chart cannot read: said to be on etcd, or refused.
		{"existing config map, replicas", "existingConfigMap: mine\nreplicas: 2\n" + secretValues, "set existingConfigMapHasEtcd: true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, parseValues(t, c.values), "default")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("rendering = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestConfigChecksum: a change of config changes the pod template, so the pods roll.
func TestConfigChecksum(t *testing.T) {
	sum := func(values string) string {
		sts := one[appsv1.StatefulSet](t, mustRender(t, parseValues(t, values), "default"), "StatefulSet")
		return sts.Spec.Template.Annotations["checksum/config"]
	}
	a, b := sum(minimalConfig), sum(minimalConfig+"  log: {level: debug}\n")
	if a == "" || a == b {
		t.Errorf("checksum/config %q then %q after a config change", a, b)
	}
}

func checkPod(t *testing.T, r *rendered, values map[string]any) {
	t.Helper()
	sts := one[appsv1.StatefulSet](t, r, "StatefulSet")
	pod := sts.Spec.Template.Spec
	ps := pod.SecurityContext
	if ps == nil || !is(ps.RunAsNonRoot) || val(ps.RunAsUser) != 65532 || val(ps.RunAsGroup) != 65532 || val(ps.FSGroup) != 65532 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v", ps)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !is(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		!is(sc.RunAsNonRoot) || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext: %+v", sc)
	}
	if c.Image != "mongobot:"+loadChart(t).Metadata.AppVersion {
		t.Errorf("image %q, want the chart's appVersion as tag", c.Image)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 9090 {
		t.Errorf("ports: %+v", c.Ports)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("probe on %s: %+v", p.path, p.probe)
		}
	}
	if val(pod.TerminationGracePeriodSeconds) != 40 {
		t.Errorf("terminationGracePeriodSeconds %v", pod.TerminationGracePeriodSeconds)
	}
	if c.Resources.Requests.Memory().String() != "64Mi" || c.Resources.Limits.Memory().String() != "256Mi" || c.Resources.Requests.Cpu().String() != "50m" {
		t.Errorf("resources: %+v", c.Resources)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["config"] != "/etc/mongobot" || mounts["data"] != "/data" || mounts["tmp"] != "/tmp" {
		t.Errorf("volume mounts: %v", mounts)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["BOT_CONFIG"] != "/etc/mongobot/bot.yaml" || env["BOT_DATA_DIR"] != "/data" {
		t.Errorf("env: %v", env)
	}
	if pod.ServiceAccountName != "mongobot" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	labels := sts.Spec.Template.Labels
	if labels["app.kubernetes.io/name"] != "mongobot" || labels["app.kubernetes.io/instance"] != "mongobot" || labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("pod labels: %v", labels)
	}
	svc := one[corev1.Service](t, r, "Service")
	if svc.Spec.ClusterIP != "None" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "http" || sts.Spec.ServiceName != svc.Name {
		t.Errorf("service: %+v", svc.Spec)
	}
	// The token is mounted only when a target uses it.
	wantToken := len(r.all("Role")) > 0
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken != wantToken {
		t.Errorf("automountServiceAccountToken %v, want %v", pod.AutomountServiceAccountToken, wantToken)
	}
	if len(r.all("Role")) == 0 && len(r.all("RoleBinding")) > 0 {
		t.Error("RoleBindings without Roles")
	}
}

// checkConfig: the ConfigMap's bot.yaml is one the bot accepts, listens where the kubelet
// reaches it, and holds no secret value; the Secret holds them, and the pod reads it whole.
func checkConfig(t *testing.T, r *rendered, values map[string]any) {
	t.Helper()
	if values["existingConfigMap"] != nil {
		return
	}
	sv, _ := values["secret"].(map[string]any)
	data, _ := sv["data"].(map[string]any)
	cm := one[corev1.ConfigMap](t, r, "ConfigMap")
	text := cm.Data["bot.yaml"]
	for k, v := range data {
		if strings.Contains(r.all("ConfigMap")[0].Text, fmt.Sprint(v)) {
			t.Errorf("the value of %s is in the ConfigMap", k)
		}
	}
	env := func(name string) (string, bool) {
		v, ok := data[name]
		return fmt.Sprint(v), ok
	}
	c, err := config.Parse([]byte(text), env)
	if err != nil {
		t.Fatalf("the bot refuses the rendered bot.yaml: %v\n%s", err, text)
	}
	if c.HTTP.Listen != "0.0.0.0:9090" {
		t.Errorf("http.listen %q", c.HTTP.Listen)
	}
	sec := one[corev1.Secret](t, r, "Secret")
	if len(sec.Data) != len(data) {
		t.Errorf("the Secret has %d keys, values %d", len(sec.Data), len(data))
	}
	for k, v := range data {
		if string(sec.Data[k]) != fmt.Sprint(v) {
			t.Errorf("Secret key %s differs from secret.data", k)
		}
	}
	sts := one[appsv1.StatefulSet](t, r, "StatefulSet")
	from := sts.Spec.Template.Spec.Containers[0].EnvFrom
	if len(from) != 1 || from[0].SecretRef == nil || from[0].SecretRef.Name != sec.Name {
		t.Errorf("envFrom: %+v, want the Secret %s", from, sec.Name)
	}
	if sts.Spec.Template.Annotations["checksum/config"] == "" || sts.Spec.Template.Annotations["checksum/secret"] == "" {
		t.Errorf("pod annotations: %v", sts.Spec.Template.Annotations)
	}
}

func checkSingle(t *testing.T, r *rendered) {
	sts := one[appsv1.StatefulSet](t, r, "StatefulSet")
	if val(sts.Spec.Replicas) != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("replicas %v, %d volumeClaimTemplates", sts.Spec.Replicas, len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if pvc.Name != "data" || pvc.Spec.Resources.Requests.Storage().String() != "1Gi" || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{"ReadWriteOnce"}) {
		t.Errorf("the PVC template: %+v", pvc)
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			t.Errorf("a data volume besides the PVC: %+v", v)
		}
	}
	if len(r.all("PodDisruptionBudget")) > 0 || len(r.all("Role")) > 0 || sts.Spec.Template.Spec.Affinity != nil {
		t.Errorf("one replica with a PDB, a Role or an affinity: %v", kinds(r))
	}
}

func checkHA(t *testing.T, r *rendered) {
	sts := one[appsv1.StatefulSet](t, r, "StatefulSet")
	if val(sts.Spec.Replicas) != 3 || len(sts.Spec.VolumeClaimTemplates) != 0 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("replicas %v, %d volumeClaimTemplates, %s", sts.Spec.Replicas, len(sts.Spec.VolumeClaimTemplates), sts.Spec.PodManagementPolicy)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	if vols["data"].EmptyDir == nil || vols["etcd-ca"].Secret == nil {
		t.Errorf("volumes: %+v", vols)
	}
	pdb := one[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "mongobot" {
		t.Errorf("PDB: %+v", pdb.Spec)
	}
	aff := sts.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" ||
		len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
		t.Errorf("affinity: %+v", aff)
	}
}

func checkExisting(t *testing.T, r *rendered) {
	if len(r.all("ConfigMap")) > 0 || len(r.all("Secret")) > 0 {
		t.Errorf("a ConfigMap or Secret rendered beside existing ones: %v", kinds(r))
	}
	sts := one[appsv1.StatefulSet](t, r, "StatefulSet")
	pod := sts.Spec.Template.Spec
	from := pod.Containers[0].EnvFrom
	if len(from) != 1 || from[0].SecretRef == nil || from[0].SecretRef.Name != "mongobot-env" {
		t.Errorf("envFrom: %+v", from)
	}
	for _, v := range pod.Volumes {
		if v.Name == "config" && (v.ConfigMap == nil || v.ConfigMap.Name != "my-bot-config") {
			t.Errorf("config volume: %+v", v)
		}
	}
	if _, ok := sts.Spec.Template.Annotations["checksum/config"]; ok {
		t.Error("a checksum of a config the chart cannot see")
	}
}

// checkRoles: one Role per namespace, granting get and update on exactly want's Secrets (and
// create, unnamed, only when asked), bound to the bot's service account.
func checkRoles(t *testing.T, r *rendered, want map[string][]string) {
	t.Helper()
	roles, bindings := r.all("Role"), r.all("RoleBinding")
	if len(roles) != len(want) || len(bindings) != len(want) {
		t.Fatalf("%d Roles, %d RoleBindings, want %d of each", len(roles), len(bindings), len(want))
	}
	for _, o := range roles {
		role := decode[rbacv1.Role](t, o)
		rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: want[o.Namespace], Verbs: []string{"get", "update"}}}
		if fmt.Sprint(role.Rules) != fmt.Sprint(rules) {
			t.Errorf("Role in %s grants %+v, want %+v", o.Namespace, role.Rules, rules)
		}
	}
	for _, o := range bindings {
		b := decode[rbacv1.RoleBinding](t, o)
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != "mongobot-secrets" || len(b.Subjects) != 1 ||
			b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != "mongobot" || b.Subjects[0].Namespace != r.all("ServiceAccount")[0].Namespace {
			t.Errorf("RoleBinding in %s: %+v", o.Namespace, b)
		}
	}
}

// TestRBACOptions: extraSecrets add names; a target with a kubeconfig of its own needs nothing
// of the pod's account; rbac.create false, nothing. The chart has no way to grant create
// (which resourceNames cannot limit: any Secret, a service-account token Secret among them).
func TestRBACOptions(t *testing.T) {
	values := parseValues(t, rbacValues("apps", "billing")+`
rbac:
  extraSecrets: [{name: extra-db}, {namespace: third, name: third-db}]
`)
	checkRoles(t, mustRender(t, values, "apps"), map[string][]string{
		"apps": {"extra-db", "orders-db", "reports-db"}, "billing": {"billing-db"}, "third": {"third-db"},
	})
	values = parseValues(t, minimalConfig+`  deliveries:
    - connector: prod
      user: orders
      targets:
        - kubernetes_secret: {namespace: apps, name: orders-db, kubeconfig: /etc/kube/config}
`)
	if r := mustRender(t, values, "apps"); len(r.all("Role"))+len(r.all("RoleBinding")) > 0 {
		t.Errorf("RBAC for a target with its own kubeconfig: %v", kinds(r))
	}
	values = parseValues(t, rbacValues("apps", "billing")+"rbac: {create: false}\n")
	if r := mustRender(t, values, "apps"); len(r.all("Role"))+len(r.all("RoleBinding")) > 0 {
		t.Errorf("RBAC with rbac.create false: %v", kinds(r))
	}
}

// TestApply: every object of every case is accepted by the real API server (server-side
// apply, stored: admission and validation as in a cluster).
func TestApply(t *testing.T) {
	for _, c := range goodCases() {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, parseValues(t, c.values), c.ns)
			applyAll(t, r, append([]string{c.ns}, c.others...))
		})
	}
}

func applyAll(t *testing.T, r *rendered, namespaces []string) {
	t.Helper()
	srv := server(t)
	for _, ns := range namespaces {
		if err := srv.Namespace(ns); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range r.Objects {
		if err := apply(o); err != nil {
			t.Errorf("%s %s/%s refused: %v", o.Kind, o.Namespace, o.Name, err)
		}
	}
}

// rest is where each kind the chart emits lives in the API.
var rest = map[string]struct{ group, resource string }{
	"ConfigMap":           {"/api/v1", "configmaps"},
	"Secret":              {"/api/v1", "secrets"},
	"Service":             {"/api/v1", "services"},
	"ServiceAccount":      {"/api/v1", "serviceaccounts"},
	"StatefulSet":         {"/apis/apps/v1", "statefulsets"},
	"PodDisruptionBudget": {"/apis/policy/v1", "poddisruptionbudgets"},
	"Role":                {"/apis/rbac.authorization.k8s.io/v1", "roles"},
	"RoleBinding":         {"/apis/rbac.authorization.k8s.io/v1", "rolebindings"},
}

func objectPath(o object) (string, error) {
	p, ok := rest[o.Kind]
	if !ok {
		return "", fmt.Errorf("kind %s is not in the test's table", o.Kind)
	}
	return fmt.Sprintf("%s/namespaces/%s/%s/%s", p.group, o.Namespace, p.resource, o.Name), nil
}

// apply sends o as a server-side apply, as the admin.
func apply(o object) error {
	path, err := objectPath(o)
	if err != nil {
		return err
	}
	body, err := json.Marshal(o.Raw) // JSON is YAML
	if err != nil {
		return err
	}
	code, answer, err := call(srv.AdminToken(), http.MethodPatch, path+"?fieldManager=mongobot-chart-test&force=true", "application/apply-patch+yaml", body)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusCreated {
		var st struct{ Message string }
		json.Unmarshal(answer, &st)
		return fmt.Errorf("%d: %s", code, st.Message)
	}
	return nil
}

// client is an HTTP client for the API server, trusting its CA only.
var client = sync.OnceValue(func() *http.Client {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(srv.CAFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
})

// call sends one request with a bearer token and returns the status and the body.
func call(token, method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func kinds(r *rendered) []string {
	var k []string
	for _, o := range r.Objects {
		k = append(k, o.Kind+" "+o.Namespace+"/"+o.Name)
	}
	return k
}

func is(b *bool) bool { return b != nil && *b }

func val[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
