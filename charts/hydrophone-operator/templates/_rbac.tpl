{{/*
Least privilege, in four parts (tests/ship/test_rbac.py checks each on a real API server):
- cluster-wide ("rules"): only what must be cluster-wide: Hydrophones, CRD discovery, creating the site
  namespaces, and binding the site role there;
- the release namespace ("ownRules", a Role): reading the credentials Secrets it copies;
- the default namespace ("eventRules", a Role): posting Events about Hydrophones;
- each site namespace ("siteRules", a ClusterRole bound there by the RoleBinding the operator creates in every
  namespace it made): the site's children. Nothing grants Secrets, Deployments or Services anywhere else.
The names the operator uses are hydrophone_operator.builders (site binding) and its settings (role, account).
*/}}
{{- define "hydrophone-operator.siteRoleName" -}}
{{- printf "%s-site" (include "hydrophone-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* hydrophone_operator.builders.rolebinding.SITE_BINDING */}}
{{- define "hydrophone-operator.siteBindingName" -}}
hydrophone-operator-site
{{- end }}

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
# Site namespaces: created at run time, so cluster-wide (RBAC cannot narrow create or patch to names that do
# not exist yet; the ValidatingAdmissionPolicy below does: only namespaces the operator labelled as its own).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, create, patch]
# The RoleBinding in each site namespace: this one name only, and bound to the site role only.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, create, patch]
  resourceNames: [{{ include "hydrophone-operator.siteBindingName" . }}]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ include "hydrophone-operator.siteRoleName" . }}]
{{- end }}

{{- define "hydrophone-operator.ownRules" -}}
# The credentials Secrets named by spec.credentials (only those labelled orcasound.net/credentials=true are
# copied). get only: the operator cannot list what else is there.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}

{{- define "hydrophone-operator.eventRules" -}}
# Events on condition transitions, for `kubectl describe hydrophone`: the API server files the events of a
# cluster-scoped object in the default namespace (hydrophone_operator.kube.EVENTS_NAMESPACE).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "hydrophone-operator.siteRules" -}}
# A site's children: read, created when missing, patched back when they drift. Secret copies the site no
# longer names are found by label and deleted.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch, list, delete]
- apiGroups: [""]
  resources: [serviceaccounts, configmaps, services, persistentvolumeclaims]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch]
{{- end }}
