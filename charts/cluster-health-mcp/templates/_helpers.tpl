{{/* Full name: <release>-cluster-health-mcp, or the release name if it already says so. */}}
{{- define "chm.name" -}}
{{- if contains "cluster-health-mcp" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-cluster-health-mcp" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chm.selectorLabels" -}}
app.kubernetes.io/name: cluster-health-mcp
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chm.labels" -}}
{{ include "chm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "chm.serviceAccountName" -}}
{{- default (include "chm.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "chm.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Does the mode use Prometheus? */}}
{{- define "chm.prometheus" -}}
{{- if has .Values.deployment.mode (list "monitoring" "full") -}}true{{- end -}}
{{- end -}}

{{- define "chm.full" -}}
{{- if eq .Values.deployment.mode "full" -}}true{{- end -}}
{{- end -}}

{{/* ml.models entries that are not shipped bindings: each becomes a Backend document (and
     its tool, when given) in the specs ConfigMap. */}}
{{- define "chm.customModels" -}}
{{- range $name, $m := .Values.ml.models -}}
{{- if not (has $name (list "anomaly-detector" "predictive-analytics")) }}{{ $name }} {{ end -}}
{{- end -}}
{{- end -}}

{{/* Is there a specs ConfigMap (extra specs or custom models)? */}}
{{- define "chm.specs" -}}
{{- if or .Values.extraSpecs (include "chm.customModels" .) -}}true{{- end -}}
{{- end -}}

{{/* The built-in coordination engine's SQLite database on a PVC. */}}
{{- define "chm.sqlite" -}}
{{- if and (include "chm.full" .) (eq .Values.coordinationEngine.type "builtin") (eq .Values.coordinationEngine.database.type "sqlite") -}}true{{- end -}}
{{- end -}}

{{/* The built-in coordination engine's database on PostgreSQL. */}}
{{- define "chm.postgresql" -}}
{{- if and (include "chm.full" .) (eq .Values.coordinationEngine.type "builtin") (eq .Values.coordinationEngine.database.type "postgresql") -}}true{{- end -}}
{{- end -}}

{{/* Host headers /mcp accepts: the Service's DNS names plus values. */}}
{{- define "chm.allowedHosts" -}}
{{- $svc := include "chm.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- concat (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) .Values.http.allowedHosts | toJson -}}
{{- end -}}

{{/* The server's URL inside the cluster. */}}
{{- define "chm.url" -}}
http://{{ include "chm.name" . }}.{{ .Release.Namespace }}.svc:{{ .Values.http.port }}/mcp
{{- end -}}
