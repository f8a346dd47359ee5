{{/* The chart's name, or nameOverride. */}}
{{- define "mongobot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's, with the chart's name unless the release name holds it. */}}
{{- define "mongobot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mongobot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mongobot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mongobot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mongobot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: bot
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mongobot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mongobot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mongobot.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if .Values.secret.create -}}
{{- include "mongobot.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "mongobot.configMapName" -}}
{{- .Values.existingConfigMap | default (include "mongobot.fullname" .) -}}
{{- end -}}

{{/* "true" when the journal is on etcd (or must be: more than one replica). */}}
{{- define "mongobot.etcd" -}}
{{- if or (dig "store" "etcd" "" (.Values.config | default dict)) (gt (int .Values.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/* "true" when the data folder is a PersistentVolumeClaim: one replica on bbolt. */}}
{{- define "mongobot.pvc" -}}
{{- if and .Values.persistence.enabled (not (include "mongobot.etcd" .)) -}}true{{- end -}}
{{- end -}}

{{/*
The config file as rendered into the ConfigMap: .Values.config with http.listen set to where
the kubelet reaches it. Rendering fails on what cannot work in a pod.
*/}}
{{- define "mongobot.config" -}}
{{- if and (not .Values.existingConfigMap) (empty .Values.config) -}}
{{- fail "config is empty: give the bot's config (bot.yaml) as config, or the name of a ConfigMap holding it as existingConfigMap" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.existingConfigMap) (not (dig "store" "etcd" "" .Values.config)) -}}
{{- fail (printf "replicas is %d but config.store.etcd is not set: replicas can only share a journal on etcd (one replica keeps it in a bbolt file, which two pods must never open)" (int .Values.replicas)) -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) .Values.existingConfigMap (not .Values.existingConfigMapHasEtcd) -}}
{{- fail (printf "replicas is %d with existingConfigMap %s: set existingConfigMapHasEtcd: true once that ConfigMap's bot.yaml has store.etcd (the chart cannot read it); several replicas on bbolt would each keep a journal of their own and act twice" (int .Values.replicas) .Values.existingConfigMap) -}}
{{- end -}}
{{- include "mongobot.noLiteralCredentials" .Values.config -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $http := get $cfg "http" | default dict -}}
{{- $listen := get $http "listen" | default "" | toString -}}
{{- if eq $listen "" -}}
{{- $_ := set $http "listen" "0.0.0.0:9090" -}}
{{- else if not (has $listen (list "0.0.0.0:9090" "[::]:9090")) -}}
{{- fail (printf "config.http.listen is %q: in a pod it must be 0.0.0.0:9090 (or leave it unset): the kubelet's probes and Prometheus reach the pod's IP, a bare port listens on loopback only, and the chart's port is 9090" $listen) -}}
{{- end -}}
{{- $_ := set $cfg "http" $http -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
Credentials written into the config would land in the ConfigMap, which far more people may
read than Secrets (the built-in view role, for one). Each credential key must be a ${VAR}
that the Secret provides; a connection string may name hosts and a user, not a password.
*/}}
{{- define "mongobot.noLiteralCredentials" -}}
{{- $cfg := . | default dict -}}
{{- $var := "^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$" -}}
{{- range $i, $c := $cfg.connectors | default list -}}
{{- if regexMatch "://[^/@]*:[^/@]*@" ((get $c "connection_string") | default "" | toString) -}}
{{- fail (printf "config.connectors[%d].connection_string holds a password: it would be readable in the ConfigMap; write it as ${VAR} and give the variable in secret.data or existingSecret" $i) -}}
{{- end -}}
{{- range $k := list "client_secret" "private_key" "tls_certificate_key_pem" -}}
{{- $v := (get $c $k) | default "" | toString -}}
{{- if and $v (not (regexMatch $var $v)) -}}
{{- fail (printf "config.connectors[%d].%s is written in the config: it would be readable in the ConfigMap; write it as ${VAR} and give the variable in secret.data or existingSecret" $i $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $pw := (dig "store" "etcd" "password" "" $cfg) | toString -}}
{{- if and $pw (not (regexMatch $var $pw)) -}}
{{- fail "config.store.etcd.password is written in the config: it would be readable in the ConfigMap; write it as ${VAR} and give the variable in secret.data or existingSecret" -}}
{{- end -}}
{{- range $i, $d := $cfg.deliveries | default list -}}
{{- range $j, $t := $d.targets | default list -}}
{{- $auth := (dig "vault_kv" "auth" dict $t) -}}
{{- range $k, $v := dict "token" (get $auth "token") "approle.secret_id" (dig "approle" "secret_id" "" $auth) -}}
{{- $v = $v | default "" | toString -}}
{{- if and $v (not (regexMatch $var $v)) -}}
{{- fail (printf "config.deliveries[%d].targets[%d].vault_kv.auth.%s is written in the config: it would be readable in the ConfigMap; write it as ${VAR} (or use its _file form) and give the variable in secret.data or existingSecret" $i $j $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Secrets the bot writes with its own service account, as JSON {namespace: [names]}: the
config's kubernetes_secret targets without a kubeconfig of their own, and rbac.extraSecrets.
*/}}
{{- define "mongobot.secretTargets" -}}
{{- $byNs := dict -}}
{{- $all := list -}}
{{- if not .Values.existingConfigMap -}}
{{- range $d := (.Values.config | default dict).deliveries | default list -}}
{{- range $t := $d.targets | default list -}}
{{- with $t.kubernetes_secret -}}
{{- if and .name (not .kubeconfig) -}}
{{- $all = append $all (dict "namespace" .namespace "name" .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.rbac.extraSecrets -}}
{{- $all = append $all . -}}
{{- end -}}
{{- range $all -}}
{{- $ns := .namespace | default $.Release.Namespace -}}
{{- $_ := set $byNs $ns (append (get $byNs $ns | default list) .name | uniq | sortAlpha) -}}
{{- end -}}
{{- toJson $byNs -}}
{{- end -}}

{{/*
"true" when the pod needs its service-account token: a kubernetes_secret target on the in-cluster
configuration, or a Vault Kubernetes login reading the pod's token.
*/}}
{{- define "mongobot.needsToken" -}}
{{- $need := not (empty (fromJson (include "mongobot.secretTargets" .))) -}}
{{- range $d := (.Values.config | default dict).deliveries | default list -}}
{{- range $t := $d.targets | default list -}}
{{- $k := dig "vault_kv" "auth" "kubernetes" "" $t -}}
{{- if and $k (not (get $k "jwt_file")) -}}
{{- $need = true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $need -}}true{{- end -}}
{{- end -}}
