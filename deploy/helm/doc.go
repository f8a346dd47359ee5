// Package helm holds no code: its tests prove the Helm chart in mongobot/ and the plain
// manifests in ../kubernetes rendered from it.
//
// The tests render the chart with helm v4's own Go packages (loader, schema validation,
// template engine, lint) for each kind of install, check what matters on the decoded objects,
// check the rendered bot.yaml with the bot's own config parser, apply every object to a real
// kube-apiserver (delivery/kubesecret/kubetest) with server-side apply, and prove the shipped
// RBAC there: the bot's service account may get and update exactly the Secrets its config
// names, and nothing else. This is the only package that imports helm.sh/helm/v4.
package helm
