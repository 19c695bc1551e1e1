{{- define "lakejob.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lakejob.labels" -}}
app.kubernetes.io/name: lakejob
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "lakejob.selector" -}}
app.kubernetes.io/name: lakejob
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lakejob.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Application rules: exactly the verbs lakejob's code uses on the objects it manages. */}}
{{- define "lakejob.appRules" -}}
- apiGroups: [lakejob.io]
  resources: [sparkbatches]
  verbs: [get, list, watch]
- apiGroups: [lakejob.io]
  resources: [sparkbatches/status]
  verbs: [patch]
# ownerReferences with blockOwnerDeletion on the children need update on the owners' finalizers.
- apiGroups: [lakejob.io]
  resources: [sparkbatches/finalizers]
  verbs: [update]
# Driver pods (and their log tail). The delete/deletecollection/patch/get/list/watch verbs on pods,
# configmaps, services and persistentvolumeclaims are also what the per-job driver Role grants,
# and RBAC lets the operator grant only what it holds itself.
- apiGroups: [""]
  resources: [pods]
  verbs: [create, get, list, watch, delete, deletecollection, patch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [create, get, list, watch, update, delete, deletecollection]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* A map as the operator's KEY=VALUE,… setting (sorted, so the output is stable). */}}
{{- define "lakejob.map" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
