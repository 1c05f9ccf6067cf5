{{/* Name of the DaemonSet and ServiceAccount. */}}
{{- define "ztunnel.name" -}}
{{- .Values.resourceName | default "ztunnel" -}}
{{- end -}}

{{/* <hub>/<image>:<tag>[-<variant>], or `image` verbatim when it contains "/". */}}
{{- define "ztunnel.image" -}}
{{- if contains "/" .Values.image -}}
{{- .Values.image -}}
{{- else -}}
{{- printf "%s/%s:%s%s" .Values.hub .Values.image (toString .Values.tag) (ternary (printf "-%s" .Values.variant) "" (ne .Values.variant "")) -}}
{{- end -}}
{{- end -}}

{{/* istiod[-rev].<ns>.svc:15012 unless overridden. */}}
{{- define "ztunnel.istiod" -}}
{{- $name := ternary (printf "istiod-%s" .Values.revision) "istiod" (ne .Values.revision "") -}}
{{- printf "%s.%s.svc:15012" $name .Values.istioNamespace -}}
{{- end -}}

{{- define "ztunnel.labels" -}}
app.kubernetes.io/name: ztunnel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ambient
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
