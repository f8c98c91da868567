{{/* Names, labels and the values several templates derive. */}}

{{- define "bitesize.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-bitesize", or the release name alone when it already contains the chart name. */}}
{{- define "bitesize.fullname" -}}
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

{{- define "bitesize.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart creates. */}}
{{- define "bitesize.labels" -}}
helm.sh/chart: {{ include "bitesize.chart" . }}
app.kubernetes.io/part-of: bitesize
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The server's selector. */}}
{{- define "bitesize.server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bitesize.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* The shipper's selector: its name alone, so that the server's fleet manager, which
     knows the name but not the release, selects the same pods. */}}
{{- define "bitesize.shipper.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.shipper.name }}
{{- end }}

{{- define "bitesize.shipper.labels" -}}
{{ include "bitesize.shipper.selectorLabels" . }}
app.kubernetes.io/component: shipper
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "bitesize.labels" . }}
{{- end }}

{{- define "bitesize.server.image" -}}
{{- printf "%s:%s" .Values.server.image.repository (default .Chart.AppVersion .Values.server.image.tag) }}
{{- end }}

{{- define "bitesize.shipper.image" -}}
{{- printf "%s:%s" .Values.shipper.image.repository (default .Chart.AppVersion .Values.shipper.image.tag) }}
{{- end }}

{{- define "bitesize.server.serviceAccountName" -}}
{{- if .Values.server.serviceAccount.create }}
{{- default (include "bitesize.fullname" .) .Values.server.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.server.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the chart creates for values given in clear (database URL, SASL password,
     OIDC client secrets). */}}
{{- define "bitesize.secretName" -}}
{{- include "bitesize.fullname" . }}
{{- end }}

{{/* True (non-empty) when the chart has a value to put into its own Secret. */}}
{{- define "bitesize.secret.needed" -}}
{{- if and .Values.server.database.url (not .Values.server.database.existingSecret) }}yes{{ end }}
{{- if and .Values.kafka.sasl.enabled .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret) }}yes{{ end }}
{{- range .Values.server.oidc }}
{{- if and .clientSecret (not .existingSecret) }}yes{{ end }}
{{- end }}
{{- end }}

{{- define "bitesize.broker.name" -}}
{{- printf "%s-broker" (include "bitesize.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Bootstrap servers: the bundled broker's Service or the configured ones. */}}
{{- define "bitesize.kafka.brokers" -}}
{{- if .Values.bundledBroker.enabled }}
{{- printf "%s.%s.svc:%d" (include "bitesize.broker.name" .) .Release.Namespace (int .Values.bundledBroker.port) }}
{{- else }}
{{- .Values.kafka.brokers }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the SASL password. */}}
{{- define "bitesize.kafka.sasl.secretName" -}}
{{- default (include "bitesize.secretName" .) .Values.kafka.sasl.existingSecret }}
{{- end }}
{{- define "bitesize.kafka.sasl.secretKey" -}}
{{- if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.passwordKey }}{{ else }}kafka-sasl-password{{ end }}
{{- end }}

{{/* Environment shared by the server and the shipper: the bootstrap servers from a Secret. */}}
{{- define "bitesize.kafka.brokersEnv" -}}
{{- if and .Values.kafka.brokersSecret (not .Values.bundledBroker.enabled) }}
- name: BITESIZE_KAFKA__BROKERS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.brokersSecret }}
      key: {{ .Values.kafka.brokersKey }}
{{- end }}
{{- end }}

{{/* librdkafka security properties of the shipper (the password comes from the environment). */}}
{{- define "bitesize.shipper.kafkaProperties" -}}
{{- $p := deepCopy .Values.kafka.properties }}
{{- $tls := .Values.kafka.tls.enabled }}
{{- $sasl := .Values.kafka.sasl.enabled }}
{{- if and $tls $sasl }}{{ $_ := set $p "security.protocol" "SASL_SSL" }}
{{- else if $tls }}{{ $_ := set $p "security.protocol" "SSL" }}
{{- else if $sasl }}{{ $_ := set $p "security.protocol" "SASL_PLAINTEXT" }}
{{- end }}
{{- if $tls }}
{{- $_ := set $p "ssl.ca.location" "/etc/bitesize/kafka-tls/ca.crt" }}
{{- if .Values.kafka.tls.clientCertificate }}
{{- $_ := set $p "ssl.certificate.location" "/etc/bitesize/kafka-tls/tls.crt" }}
{{- $_ := set $p "ssl.key.location" "/etc/bitesize/kafka-tls/tls.key" }}
{{- end }}
{{- end }}
{{- if $sasl }}
{{- $_ := set $p "sasl.mechanism" .Values.kafka.sasl.mechanism }}
{{- $_ := set $p "sasl.username" .Values.kafka.sasl.username }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/* Checks the schema cannot express; each message names the key. */}}
{{- define "bitesize.validate" -}}
{{- if and (not .Values.server.localAccounts) (not .Values.server.oidc) }}
{{- fail "server.localAccounts: cannot be false while server.oidc is empty: nobody could sign in" }}
{{- end }}
{{- if and .Values.server.oidc (not (include "bitesize.publicUrl" .)) }}
{{- fail "server.publicUrl: must be set (or server.ingress.enabled) when server.oidc has providers: it makes the sign-in redirect URLs" }}
{{- end }}
{{- range $i, $p := .Values.server.oidc }}
{{- if and $p.existingSecret (not $p.clientSecretKey) }}
{{- fail (printf "server.oidc[%d].clientSecretKey: must be set with existingSecret" $i) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.shipper.managedBy "server") (ne .Values.shipper.name "bitesize-shipper") }}
{{- fail "shipper.name: the server's fleet manager names the shipper's objects bitesize-shipper; keep that name with shipper.managedBy=server" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.username) }}
{{- fail "kafka.sasl.username: must be set when kafka.sasl.enabled" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.password) (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.password: set it or kafka.sasl.existingSecret when kafka.sasl.enabled" }}
{{- end }}
{{- if and .Values.bundledBroker.enabled (or .Values.kafka.tls.enabled .Values.kafka.sasl.enabled) }}
{{- fail "kafka.tls.enabled, kafka.sasl.enabled: the bundled broker speaks plaintext without authentication; turn them off or use an external Kafka" }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (not .Values.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.existingSecret: must name a Secret with ca.crt when kafka.tls.enabled" }}
{{- end }}
{{- if and .Values.server.database.url (not (or (hasPrefix "postgres://" .Values.server.database.url) (hasPrefix "postgresql://" .Values.server.database.url))) }}
{{- fail "server.database.url: must start with postgres:// (leave it empty for SQLite in the data volume)" }}
{{- end }}
{{- end }}

{{/* The address browsers reach the dashboard at. */}}
{{- define "bitesize.publicUrl" -}}
{{- if .Values.server.publicUrl }}
{{- .Values.server.publicUrl | trimSuffix "/" }}
{{- else if .Values.server.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.server.ingress.tlsSecret))) .Values.server.ingress.host }}
{{- end }}
{{- end }}

{{/* BITESIZE_OIDC: the providers in the inline syntax of the server's environment
     (`[{name="corp", ...}]`); client secrets are `$(OIDC_CLIENT_SECRET_<i>)` references that
     the kubelet substitutes. */}}
{{- define "bitesize.server.oidcEnv" -}}
[{{ range $i, $p := .Values.server.oidc }}{{ if $i }}, {{ end }}{name={{ $p.name | toJson }}, issuer_url={{ $p.issuerUrl | toJson }}, client_id={{ $p.clientId | toJson }}{{ with $p.displayName }}, display_name={{ . | toJson }}{{ end }}{{ if or $p.clientSecret $p.existingSecret }}, client_secret="$(OIDC_CLIENT_SECRET_{{ $i }})"{{ end }}{{ with $p.groupsFrom }}, groups_from={{ . | toJson }}{{ end }}{{ with $p.groupsClaim }}, groups_claim={{ . | toJson }}{{ end }}{{ with $p.usernameClaim }}, username_claim={{ . | toJson }}{{ end }}{{ with $p.scopes }}, scopes={{ . | toJson }}{{ end }}}{{ end }}]
{{- end }}

{{/* The shipper's config file (YAML), rendered from values; `shipper.extraConfig` merged over. */}}
{{- define "bitesize.shipper.config" -}}
{{- $config := dict
  "include" .Values.shipper.include
  "exclude" .Values.shipper.exclude
  "read_from" .Values.shipper.readFrom
  "listen" (printf "0.0.0.0:%d" (int .Values.shipper.port))
  "checkpoint_dir" "/var/lib/bitesize-shipper"
  "topic_template" .Values.kafka.topicTemplate
  "max_line_bytes" (int64 .Values.shipper.maxLineBytes)
  "kubernetes" (dict "enabled" true "namespace_labels" .Values.shipper.namespaceLabels "annotations" .Values.shipper.recordAnnotations)
  "kafka" (dict
    "brokers" (include "bitesize.kafka.brokers" .)
    "compression" .Values.shipper.compression
    "create_topics" .Values.shipper.createTopics
    "topic_partitions" (int .Values.shipper.topicPartitions)
    "properties" (include "bitesize.shipper.kafkaProperties" . | fromYaml)) }}
{{- with .Values.shipper.cluster }}{{ $_ := set $config "cluster" . }}{{ end }}
{{- $config = mustMergeOverwrite $config (deepCopy .Values.shipper.extraConfig) }}
{{- toYaml $config }}
{{- end }}
