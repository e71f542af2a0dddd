{{/*
The operator's settings as environment variables: the names are hydrophone_operator.settings'
HYDROPHONE_OPERATOR_<FIELD> (tests/ship loads the rendered env into OperatorSettings to keep them in step).
None of these reach the worker pod templates, so upgrading the operator does not restart workers.
*/}}
{{- define "hydrophone-operator.settingsEnv" -}}
- name: HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: HYDROPHONE_OPERATOR_OPERATOR_SERVICE_ACCOUNT
  value: {{ include "hydrophone-operator.serviceAccountName" . | quote }}
- name: HYDROPHONE_OPERATOR_SITE_CLUSTER_ROLE
  value: {{ include "hydrophone-operator.siteRoleName" . | quote }}
- name: HYDROPHONE_OPERATOR_CLUSTER_CIDRS
  value: {{ .Values.worker.egress.clusterCidrs | toJson | quote }}
- name: HYDROPHONE_OPERATOR_WORKER_IMAGE_REPOSITORY
  value: {{ .Values.worker.image.repository | quote }}
- name: HYDROPHONE_OPERATOR_IMAGE_PULL_POLICY
  value: {{ .Values.worker.image.pullPolicy | quote }}
- name: HYDROPHONE_OPERATOR_DEFAULT_MODEL_TAG
  value: {{ .Values.worker.defaultModelTag | quote }}
- name: HYDROPHONE_OPERATOR_DEFAULT_WORKER_RESOURCES
  value: {{ .Values.worker.resources | toJson | quote }}
- name: HYDROPHONE_OPERATOR_STATE_SIZE_LIMIT
  value: {{ .Values.worker.stateSizeLimit | quote }}
- name: HYDROPHONE_OPERATOR_SCRATCH_SIZE_LIMIT
  value: {{ .Values.worker.scratchSizeLimit | quote }}
- name: HYDROPHONE_OPERATOR_DEFAULT_STREAM_BASE_URL
  value: {{ .Values.stream.baseUrl | quote }}
- name: HYDROPHONE_OPERATOR_MONITORING_NAMESPACE
  value: {{ .Values.monitoring.namespace | quote }}
- name: HYDROPHONE_OPERATOR_RESYNC_SECONDS
  value: {{ .Values.operator.resyncSeconds | quote }}
- name: HYDROPHONE_OPERATOR_LAG_DEGRADED_SECONDS
  value: {{ .Values.operator.lagDegradedSeconds | quote }}
{{- end }}

{{- define "hydrophone-operator.args" -}}
- run
- --liveness=http://0.0.0.0:8080/healthz
- --log-format={{ .Values.operator.logFormat }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- end }}

{{/* Labels the operator puts on what it creates (hydrophone_operator.builders). */}}
{{- define "hydrophone-operator.siteNamespaceLabels" -}}
app.kubernetes.io/managed-by: hydrophone-operator
{{- end }}

{{- define "hydrophone-operator.workerLabels" -}}
app.kubernetes.io/name: hydrophone-worker
{{- end }}

{{- define "hydrophone-operator.workerPortName" -}}
http
{{- end }}

{{/* Not the operator's selector labels: the Deployment would adopt the test pod and the Service route to it. */}}
{{- define "hydrophone-operator.testLabels" -}}
app.kubernetes.io/name: {{ include "hydrophone-operator.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}
