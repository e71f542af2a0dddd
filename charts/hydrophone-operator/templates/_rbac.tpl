{{/*
Exactly the API calls the operator makes; tests/ship/test_rbac.py compares this list with the kube layer's
table (hydrophone_operator.kube.KINDS x VERBS) and with the calls the real operator makes against kmock.
Cluster-wide because each Hydrophone gets a namespace created at run time.
*/}}
{{- define "hydrophone-operator.rules" -}}
# kopf: finds the Hydrophone CRD and notices when it changes.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# kopf watches Hydrophones and keeps its progress in their annotations; each reconcile reads the Hydrophone
# fresh and writes its status.
- apiGroups: [orcasound.net]
  resources: [hydrophones]
  verbs: [get, list, watch, patch]
- apiGroups: [orcasound.net]
  resources: [hydrophones/status]
  verbs: [patch]
# Children carry an owner reference with blockOwnerDeletion: OwnerReferencesPermissionEnforcement admits it
# only from a client that may update the owner's finalizers.
- apiGroups: [orcasound.net]
  resources: [hydrophones/finalizers]
  verbs: [update]
# Events on condition transitions, for `kubectl describe hydrophone`.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Each site's children: read, created when missing, patched back when they drift. The Secret is also read
# from the operator's own namespace (the credentials source).
- apiGroups: [""]
  resources: [namespaces, serviceaccounts, configmaps, secrets, services]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch]
{{- end }}
