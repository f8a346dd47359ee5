package kubesecret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"mongobot/secret"
)

// Defaults for the zero values of Config.
const (
	DefaultUsernameKey = "username"
	DefaultPasswordKey = "password"
	DefaultTimeout     = 15 * time.Second
)

// What every write leaves on the Secret, so a person looking at it knows who wrote it and which
// journal entry explains why.
const (
	// AnnotationEntry is set on every write to the journal entry whose password the Secret holds.
	AnnotationEntry = "mongobot/journal-entry"
	// LabelManagedBy is set to "mongobot" on a Secret the bot creates. It is not added to a
	// Secret that already exists: that Secret's managed-by label, if any, belongs to whatever
	// created it (Helm, say), which would otherwise stop recognising it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// FieldManager is the name the API server records in managedFields for the bot's writes.
	FieldManager = "mongobot"
)

// Config says which Secret to write and how to reach the API server.
type Config struct {
	Namespace   string
	Name        string        // the Secret's name
	UsernameKey string        // the key in .data that holds the user name; default "username"
	PasswordKey string        // the key in .data that holds the password; default "password"
	Kubeconfig  string        // path to a kubeconfig; empty means the pod's own service account (rest.InClusterConfig)
	Context     string        // a context in Kubeconfig; empty means its current-context
	Timeout     time.Duration // for each call to the API server; default 15s
}

// Target is one Kubernetes Secret the bot delivers a credential to. It is safe for concurrent
// use, though two deliveries to the same Secret at once will make one of them conflict.
type Target struct {
	cfg   Config
	host  string // the API server's URL, for error messages
	token secret.String
	core  corev1client.SecretsGetter
	authz authorizationv1client.SelfSubjectAccessReviewsGetter

	// beforeWrite, when set, runs between Deliver's read and its write: the tests use it to
	// land an edit in exactly that window.
	beforeWrite func()
}

// New checks c and loads the client configuration (the kubeconfig file, or the pod's service
// account token and CA). It does not contact the API server: Check does.
func New(c Config) (*Target, error) {
	if c.UsernameKey == "" {
		c.UsernameKey = DefaultUsernameKey
	}
	if c.PasswordKey == "" {
		c.PasswordKey = DefaultPasswordKey
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	rc, err := restConfig(c)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "mongobot"
	// One HTTP client for both API groups, so they share connections.
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubesecret: %s", secret.Scrub(err.Error(), secret.New(rc.BearerToken)))
	}
	core, err := corev1client.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubesecret: %s", secret.Scrub(err.Error(), secret.New(rc.BearerToken)))
	}
	authz, err := authorizationv1client.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubesecret: %s", secret.Scrub(err.Error(), secret.New(rc.BearerToken)))
	}
	return &Target{cfg: c, host: rc.Host, token: secret.New(rc.BearerToken), core: core, authz: authz}, nil
}

// check rejects what the API server would reject later, so that `bot check` says it up front.
func (c Config) check() error {
	var problems []string
	if c.Namespace == "" {
		problems = append(problems, "namespace is empty")
	} else if e := validation.IsDNS1123Label(c.Namespace); len(e) > 0 {
		problems = append(problems, fmt.Sprintf("namespace %q: %s", c.Namespace, strings.Join(e, "; ")))
	}
	if c.Name == "" {
		problems = append(problems, "the Secret's name is empty")
	} else if e := validation.IsDNS1123Subdomain(c.Name); len(e) > 0 {
		problems = append(problems, fmt.Sprintf("Secret name %q: %s", c.Name, strings.Join(e, "; ")))
	}
	for _, k := range []string{c.UsernameKey, c.PasswordKey} {
		if e := validation.IsConfigMapKey(k); len(e) > 0 {
			problems = append(problems, fmt.Sprintf("key %q: %s", k, strings.Join(e, "; ")))
		}
	}
	if c.UsernameKey == c.PasswordKey {
		problems = append(problems, fmt.Sprintf("the user name and the password would both be written to key %q", c.UsernameKey))
	}
	if c.Context != "" && c.Kubeconfig == "" {
		problems = append(problems, fmt.Sprintf("context %q is set without a kubeconfig (in-cluster configuration has no contexts)", c.Context))
	}
	if c.Timeout < 0 {
		problems = append(problems, fmt.Sprintf("timeout %s is negative", c.Timeout))
	}
	if len(problems) > 0 {
		return errors.New("kubesecret: " + strings.Join(problems, "; "))
	}
	return nil
}

func restConfig(c Config) (*rest.Config, error) {
	if c.Kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubesecret: no kubeconfig given, and not running in a pod: %w", err)
		}
		return rc, nil
	}
	// Only the named file: the bot must not pick up whatever $KUBECONFIG or ~/.kube/config
	// happens to say on the machine it runs on.
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubesecret: kubeconfig %s: %w", c.Kubeconfig, err)
	}
	return rc, nil
}

// Describe names the Secret, for the bot's messages. It holds no credential.
func (t *Target) Describe() string {
	d := "Kubernetes Secret " + t.cfg.Namespace + "/" + t.cfg.Name
	if t.cfg.Context != "" {
		d += " via kubeconfig context " + t.cfg.Context
	}
	return d
}

// secrets lists what no error text may hold for a delivery of pw. The API server echoes a
// Secret's data base64-encoded, so that form is scrubbed too.
func (t *Target) secrets(pw secret.String) []secret.String {
	s := []secret.String{t.token}
	if !pw.Empty() {
		s = append(s, pw, secret.New(base64.StdEncoding.EncodeToString([]byte(pw.Reveal()))))
	}
	return s
}

func (t *Target) ref() string { return t.cfg.Namespace + "/" + t.cfg.Name }
