{{- define "intelshare.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
