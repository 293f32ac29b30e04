{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "dpp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "dpp.fullname" -}}
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

{{- define "dpp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "dpp.labels" -}}
helm.sh/chart: {{ include "dpp.chart" . }}
{{ include "dpp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: data-protection-proxy
{{- end }}

{{/* Labels that select the worker pods (never change them on upgrade). */}}
{{- define "dpp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dpp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dpp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dpp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap holding the policy: an existing one or the chart's. */}}
{{- define "dpp.policyConfigMap" -}}
{{- if .Values.policy.existingConfigMap }}
{{- .Values.policy.existingConfigMap }}
{{- else }}
{{- printf "%s-policy" (include "dpp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Directory where the policy ConfigMap is mounted (a directory, not subPath, so updates reach the pod). */}}
{{- define "dpp.policyDir" -}}/etc/dpp/policy{{- end }}

{{/* Name of the Service label whose value becomes the Prometheus job (ServiceMonitor jobLabel). */}}
{{- define "dpp.jobLabel" -}}dpp-prometheus-job{{- end }}

{{/*
KEDA Kafka triggers as a YAML list of {topic, consumerGroup}: keda.triggers, or derived from
policy.content (each selected route's source topic and consumer group).
*/}}
{{- define "dpp.kedaTopics" -}}
{{- if .Values.keda.triggers }}
{{- toYaml .Values.keda.triggers }}
{{- else }}
{{- $policy := .Values.policy.content | fromYaml }}
{{- if hasKey $policy "Error" }}
{{- fail (printf "policy.content is not valid YAML: %s" $policy.Error) }}
{{- end }}
{{- $out := list }}
{{- range $policy.routes }}
{{- if or (not $.Values.dpp.routes) (has .name $.Values.dpp.routes) }}
{{- $group := .consumer_group | default (printf "dpp.%s.%s" $policy.name .name) }}
{{- $out = append $out (dict "topic" .source "consumerGroup" $group) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}
{{- end }}

{{/*
librdkafka properties of every Kafka client (kafka.properties, mounted with --kafka-config-file), or ""
when the values ask for nothing beyond bootstrap.servers. The SASL password is never in it:
sasl.password=env:DPP_KAFKA_SASL_PASSWORD, from a secretKeyRef.
*/}}
{{- define "dpp.kafkaProperties" -}}
{{- $k := .Values.kafka -}}
{{- if or (ne $k.securityProtocol "PLAINTEXT") $k.config $k.tls.caSecret $k.tls.clientSecret $k.sasl.mechanism -}}
security.protocol={{ $k.securityProtocol }}
{{- if $k.sasl.mechanism }}
sasl.mechanism={{ $k.sasl.mechanism }}
sasl.username={{ $k.sasl.username }}
sasl.password=env:DPP_KAFKA_SASL_PASSWORD
{{- end }}
{{- if $k.tls.caSecret }}
ssl.ca.location=/etc/dpp/kafka-tls/{{ $k.tls.caKey }}
{{- end }}
{{- if $k.tls.clientSecret }}
ssl.certificate.location=/etc/dpp/kafka-client/tls.crt
ssl.key.location=/etc/dpp/kafka-client/tls.key
{{- end }}
{{- range $key, $value := $k.config }}
{{ $key }}={{ $value }}
{{- end }}
{{- end -}}
{{- end }}
