{{/* Labels of every object, as `mover install` sets them (and Velero's tooling looks for). */}}
{{- define "mover.labels" -}}
component: velero
{{- end }}

{{/* A cluster-wide object's name: the account's, with the namespace unless it is velero. */}}
{{- define "mover.clusterName" -}}
{{- if eq .namespace "velero" }}{{ .account }}{{ else }}{{ .account }}-{{ .namespace }}{{ end }}
{{- end }}

{{- define "mover.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "mover.namespaceEnv" -}}
- name: VELERO_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* The credential a location names: its own, else the cloud key of the chart's secret. */}}
{{- define "mover.credential" -}}
{{- if .location.credential }}
credential:
  {{- toYaml .location.credential | nindent 2 }}
{{- else if hasKey .root.Values.credentials.secretContents "cloud" }}
credential:
  name: cloud-credentials
  key: cloud
{{- end }}
{{- end }}
