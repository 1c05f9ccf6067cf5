{{/* <hub>/<image>:<tag>[-<variant>], or `image` verbatim when it contains "/". */}}
{{- define "cni.image" -}}
{{- if contains "/" .Values.image -}}
{{- .Values.image -}}
{{- else -}}
{{- printf "%s/%s:%s%s" .Values.hub .Values.image (toString .Values.tag) (ternary (printf "-%s" .Values.variant) "" (ne .Values.variant "")) -}}
{{- end -}}
{{- end -}}

{{- define "cni.labels" -}}
app.kubernetes.io/name: ambient-cni
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ambient
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
