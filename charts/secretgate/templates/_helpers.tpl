{{/*
Names, labels and the few values more than one template needs.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "secretgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>". Cut to 63 characters (DNS label).
*/}}
{{- define "secretgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "secretgate-0.1.0", for the helm.sh/chart label. */}}
{{- define "secretgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "secretgate.labels" -}}
helm.sh/chart: {{ include "secretgate.chart" . }}
{{ include "secretgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: secretgate
{{- end }}

{{/* The labels that pick the webhook pods: Deployment selector, Service, PDB. */}}
{{- define "secretgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secretgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "secretgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "secretgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "secretgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret the pods mount at /tls (tls.crt, tls.key, ca.crt), in both modes. */}}
{{- define "secretgate.tlsSecretName" -}}
{{- printf "%s-tls" (include "secretgate.fullname" .) }}
{{- end }}

{{/* The Secret holding the CA that signs the serving certificate (never mounted). */}}
{{- define "secretgate.caSecretName" -}}
{{- printf "%s-ca" (include "secretgate.fullname" .) }}
{{- end }}

{{/* "<namespace>/<certificate>" for cert-manager's CA injector. */}}
{{- define "secretgate.certificateRef" -}}
{{- printf "%s/%s" .Release.Namespace (include "secretgate.fullname" .) }}
{{- end }}

{{/* The DNS names the API server uses to reach the Service. */}}
{{- define "secretgate.dnsNames" -}}
{{- $svc := include "secretgate.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
The generated CA and serving certificate (tls.generate mode), as JSON with base64 fields
caCert, caKey, cert, key.

The CA is read back from the cluster with lookup when it exists, so an upgrade keeps the
caBundle the API server trusts; the serving certificate is issued anew on every install and
upgrade (the server reloads it from the mounted Secret). Without a cluster (helm template,
helm lint, GitOps renderers) lookup returns nothing and a new CA is made each time.

tls-secret.yaml and both webhook configurations need the same pair, so the first template to
ask computes it and keeps it in .Values for the rest of this render (a render's templates
share one .Values map). The key is not a chart value: the schema has already run by then.
*/}}
{{- define "secretgate.generatedTLS" -}}
{{- if not (hasKey .Values "__generatedTLS") }}
{{- $ca := dict }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "secretgate.caSecretName" .) }}
{{- if and $existing $existing.data (index $existing.data "tls.crt") (index $existing.data "tls.key") }}
{{- $ca = buildCustomCert (index $existing.data "tls.crt") (index $existing.data "tls.key") }}
{{- else }}
{{- $ca = genCA (printf "%s-ca" (include "secretgate.fullname" .)) (int .Values.tls.generate.caValidityDays) }}
{{- end }}
{{- $svc := include "secretgate.fullname" . }}
{{- $cn := printf "%s.%s.svc" $svc .Release.Namespace }}
{{- $cert := genSignedCert $cn nil (include "secretgate.dnsNames" . | fromJsonArray) (int .Values.tls.generate.certValidityDays) $ca }}
{{- $_ := set .Values "__generatedTLS" (dict "caCert" ($ca.Cert | b64enc) "caKey" ($ca.Key | b64enc) "cert" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) }}
{{- end }}
{{- index .Values "__generatedTLS" | toJson }}
{{- end }}

{{/*
The namespaceSelector of the Secret and Pod webhooks: the release namespace, kube-system and
webhooks.excludedNamespaces are always left out (by the immutable kubernetes.io/metadata.name
label), whatever the user adds in webhooks.namespaceSelector.
*/}}
{{- define "secretgate.namespaceSelector" -}}
{{- include "secretgate.namespaceSelectorExcluding" (list . (list)) }}
{{- end }}

{{/*
The same, also leaving out the namespaces of the list given (a webhook's own exclusions):
(list $root $names), or (list $root $names $expressions) to add further matchExpressions
last (the failure-policy-by-mode split of the Secret webhook).
*/}}
{{- define "secretgate.namespaceSelectorExcluding" -}}
{{- $root := index . 0 }}
{{- $extra := list }}
{{- if gt (len .) 2 }}{{ $extra = index . 2 }}{{ end }}
{{- $excluded := concat (list $root.Release.Namespace "kube-system") $root.Values.webhooks.excludedNamespaces (index . 1) | uniq }}
{{- $always := dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" $excluded }}
{{- $selector := dict "matchExpressions" (concat (list $always) $root.Values.webhooks.namespaceSelector.matchExpressions $extra) }}
{{- with $root.Values.webhooks.namespaceSelector.matchLabels }}
{{- $_ := set $selector "matchLabels" . }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/* clientConfig for a webhook: the Service, the given path, and the caBundle in generated mode. */}}
{{- define "secretgate.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 -}}
service:
  name: {{ include "secretgate.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ $path }}
  port: {{ $root.Values.service.port }}
{{- if $root.Values.tls.generate.enabled }}
caBundle: {{ (include "secretgate.generatedTLS" $root | fromJson).caCert }}
{{- end }}
{{- end }}

{{/* A selector ({matchLabels, matchExpressions}) with the empty parts left out; {} matches all. */}}
{{- define "secretgate.labelSelector" -}}
{{- $out := dict }}
{{- with .matchLabels }}{{ $_ := set $out "matchLabels" . }}{{ end }}
{{- with .matchExpressions }}{{ $_ := set $out "matchExpressions" . }}{{ end }}
{{- toYaml $out }}
{{- end }}

{{/*
The pod's affinity: .Values.affinity, plus the podAntiAffinityPreset (spread the replicas
over nodes) unless .Values.affinity sets its own podAntiAffinity.
*/}}
{{- define "secretgate.affinity" -}}
{{- $affinity := deepCopy .Values.affinity }}
{{- if not $affinity.podAntiAffinity }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "secretgate.selectorLabels" . | fromYaml)) }}
{{- if eq .Values.podAntiAffinityPreset "soft" }}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) }}
{{- else if eq .Values.podAntiAffinityPreset "hard" }}
{{- $_ := set $affinity "podAntiAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) }}
{{- end }}
{{- end }}
{{- toYaml $affinity }}
{{- end }}

{{/*
Name of the Lease the replicas elect their leader with: leaderElection.leaseName, or the
full name (two releases in one namespace never share a leader).
*/}}
{{- define "secretgate.leaseName" -}}
{{- default (include "secretgate.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Namespaces instance secrets may be copied from, comma-separated: the values, else the
release namespace.
*/}}
{{- define "secretgate.instanceSourceNamespaces" -}}
{{- if .Values.instanceSecrets.sourceNamespaces -}}
{{- join "," .Values.instanceSecrets.sourceNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end }}

{{/*
Where the credential checks' extra CA bundle is mounted (ca.crt in it), or nothing when
no bundle is used: audit, credential checks and a caBundle all set.
*/}}
{{- define "secretgate.credentialCheckCa" -}}
{{- $audit := .Values.audit }}
{{- if and $audit.enabled $audit.credentialChecks.enabled $audit.credentialChecks.caBundle -}}
/etc/secretgate/credential-check-ca
{{- end }}
{{- end }}

{{/*
Whether the Secret webhook is registered twice by project mode
(webhooks.validate.failurePolicyByMode): "true" or empty. The server then keeps the
mode label on every namespace (serve --label-namespaces), with patch on namespaces.
*/}}
{{- define "secretgate.failurePolicyByMode" -}}
{{- if and .Values.webhooks.validate.enabled .Values.webhooks.validate.failurePolicyByMode.enabled -}}
true
{{- end }}
{{- end }}

{{/* The namespace label the elected replica keeps: the mode of the namespace's policy. */}}
{{- define "secretgate.modeLabel" -}}
secretgate.io/mode
{{- end }}
