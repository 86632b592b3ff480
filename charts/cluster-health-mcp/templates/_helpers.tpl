{{- define "chm.name" -}}{{ .Release.Name }}-cluster-health-mcp{{- end -}}
{{- define "chm.labels" -}}
app.kubernetes.io/name: cluster-health-mcp
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
