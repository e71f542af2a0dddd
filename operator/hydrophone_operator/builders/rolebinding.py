"""The RoleBinding that lets the operator manage a site's children in that site's namespace only.

The chart grants the operator no cluster-wide access to Secrets, Deployments and the like: just `bind` on one
"site" ClusterRole. This binding, created right after the namespace, grants that role to the operator's own
ServiceAccount here. Owned by the Hydrophone like every other child, so it goes with the site.
"""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import object_meta
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

# The chart's ClusterRole may get/create/patch RoleBindings of this name only.
SITE_BINDING = "hydrophone-operator-site"


def build_role_binding(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(hp, SITE_BINDING),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": settings.site_cluster_role,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": settings.operator_service_account,
                "namespace": settings.credentials_namespace,
            }
        ],
    }
