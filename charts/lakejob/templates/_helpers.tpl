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

{{/* The operator's ServiceAccount: the release's own unless serviceAccount.create is false, when an
existing one must be named (RBAC is bound to it either way). */}}
{{- define "lakejob.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "lakejob.fullname" .) -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount the operator runs as (serviceAccount.create is false)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What the operator's and the gateway's pod specs share: pull secrets, priority, the pod security
context, nodeSelector and tolerations. Not affinity or spread constraints: their label selectors
name one Deployment's pods. */}}
{{- define "lakejob.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "lakejob.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Application rules: exactly the verbs lakejob's code uses on the objects it manages. */}}
{{- define "lakejob.appRules" -}}
- apiGroups: [lakejob.io]
  resources: [sparkbatches, sparksessions, flinkjarjobs, dagjobs]
  verbs: [get, list, watch]
- apiGroups: [lakejob.io]
  resources: [sparkbatches/status, sparksessions/status, flinkjarjobs/status, dagjobs/status]
  verbs: [patch]
# ownerReferences with blockOwnerDeletion on the children need update on the owners' finalizers.
- apiGroups: [lakejob.io]
  resources: [sparkbatches/finalizers, sparksessions/finalizers, flinkjarjobs/finalizers, dagjobs/finalizers]
  verbs: [update]
# A DagJob's sparkBatch/flinkJarJob tasks (stopped through spec.suspend), and AutoRelease.
- apiGroups: [lakejob.io]
  resources: [sparkbatches, flinkjarjobs]
  verbs: [create, patch]
- apiGroups: [lakejob.io]
  resources: [dagjobs]
  verbs: [delete]
# Driver, JobManager pods (and a failed driver's log tail). The pod/configmap/service/PVC verbs are
# also what the per-job Spark driver Role grants: RBAC lets the operator grant only what it holds.
- apiGroups: [""]
  resources: [pods]
  verbs: [create, get, list, watch, delete, deletecollection, patch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [create, get, list, watch, update, delete, deletecollection]
# The Endpoints of the sessions' and Flink jobs' Services, which have no selector (the operator
# writes them: docs/performance.md, "Selectorless Services").
- apiGroups: [""]
  resources: [endpoints]
  verbs: [create, get, update, delete]
# get: a child's name already taken is checked for whose it is before it is used or deleted
# (docs/reliability.md, "Ownership").
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create, get, delete]
# DagJob OSS credentials, handed to its task pods: created, never read back.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, get, delete]
# FlinkJarJob TaskManagers.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [create, get, delete]
# ... and those of runs an earlier operator began as Deployments: read, and deleted when they end.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, delete]
# DagJob command tasks (Indexed Jobs), suspended and resumed through spec.suspend.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, patch]
# Kueue Workloads (docs/queues.md): one per queued run, owned by its CR; its status is written to
# finish it (quota released) and to release a preempted one's reservation once its pods are gone.
# Harmless where Kueue is not installed: RBAC may name resources no API serves.
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [create, get, list, watch, patch, delete]
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads/status]
  verbs: [patch]
# Events: ours, and the FailedCreate Events of a DagJob task's Job that has no pods (why not).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, list]
{{- end -}}

{{/* A map as the operator's KEY=VALUE,… setting (sorted, so the output is stable). */}}
{{- define "lakejob.map" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* DagJob priority bands as the operator's LOWEST_PRIORITY=CLASS,… setting. */}}
{{- define "lakejob.priorityBands" -}}
{{- $out := list -}}
{{- range .Values.dag.priorityClasses.classes -}}
{{- $out = append $out (printf "%d=%s" (int .minPriority) .name) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* policy.allow and policy.allowInNamespaces as the operator's LAKEJOB_POD_POLICY_ALLOW:
FEATURE (every namespace) and NAMESPACE/FEATURE entries. */}}
{{- define "lakejob.podPolicy" -}}
{{- $out := list -}}
{{- range .Values.policy.allow -}}
{{- $out = append $out . -}}
{{- end -}}
{{- range $ns, $features := .Values.policy.allowInNamespaces -}}
{{- range $features -}}
{{- $out = append $out (printf "%s/%s" $ns .) -}}
{{- end -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
