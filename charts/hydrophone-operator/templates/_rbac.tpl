{{/*
Exactly the API calls the operator makes (tests/ship compares this list with the code). Cluster-wide because
each Hydrophone gets a namespace created at run time.
*/}}
{{- define "hydrophone-operator.rules" -}}
# kopf: discovering the CRD and noticing when it changes.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# kopf: events about reconcile outcomes.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
- apiGroups: [orcasound.net]
  resources: [hydrophones]
  verbs: [list, watch, patch]
- apiGroups: [orcasound.net]
  resources: [hydrophones/status]
  verbs: [patch]
{{- end }}
